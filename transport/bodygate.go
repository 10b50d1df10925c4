package transport

import (
	"github.com/valyala/fasthttp"

	"github.com/heepr/heeprd/actors"
)

// withKeyedBody lets h read a large body (see smallBodyBytes) only with a key of an existing
// agent, checked by the agent's actor: one round trip more, for large bodies only. The key is
// checked again with the request itself, as for any request.
func (s *Server) withKeyedBody(h handler) handler {
	return func(ctx *fasthttp.RequestCtx) error {
		err := readBody(ctx, func() error {
			agentID, key, err := bearerView(ctx)
			if err != nil {
				return err
			}
			_, err = s.askAgent(agentID, &actors.Authenticate{Key: key})
			return err
		})
		if err != nil {
			return err
		}
		return h(ctx)
	}
}
