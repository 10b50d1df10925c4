package transport

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/pprof"
	"net/url"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/heepr/heeprd/actors"
)

// profiler serves Go's runtime profiles (net/http/pprof) under /debug/pprof/, for operators
// who need to see where a loaded server spends its time. It sits behind the admin token.
func (s *Server) profiler() handler {
	h := fasthttpadaptor.NewFastHTTPHandler(http.HandlerFunc(pprof.Index))
	named := map[string]fasthttp.RequestHandler{
		"cmdline": fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Cmdline),
		"profile": fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Profile),
		"symbol":  fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Symbol),
		"trace":   fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Trace),
	}
	return func(ctx *fasthttp.RequestCtx) error {
		if n, ok := named[pathParam(ctx, "name")]; ok {
			n(ctx)
			return nil
		}
		h(ctx) // the index and the named runtime profiles (heap, goroutine, ...)
		return nil
	}
}

func (s *Server) metricsHandler() fasthttp.RequestHandler {
	h := promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{})
	return fasthttpadaptor.NewFastHTTPHandler(h)
}

// healthz answers 200 while the process serves requests at all.
func (s *Server) healthz(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.SetContentType(contentJSON)
	ctx.SetBodyString(`{"status":"ok"}`)
}

// readyz answers 200 once every agent is restored and the listeners are up, and 503 during
// start-up, shutdown, or after storage failed.
func (s *Server) readyz(ctx *fasthttp.RequestCtx) {
	if !s.Ready() {
		ctx.Response.Header.Set("Retry-After", "1")
		ctx.Response.Header.SetContentType(contentJSON)
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString(`{"error":{"code":"unavailable","message":"not ready"}}`)
		return
	}
	ctx.Response.Header.SetContentType(contentJSON)
	ctx.SetBodyString(`{"status":"ready"}`)
}

func urlPathEscape(s string) string { return url.PathEscape(s) }

// backup streams a consistent backup of the whole store. Its trailer carries a checksum, so a
// stream cut short by an error is refused by restore rather than loaded half.
func (s *Server) backup(ctx *fasthttp.RequestCtx) error {
	// Checked before the stream starts: once it has, a failure can only cut it short.
	if err := s.files.CanBackUp(); err != nil {
		return fmt.Errorf("%w: %w", actors.ErrInvalidState, err)
	}
	ctx.Response.Header.SetContentType("application/octet-stream")
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="heeprd.backup"`)
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		err := s.files.Backup(w)
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			s.log.Error("backup stream failed", "err", err)
		}
	})
	return nil
}
