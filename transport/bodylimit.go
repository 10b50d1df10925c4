package transport

import (
	"bytes"
	"io"

	"github.com/valyala/fasthttp"
)

// drainLimit bounds how much of an oversized body is read and thrown away after a 413. Reading
// it lets the answer reach the client: closing a socket with unread data makes the kernel reset
// the connection, and the client then sees a broken pipe instead of the 413.
const drainLimit = 256 << 20

// limitBody enforces the body limit itself, so that an oversized request gets the JSON envelope
// and a 413 it can read. The listener streams bodies (fasthttp's StreamRequestBody); one within
// the limit is read into memory as usual before the handler runs, but one that may be larger
// than bodyGateBytes (by its length, or of a length not known) only once gate let it in.
func limitBody(h fasthttp.RequestHandler, limit int64, what string,
	gate bodyGate) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if !ctx.Request.IsBodyStream() {
			h(ctx)
			return
		}
		stream := ctx.RequestBodyStream()
		length := ctx.Request.Header.ContentLength()
		if length > int(limit) {
			refuseBody(ctx, stream, limit, what)
			return
		}
		if (length < 0 || length > bodyGateBytes) && !gate(ctx) {
			discardBody(ctx, stream)
			return
		}

		var buf bytes.Buffer
		n, err := buf.ReadFrom(io.LimitReader(stream, limit+1))
		switch {
		case err != nil:
			writeError(ctx, invalid("the request body could not be read"))
			ctx.SetConnectionClose()
		case n > limit:
			refuseBody(ctx, stream, limit, what)
		default:
			ctx.Request.SetBodyRaw(buf.Bytes())
			h(ctx)
		}
	}
}

func refuseBody(ctx *fasthttp.RequestCtx, stream io.Reader, limit int64, what string) {
	writeError(ctx, tooLarge(what, limit))
	discardBody(ctx, stream)
}

// discardBody reads and drops up to drainLimit of a body that was refused, so that the answer
// reaches the client, and closes the connection if the read failed.
func discardBody(ctx *fasthttp.RequestCtx, stream io.Reader) {
	if _, err := io.Copy(io.Discard, io.LimitReader(stream, drainLimit)); err != nil {
		ctx.SetConnectionClose()
	}
}
