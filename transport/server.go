// Package transport is heeprd's HTTP edge: it routes, decodes and checks requests, forwards them
// as messages to agent actors, and encodes the replies. It owns the mapping from errors to status
// codes and the JSON error envelope, and serves the ops listener (/admin, /metrics, /healthz,
// /readyz).
package transport

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/heepr/heeprd/actors"
	"github.com/heepr/heeprd/actors/skill"
	"github.com/heepr/heeprd/metrics"
)

// Config is what the transport needs beyond its collaborators.
type Config struct {
	AskTimeout      time.Duration // how long to wait for an agent actor before answering 503
	Limits          skill.Limits  // published to agents in skill.json and API.md
	AgentBudget     skill.Budget  // each agent's request budget, published in API.md
	MaxSkillBytes   int64         // largest skill file an owner may upload
	MaxBootstrapTTL time.Duration // longest bootstrap token lifetime (7 days)
	BaseURL         string        // the agent API's public base URL, rendered into skill files
	AdminToken      string        // bearer token of the admin API
	ReadTimeout     time.Duration
	WriteTimeout    time.Duration
	IdleTimeout     time.Duration
	Concurrency     int // most connections served at once per listener
	// AuthFailures is the budget of failed authentications per source address.
	AuthFailures actors.Budget
}

// Storage is what the transport reads from storage directly: delivered files (a missing one is
// an error matching fs.ErrNotExist) and backups.
type Storage interface {
	ReadFile(orderID string, delivery int, name string) ([]byte, error)
	Backup(w io.Writer) error
	// CanBackUp reports why Backup would fail before writing anything, or nil.
	CanBackUp() error
}

// Server holds the handlers of both listeners. Build it with New.
type Server struct {
	cfg       Config
	fleet     *actors.Fleet
	files     Storage
	metrics   *metrics.Metrics
	log       *slog.Logger
	adminHash [32]byte
	ready     atomic.Bool
	healthy   func() bool
	guard     *authGuard
	warnings  *throttledLog
}

// New returns a Server. healthy reports whether storage still accepts writes; the server is
// ready once SetReady(true) is called and while healthy holds.
func New(cfg Config, fleet *actors.Fleet, files Storage, m *metrics.Metrics,
	healthy func() bool, log *slog.Logger) *Server {
	return &Server{
		cfg: cfg, fleet: fleet, files: files, metrics: m, log: log, healthy: healthy,
		adminHash: sha256.Sum256([]byte(cfg.AdminToken)),
		guard:     newAuthGuard(cfg.AuthFailures),
		warnings:  newThrottledLog(log),
	}
}

// SetReady marks whether the server takes traffic (false during start-up and shutdown).
func (s *Server) SetReady(ready bool) {
	s.ready.Store(ready)
	s.metrics.SetReady(ready)
}

// Ready reports whether state is restored, listeners are up and storage is healthy.
func (s *Server) Ready() bool { return s.ready.Load() && s.healthy() }

// AgentServer returns the fasthttp server of the agent API.
func (s *Server) AgentServer() *fasthttp.Server {
	return s.httpServer("agent", s.agentRouter(), s.cfg.Limits.MaxBodyBytes, "--max-body-bytes")
}

// OpsServer returns the fasthttp server of the ops listener.
func (s *Server) OpsServer() *fasthttp.Server {
	return s.httpServer("ops", s.opsRouter(), max(s.cfg.MaxSkillBytes, 1<<20),
		"--max-skill-bytes, or 1 MiB if that is less")
}

// httpServer builds one listener's server; flag names the setting behind its body limit.
func (s *Server) httpServer(name string, h fasthttp.RequestHandler, maxBody int64,
	flag string) *fasthttp.Server {
	limit := fmt.Sprintf("the request body (%s)", flag) // names the setting that limits it
	unrouted := func(ctx *fasthttp.RequestCtx) { s.metrics.Refused(ctx.Response.StatusCode()) }
	return &fasthttp.Server{
		Handler: limitBody(h, maxBody, limit, unrouted),
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			parseError(ctx, err, maxBody, limit)
			unrouted(ctx)
		},
		Name:                 "heeprd",
		ReadTimeout:          s.cfg.ReadTimeout,
		WriteTimeout:         s.cfg.WriteTimeout,
		IdleTimeout:          s.cfg.IdleTimeout,
		MaxRequestBodySize:   int(maxBody),
		ReadBufferSize:       16 << 10,              // also the limit on request headers
		Concurrency:          2 * s.cfg.Concurrency, // stays above LimitConns' limit
		NoDefaultContentType: true,
		Logger:               fasthttpLogger{s.log.With("listener", name)},
		CloseOnShutdown:      true,
		// Bodies are streamed so that limitBody can answer an oversized one readably, and
		// multipart forms are parsed by the deliver handler, never spooled to temporary files.
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
	}
}

// parseError answers requests fasthttp could not read, with the envelope like every other error.
func parseError(ctx *fasthttp.RequestCtx, err error, maxBody int64, what string) {
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeError(ctx, tooLarge(what, maxBody))
	case errors.As(err, &small):
		writeError(ctx, invalid("the request headers are too large"))
		ctx.SetStatusCode(fasthttp.StatusRequestHeaderFieldsTooLarge)
	default:
		writeError(ctx, invalid("the request could not be parsed"))
	}
}

// fasthttpLogger sends fasthttp's own messages (connection errors) to slog at debug: they are
// about clients, not about the server's health. fasthttp quotes the raw request in some of them,
// credentials included, so that part is withheld.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(withholdRequest(fmt.Sprintf(format, args...)))
	}
}

// withholdRequest cuts the request bytes out of a fasthttp error message: everything after a
// "buffer size=" or "contents:" marker, and every quoted string but the connection's addresses.
func withholdRequest(msg string) string {
	for _, marker := range []string{"buffer size=", "contents:"} {
		if i := strings.Index(msg, marker); i >= 0 {
			msg = msg[:i] + "(request bytes withheld)"
		}
	}
	return quoted.ReplaceAllStringFunc(msg, func(q string) string {
		if address.MatchString(q) {
			return q
		}
		return `"(withheld)"`
	})
}

var (
	quoted  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	address = regexp.MustCompile(`^"[0-9A-Fa-f.:\[\]]+"$`)
)
