package transport

import (
	"bytes"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestLimitBodyGate checks which bodies limitBody reads only after its gate let them in: those
// over bodyGateBytes and those of unknown length. A refused body never reaches the handler and
// is read to its end and dropped, so the answer reaches the client.
func TestLimitBodyGate(t *testing.T) {
	const limit = 1 << 20
	tests := []struct {
		name      string
		size      int
		chunked   bool
		admit     bool
		wantGate  bool
		wantCalls bool
		wantCode  int
	}{
		{"small body, no gate", 1 << 10, false, false, false, true, 200},
		{"at the gate's size", bodyGateBytes, false, false, false, true, 200},
		{"over it, admitted", bodyGateBytes + 1, false, true, true, true, 200},
		{"over it, refused", bodyGateBytes + 1, false, false, true, false, 401},
		{"unknown length, admitted", 10, true, true, true, true, 200},
		{"unknown length, refused", 10, true, false, true, false, 401},
		{"over the limit: 413 first", limit + 1, false, true, false, false, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := bytes.Repeat([]byte("b"), tt.size)
			src := bytes.NewReader(body)
			var ctx fasthttp.RequestCtx
			size := tt.size
			if tt.chunked {
				size = -1
			}
			ctx.Request.SetBodyStream(src, size)

			gated, called := false, false
			gate := func(ctx *fasthttp.RequestCtx) bool {
				gated = true
				if !tt.admit {
					ctx.SetStatusCode(fasthttp.StatusUnauthorized)
				}
				return tt.admit
			}
			h := func(ctx *fasthttp.RequestCtx) {
				called = true
				if !bytes.Equal(ctx.PostBody(), body) {
					t.Errorf("handler got %d bytes, want the whole body of %d",
						len(ctx.PostBody()), len(body))
				}
			}
			limitBody(h, limit, "the body", gate)(&ctx)

			if gated != tt.wantGate || called != tt.wantCalls {
				t.Errorf("gate asked %v, handler called %v; want %v and %v",
					gated, called, tt.wantGate, tt.wantCalls)
			}
			if got := ctx.Response.StatusCode(); got != tt.wantCode {
				t.Errorf("status %d, want %d", got, tt.wantCode)
			}
			if src.Len() != 0 {
				t.Errorf("%d bytes of the body left unread", src.Len())
			}
		})
	}
}
