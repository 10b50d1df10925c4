package transport

import (
	"net/url"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

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
