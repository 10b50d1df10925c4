package transport

import (
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/heepr/heeprd/metrics"
)

const contentJSON = "application/json"

// handler answers a request and returns its error, if any; route wraps it with the envelope and
// the metrics, so every handler reports failure the same way.
type handler func(ctx *fasthttp.RequestCtx) error

// route instruments a handler under a route label. A request that carries credentials from an
// address that failed to authenticate too often is refused before they are checked.
func (s *Server) route(label string, h handler) fasthttp.RequestHandler {
	return s.routeThen(label, h, nil)
}

// routeThen is route with a second observer of the answered request and its duration, so that
// a route with metrics of its own reads the clock only once.
func (s *Server) routeThen(label string, h handler,
	then func(*fasthttp.RequestCtx, float64)) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		var err error
		if len(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)) > 0 {
			err = s.guard.allow(func() string { return ctx.RemoteIP().String() }, start)
		}
		if err == nil {
			err = h(ctx)
		}
		if err != nil {
			s.fail(ctx, err)
		}
		took := time.Since(start).Seconds()
		s.metrics.Request(label, ctx.Response.StatusCode(), took)
		if then != nil {
			then(ctx, took)
		}
	}
}

// fail writes the error envelope, counts authentication failures and logs server-side failures.
func (s *Server) fail(ctx *fasthttp.RequestCtx, err error) {
	code := writeError(ctx, err)
	switch code {
	case "missing_credentials", "key_unknown", "key_revoked", "key_expired",
		"bootstrap_unknown", "bootstrap_used", "bootstrap_expired":
		s.metrics.AuthFailure(code)
		if code != "missing_credentials" { // only a presented credential can be a guess
			s.guard.failed(ctx.RemoteIP().String(), time.Now())
		}
	case "rate_limited":
		s.metrics.RateLimited()
	case "internal", "unavailable":
		s.warnings.warn(code, "request failed", "method", string(ctx.Method()),
			"path", string(ctx.Path()), "status", ctx.Response.StatusCode(), "err", err)
	}
}

// agentRouter serves every agent endpoint at /X and at /api/X: heepr's pages name both.
func (s *Server) agentRouter() fasthttp.RequestHandler {
	r := s.newRouter()
	for _, prefix := range []string{"", "/api"} {
		r.POST(prefix+"/agent/register", s.route("/agent/register", s.register))
		r.GET(prefix+"/events", s.pollRoute())
		r.POST(prefix+"/orders/{id}/deliver",
			s.route("/orders/{id}/deliver", s.withKeyedBody(s.deliver)))
		r.POST(prefix+"/orders/{id}/decline",
			s.route("/orders/{id}/decline", s.withKeyedBody(s.decline)))
		r.POST(prefix+"/orders/{id}/flag", s.route("/orders/{id}/flag", s.withKeyedBody(s.flag)))
		r.POST(prefix+"/status", s.route("/status", s.withKeyedBody(s.status)))
		r.GET(prefix+"/skill", s.route("/skill", s.skill))
		r.GET(prefix+"/agents/{id}/skill/{file}", s.route("/agents/{id}/skill/{file}", s.skillFile))
	}
	return r.Handler
}

// opsRouter serves the admin API, metrics and health checks.
func (s *Server) opsRouter() fasthttp.RequestHandler {
	r := s.newRouter()
	admin := func(h handler) fasthttp.RequestHandler { return s.route("/admin", s.adminOnly(h)) }
	r.POST("/admin/agents", admin(s.createAgent))
	r.GET("/admin/agents/{id}", admin(s.getAgent))
	r.POST("/admin/agents/{id}/bootstrap", admin(s.mintBootstrap))
	r.POST("/admin/agents/{id}/revoke-key", admin(s.revokeKey))
	r.PUT("/admin/agents/{id}/skill/{file}", admin(s.putSkill))
	r.POST("/admin/orders", admin(s.placeOrder))
	r.GET("/admin/orders/{id}", admin(s.getOrder))
	r.GET("/admin/orders/{id}/deliveries/{n}/files/{name}", admin(s.getFile))
	for _, action := range ownerActions {
		r.POST("/admin/orders/{id}/"+string(action), admin(s.decide(action)))
	}
	r.POST("/admin/orders/{id}/revision", admin(s.requestRevision))
	r.POST("/admin/orders/{id}/scope", admin(s.changeScope))
	r.GET("/admin/backup", admin(s.backup))
	r.GET("/debug/pprof/", admin(s.profiler()))
	r.GET("/debug/pprof/{name}", admin(s.profiler()))
	r.GET("/metrics", s.metricsHandler())
	r.GET("/healthz", s.healthz)
	r.GET("/readyz", s.readyz)
	return r.Handler
}

func (s *Server) newRouter() *router.Router {
	r := router.New()
	r.RedirectTrailingSlash = false // a redirect would turn a POST into a GET in many clients
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.NotFound = s.route(metrics.RouteUnmatched, func(*fasthttp.RequestCtx) error {
		return notFound("no such route")
	})
	r.MethodNotAllowed = s.route(metrics.RouteUnmatched, func(*fasthttp.RequestCtx) error {
		return ErrMethodNotAllowed
	})
	r.PanicHandler = func(ctx *fasthttp.RequestCtx, p any) {
		s.log.Error("handler panicked", "route", string(ctx.Path()), "panic", p)
		writeError(ctx, errInternalPanic)
	}
	return r
}
