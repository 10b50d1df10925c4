package transport

import (
	"bytes"
	"io"

	"github.com/valyala/fasthttp"
)

// drainLimit bounds how much of a refused body is read and thrown away. Reading it lets the
// answer reach the client: closing a socket with unread data makes the kernel reset the
// connection, and the client then sees a broken pipe instead of the answer.
const drainLimit = 256 << 20

// smallBodyBytes is the largest body read before the route is known. A larger body, or one of
// unknown length (chunked), is read only by its route once the request's credential checked
// out (readBody). Without that, anyone who can connect could make the server hold a body of
// up to the listener's limit (34 MiB on the agent API by default) per connection.
const smallBodyBytes = 64 << 10

// deferredBodyKey is the user value under which limitBody leaves a body it did not read.
const deferredBodyKey = "heeprd.deferredBody"

// deferredBody is a request body not read yet, and the listener's limit on it.
type deferredBody struct {
	stream io.Reader
	limit  int64
	what   string // names the setting behind limit, for the 413
}

// limitBody enforces the body limit itself, so that an oversized request gets the JSON envelope
// and a 413 it can read. The listener streams bodies (fasthttp's StreamRequestBody). A small
// one is read into memory before the handler runs; a larger one is left to readBody. Whatever
// of a body the handler left unread is read and dropped before the answer is sent. unrouted
// is told of a request answered here, before any route.
func limitBody(h fasthttp.RequestHandler, limit int64, what string,
	unrouted func(*fasthttp.RequestCtx)) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if !ctx.Request.IsBodyStream() {
			h(ctx)
			return
		}
		stream := ctx.RequestBodyStream()
		length := ctx.Request.Header.ContentLength()
		switch {
		case length > int(limit):
			writeError(ctx, tooLarge(what, limit))
			unrouted(ctx)
		case length >= 0 && length <= smallBodyBytes:
			if err := readInto(ctx, stream, limit, what); err != nil {
				writeError(ctx, err)
				unrouted(ctx)
				return
			}
			h(ctx)
			return // read to its end already
		default:
			// Taken off the request, so that nothing but readBody reads it: fasthttp's
			// PostBody would read a chunked body of any size (the pprof and metrics adaptors
			// call it). The stream stays the server's to drain (see fasthttp's ResetBody).
			ctx.Request.ResetBody()
			ctx.SetUserValue(deferredBodyKey, &deferredBody{stream: stream, limit: limit,
				what: what})
			h(ctx)
		}
		discardBody(ctx, stream)
	}
}

// readBody reads a body that limitBody left for the route, if any, once check accepted the
// request's credential. Routes that use the body call it (or readSmallBody) before anything
// reads the body; any other route leaves a large body unread.
func readBody(ctx *fasthttp.RequestCtx, check func() error) error {
	body, ok := ctx.UserValue(deferredBodyKey).(*deferredBody)
	if !ok {
		return nil
	}
	if err := check(); err != nil {
		return err
	}
	ctx.RemoveUserValue(deferredBodyKey)
	return readInto(ctx, body.stream, body.limit, body.what)
}

// readSmallBody is readBody for a route whose credential cannot be checked before its body is
// read: it reads at most smallBodyBytes. what names the body for the 413.
func readSmallBody(ctx *fasthttp.RequestCtx, what string) error {
	body, ok := ctx.UserValue(deferredBodyKey).(*deferredBody)
	if !ok {
		return nil
	}
	ctx.RemoveUserValue(deferredBodyKey)
	return readInto(ctx, body.stream, min(body.limit, smallBodyBytes), what)
}

// readInto reads the whole body, up to limit, and makes it the request's body. A body that
// ends before its Content-Length (fasthttp reports that as a plain end) is refused, not taken
// for the whole.
func readInto(ctx *fasthttp.RequestCtx, stream io.Reader, limit int64, what string) error {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(stream, limit+1))
	declared := ctx.Request.Header.ContentLength()
	switch {
	case err != nil:
		ctx.SetConnectionClose()
		return invalid("the request body could not be read")
	case n > limit:
		return tooLarge(what, limit)
	case declared >= 0 && n != int64(declared):
		ctx.SetConnectionClose()
		return invalid("the request body ended after %d of its %d bytes", n, declared)
	}
	ctx.Request.SetBodyRaw(buf.Bytes())
	return nil
}

// discardBody reads and drops up to drainLimit of what is left of a body, so that the answer
// reaches the client, and closes the connection if the read failed.
func discardBody(ctx *fasthttp.RequestCtx, stream io.Reader) {
	if _, err := io.Copy(io.Discard, io.LimitReader(stream, drainLimit)); err != nil {
		ctx.SetConnectionClose()
	}
}
