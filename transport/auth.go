package transport

import (
	"bytes"
	"strings"
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
	header = bytes.TrimSpace(header)
	name, rest, found := bytes.Cut(header, []byte{' '})
	if !found || !strings.EqualFold(string(name), scheme) {
		return "", false
	}
	cred := bytes.TrimSpace(rest)
	if len(cred) == 0 {
		return "", false
	}
	return string(cred), true
}
