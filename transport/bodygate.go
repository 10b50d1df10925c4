package transport

import (
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/heepr/heeprd/actors"
)

// bodyGateBytes is the body size above which a listener checks the request's credential before
// it reads the body. A body is read into memory before the handler runs (limitBody), up to the
// listener's limit: 34 MiB on the agent API by default. Without the check, anyone who can
// connect could make the server hold that much per connection. Only deliveries with files and
// skill uploads are larger, and both come with a credential.
const bodyGateBytes = 64 << 10

// bodyGate decides whether a large body may be read; if not, it has written the answer.
type bodyGate func(ctx *fasthttp.RequestCtx) bool

// agentBodyGate admits a large body to the agent API only with a key of an existing agent,
// checked by the agent's actor. The handler checks the key again, as it does for any request.
func (s *Server) agentBodyGate(ctx *fasthttp.RequestCtx) bool {
	return s.checkBeforeBody(ctx, func() error {
		agentID, key, err := bearerView(ctx)
		if err != nil {
			return fmt.Errorf("%w (a body over %d KiB is read only with an agent's key)",
				err, bodyGateBytes>>10)
		}
		_, err = s.askAgent(agentID, &actors.Authenticate{Key: key})
		return err
	})
}

// opsBodyGate admits a large body to the ops listener only with the admin token.
func (s *Server) opsBodyGate(ctx *fasthttp.RequestCtx) bool {
	return s.checkBeforeBody(ctx, func() error { return s.checkAdmin(ctx) })
}

// checkBeforeBody runs check after the failed-authentication guard, as a route does, and
// answers a failure the way a route would: counted, and fed to the guard.
func (s *Server) checkBeforeBody(ctx *fasthttp.RequestCtx, check func() error) bool {
	var err error
	if len(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)) > 0 {
		err = s.guard.allow(func() string { return ctx.RemoteIP().String() }, time.Now())
	}
	if err == nil {
		err = check()
	}
	if err != nil {
		s.fail(ctx, err)
		return false
	}
	return true
}
