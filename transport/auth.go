package transport

import (
	"bytes"
	"strings"
	"unsafe"
)

// Authorization schemes.
const (
	schemeBearer    = "Bearer"
	schemeBootstrap = "Bootstrap"
)

// credential extracts the credential from an Authorization header value of the given scheme. The
// scheme name is compared case-insensitively; it reports false for an empty header, another
// scheme or a missing credential.
func credential(header []byte, scheme string) (string, bool) {
	cred, ok := credentialView(header, scheme)
	return strings.Clone(cred), ok
}

// credentialView is credential without copying: the result aliases header.
func credentialView(header []byte, scheme string) (string, bool) {
	header = bytes.TrimSpace(header)
	name, rest, found := bytes.Cut(header, []byte{' '})
	if !found || !strings.EqualFold(unsafe.String(unsafe.SliceData(name), len(name)), scheme) {
		return "", false
	}
	cred := bytes.TrimSpace(rest)
	if len(cred) == 0 {
		return "", false
	}
	return unsafe.String(unsafe.SliceData(cred), len(cred)), true
}
