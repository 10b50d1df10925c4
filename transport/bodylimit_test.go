package transport

import (
	"bytes"
	"errors"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestLimitBody checks which bodies limitBody reads before the route is known (small ones of a
// known length), which it leaves to the route's readBody, and that the route reads a deferred
// body only once its check passed. Whatever the outcome, the body is read to its end, so the
// answer reaches the client.
func TestLimitBody(t *testing.T) {
	const limit = 1 << 20
	errNoKey := errors.New("no key")
	tests := []struct {
		name      string
		size      int
		chunked   bool
		checkErr  error // what the route's check returns; nil: it passes
		wantCheck bool  // the route's check ran
		wantRead  bool  // the handler saw the whole body
		wantCode  int
	}{
		{"small: read with no check", 1 << 10, false, errNoKey, false, true, 200},
		{"at the small size", smallBodyBytes, false, errNoKey, false, true, 200},
		{"over it, key", smallBodyBytes + 1, false, nil, true, true, 200},
		{"over it, no key", smallBodyBytes + 1, false, errNoKey, true, false, 401},
		{"chunked, key", 10, true, nil, true, true, 200},
		{"chunked, no key", 10, true, errNoKey, true, false, 401},
		{"chunked over the limit", limit + 1, true, nil, true, false, 413},
		{"over the limit: 413 first", limit + 1, false, nil, false, false, 413},
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

			checked, read, unrouted := false, false, false
			h := func(ctx *fasthttp.RequestCtx) {
				err := readBody(ctx, func() error { checked = true; return tt.checkErr })
				switch {
				case errors.Is(err, errNoKey):
					ctx.SetStatusCode(fasthttp.StatusUnauthorized)
				case err != nil:
					writeError(ctx, err)
				default:
					read = bytes.Equal(ctx.PostBody(), body)
				}
			}
			limitBody(h, limit, "the body", func(*fasthttp.RequestCtx) { unrouted = true })(&ctx)

			if read != tt.wantRead {
				t.Errorf("handler read the whole body: %v, want %v", read, tt.wantRead)
			}
			if checked != tt.wantCheck {
				t.Errorf("check ran: %v, want %v", checked, tt.wantCheck)
			}
			// only a refusal before the handler is limitBody's to count
			if want := tt.wantCode == 413 && !tt.wantCheck; unrouted != want {
				t.Errorf("counted as unrouted: %v, want %v", unrouted, want)
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

// TestDeferredBodyHidden: a handler that reads the body without readBody, as fasthttp's
// net/http adaptor does, finds none when the body was left for the route.
func TestDeferredBodyHidden(t *testing.T) {
	for _, size := range []int{10, smallBodyBytes + 1} {
		src := bytes.NewReader(make([]byte, size))
		var ctx fasthttp.RequestCtx
		ctx.Request.SetBodyStream(src, -1)
		var got int
		limitBody(func(ctx *fasthttp.RequestCtx) { got = len(ctx.PostBody()) }, 1<<20,
			"the body", func(*fasthttp.RequestCtx) {})(&ctx)
		if got != 0 || src.Len() != 0 {
			t.Errorf("chunked body of %d bytes: handler read %d, %d left undrained", size, got,
				src.Len())
		}
	}
}

// TestReadSmallBody: a route that cannot check a credential first reads at most
// smallBodyBytes of a deferred body.
func TestReadSmallBody(t *testing.T) {
	for _, size := range []int{10, smallBodyBytes, smallBodyBytes + 1} {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetBodyStream(bytes.NewReader(make([]byte, size)), -1)
		var err error
		limitBody(func(ctx *fasthttp.RequestCtx) {
			err = readSmallBody(ctx, "a small body")
		}, 1<<20, "the body", func(*fasthttp.RequestCtx) {})(&ctx)
		if tooBig := size > smallBodyBytes; tooBig != (err != nil) {
			t.Errorf("%d bytes: %v", size, err)
		}
	}
}

// TestShortBodyRefused: a body that ends before its Content-Length is refused with 400, read
// before the route or by it, rather than taken for the whole body.
func TestShortBodyRefused(t *testing.T) {
	for _, declared := range []int{100, smallBodyBytes + 100} {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetBodyStream(bytes.NewReader(make([]byte, declared-10)), declared)
		called := false
		limitBody(func(ctx *fasthttp.RequestCtx) {
			if err := readBody(ctx, func() error { return nil }); err != nil {
				writeError(ctx, err)
				return
			}
			called = true
		}, 1<<20, "the body", func(*fasthttp.RequestCtx) {})(&ctx)
		if called || ctx.Response.StatusCode() != fasthttp.StatusBadRequest ||
			!ctx.Response.ConnectionClose() {
			t.Errorf("a body of %d bytes declared as %d: handler ran %v, status %d",
				declared-10, declared, called, ctx.Response.StatusCode())
		}
	}
}
