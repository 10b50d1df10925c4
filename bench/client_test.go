package main

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestEnvelopeCode(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"envelope", `{"error":{"code":"key_unknown","message":"no such key"}}`, "key_unknown"},
		{"spaces and order", `{ "error" : { "message": "m", "code" : "unavailable" } }`,
			"unavailable"},
		{"no code", `{"error":{"message":"m"}}`, ""},
		{"error is a string", `{"error":"boom"}`, ""},
		{"idle poll", `{}`, ""},
		{"not JSON", `<html>502 Bad Gateway</html>`, ""},
		{"truncated", `{"error":{"code":"key_unk`, ""},
		{"empty", ``, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := envelopeCode([]byte(tt.body)); got != tt.want {
				t.Errorf("envelopeCode(%s) = %q, want %q", tt.body, got, tt.want)
			}
		})
	}
}

func TestErrClass(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"success", nil, ""},
		{"status and code", fmt.Errorf("poll: %w", newHTTPError(503,
			[]byte(`{"error":{"code":"unavailable","message":"x"}}`))), "503 unavailable"},
		{"status without envelope", newHTTPError(502, []byte("bad gateway")), "502"},
		{"timeout", fmt.Errorf("GET /events: %w", fasthttp.ErrTimeout), "net timeout"},
		{"refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), "net conn_refused"},
		{"closed", fasthttp.ErrConnectionClosed, "net conn_closed"},
		{"other", errors.New("boom"), "net other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errClass(tt.err); got != tt.want {
				t.Errorf("errClass = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestResponseClass(t *testing.T) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	resp.SetStatusCode(429)
	resp.SetBodyString(`{"error":{"code":"rate_limited","message":"slow down"}}`)
	if got := responseClass(nil, resp, 200); got != "429 rate_limited" {
		t.Errorf("= %q, want 429 rate_limited", got)
	}
	resp.SetStatusCode(200)
	resp.SetBodyString(`{}`)
	if got := responseClass(nil, resp, 200); got != "" {
		t.Errorf("= %q for a 200, want none", got)
	}
}

func TestBriefRoundTrip(t *testing.T) {
	at := time.Unix(1_700_000_000, 123_456_789)
	got, ok := placedAt(briefAt(at))
	if !ok || !got.Equal(at) {
		t.Errorf("placedAt(briefAt(%v)) = %v, %v", at, got, ok)
	}
	for _, brief := range []string{"", "write a poem", benchBrief + "soon", benchBrief} {
		if _, ok := placedAt(brief); ok {
			t.Errorf("placedAt(%q) accepted a brief the harness did not write", brief)
		}
	}
}
