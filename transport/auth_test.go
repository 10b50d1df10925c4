package transport

import (
	"strings"
	"testing"
)

func TestCredential(t *testing.T) {
	cases := []struct {
		name, header, scheme, want string
		ok                         bool
	}{
		{"bearer", "Bearer sk_live_x", schemeBearer, "sk_live_x", true},
		{"scheme case-insensitive", "bEaReR sk_live_x", schemeBearer, "sk_live_x", true},
		{"extra spaces", "  Bearer    sk_live_x  ", schemeBearer, "sk_live_x", true},
		{"bootstrap", "BOOTSTRAP bs_x", schemeBootstrap, "bs_x", true},
		{"empty", "", schemeBearer, "", false},
		{"scheme only", "Bearer", schemeBearer, "", false},
		{"scheme and space", "Bearer   ", schemeBearer, "", false},
		{"other scheme", "Basic dXNlcg==", schemeBearer, "", false},
		{"bootstrap on bearer route", "Bootstrap bs_x", schemeBearer, "", false},
		{"prefix of scheme", "Bear sk_live_x", schemeBearer, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := credential([]byte(tc.header), tc.scheme)
			if got != tc.want || ok != tc.ok {
				t.Errorf("credential(%q) = %q, %v; want %q, %v", tc.header, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func FuzzCredential(f *testing.F) {
	for _, seed := range []string{"Bearer x", "bootstrap  y ", "", " ", "Bearer\x00x", "Bearer \xff"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		for _, scheme := range []string{schemeBearer, schemeBootstrap} {
			cred, ok := credential([]byte(header), scheme)
			if ok && (cred == "" || strings.TrimSpace(cred) != cred) {
				t.Fatalf("credential(%q) = %q: empty or untrimmed", header, cred)
			}
			if ok && !strings.Contains(header, cred) {
				t.Fatalf("credential(%q) = %q: not taken from the header", header, cred)
			}
		}
	})
}

func TestEtagMatches(t *testing.T) {
	const h = "sha256:abc"
	cases := []struct {
		header string
		want   bool
	}{
		{`"sha256:abc"`, true}, {`sha256:abc`, true}, {`W/"sha256:abc"`, true},
		{`"x", "sha256:abc"`, true}, {`*`, true}, {``, false}, {`"sha256:abd"`, false},
	}
	for _, tc := range cases {
		if got := etagMatches([]byte(tc.header), h); got != tc.want {
			t.Errorf("etagMatches(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestWithholdRequest(t *testing.T) {
	conn := `error when serving connection "127.0.0.1:1"<->"127.0.0.1:2": `
	for _, msg := range []string{
		conn + `error when reading request headers: cannot parse content-length: buffer ` +
			`size=140, contents: "GET /events HTTP/1.1\r\nAuthorization: Bearer sk_live_x_secret"`,
		conn + `error when reading request headers: unsupported http version "HTTP/9.9 x" in ` +
			`"GET /events HTTP/9.9 x\r\nAuthorization: Bearer sk_live_x_secret\r\n\r\n"`,
		conn + `malformed mime header: missing colon: "Authorization Bearer sk_live_x_secret"`,
		conn + `unsupported method "a \" quote" in "Authorization: Bearer sk_live_x_secret"`,
	} {
		got := withholdRequest(msg)
		if strings.Contains(got, "secret") || strings.Contains(got, "Authorization") {
			t.Errorf("withheld message still quotes the request: %q", got)
		}
		if !strings.HasPrefix(got, conn) {
			t.Errorf("the connection's addresses were lost: %q", got)
		}
	}
}
