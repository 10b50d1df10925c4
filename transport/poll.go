package transport

import (
	"bufio"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/heepr/heeprd/actors"
	"github.com/heepr/heeprd/metrics"
)

// emptyEvents is the whole answer to an idle poll: heepr answers {} rather than an empty list to
// keep idle agents' traffic (and their LLM tokens) small.
var emptyEvents = []byte("{}")

// pollRoute answers GET /events, the hot path: parse the key, one message to the agent's actor,
// one write. It keeps its own metrics beside the route's.
func (s *Server) pollRoute() fasthttp.RequestHandler {
	return s.routeThen("/events", s.poll, func(ctx *fasthttp.RequestCtx, took float64) {
		s.metrics.Poll(pollOutcome(ctx), took)
	})
}

func pollOutcome(ctx *fasthttp.RequestCtx) string {
	switch code := ctx.Response.StatusCode(); {
	case code == fasthttp.StatusOK && ctx.Response.IsBodyStream():
		return metrics.PollEvents // streamed by writeThenDrain; reading it here would drain early
	case code == fasthttp.StatusOK:
		return metrics.PollEmpty
	case code == fasthttp.StatusUnauthorized:
		return metrics.PollUnauthorized
	case code == fasthttp.StatusTooManyRequests: // an agent's own pace, not the server's health
		return metrics.PollRateLimited
	default:
		return metrics.PollUnavailable
	}
}

// polls recycles Poll messages: an empty poll then allocates only inside the actor mailbox.
var polls = sync.Pool{New: func() any { return new(actors.Poll) }}

func (s *Server) poll(ctx *fasthttp.RequestCtx) error {
	agentID, key, err := bearerView(ctx)
	if err != nil {
		return err
	}
	msg := polls.Get().(*actors.Poll)
	msg.Key = key
	v, err := s.askAgent(agentID, msg)
	if !errors.Is(err, actors.ErrUnavailable) { // else the actor may still read it
		polls.Put(msg)
	}
	if err != nil {
		return err
	}

	r := v.(*actors.PollResult)
	ctx.Response.Header.SetContentType(contentJSON)
	if len(r.Events) == 0 {
		ctx.SetBody(emptyEvents)
		return nil
	}
	body, err := json.Marshal(eventsReply{Events: wireEvents(r)})
	if err != nil {
		return errors.Join(actors.ErrInternal, err)
	}
	s.writeThenDrain(ctx, strings.Clone(agentID), key, r.Events[len(r.Events)-1].Seq, body)
	return nil
}

// writeThenDrain answers a poll that returned events and drains them from the queue only once
// the answer was written to the connection: a client that hung up first gets them again when
// their lease ends. Until then the lease keeps them from a concurrent poll, so the agent's next
// poll does not see them twice even if it overtakes the drain.
func (s *Server) writeThenDrain(ctx *fasthttp.RequestCtx, agentID string, key actors.SecretHash,
	upTo uint64, body []byte) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.Header.SetContentType(contentJSON)
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		if _, err := w.Write(body); err != nil {
			return
		}
		if err := w.Flush(); err != nil {
			return
		}
		s.fleet.Tell(agentID, &actors.Drain{Key: key, UpTo: upTo})
	})
}

type eventsReply struct {
	Events []wireEvent `json:"events"`
}

// wireEvent is an event as an agent receives it. SF carries the platform rules on every event
// that assigns work.
type wireEvent struct {
	ID        string           `json:"id"`
	Kind      actors.EventKind `json:"kind"`
	CreatedAt time.Time        `json:"created_at"`
	OrderID   string           `json:"order_id"`
	Order     actors.OrderView `json:"order"`
	Note      string           `json:"note,omitempty"`
	Revision  int              `json:"revision,omitempty"`
	Reason    string           `json:"reason,omitempty"`
	SF        string           `json:"sf,omitempty"`
}

func wireEvents(r *actors.PollResult) []wireEvent {
	out := make([]wireEvent, len(r.Events))
	for i, e := range r.Events {
		out[i] = wireEvent{
			ID: e.ID, Kind: e.Kind, CreatedAt: e.CreatedAt, OrderID: e.OrderID, Order: e.Order,
			Note: e.Note, Revision: e.Revision, Reason: e.Reason,
		}
		if e.Kind.AssignsWork() {
			out[i].SF = r.Rules
		}
	}
	return out
}

// writeJSON encodes v as the response body.
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return errors.Join(actors.ErrInternal, err)
	}
	writeJSONBody(ctx, status, body)
	return nil
}

// writeJSONBody sets an encoded JSON body, copying it, with its status and content type.
func writeJSONBody(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.Response.Header.SetContentType(contentJSON)
	ctx.SetStatusCode(status)
	ctx.SetBody(body)
}
