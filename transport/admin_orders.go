package transport

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/heepr/heeprd/actors"
)

type placeOrderBody struct {
	AgentID  string `json:"agent_id"`
	Gig      string `json:"gig"`
	Scope    string `json:"scope"`
	Tier     string `json:"tier"`
	Price    *int64 `json:"price"`
	Deadline string `json:"deadline"`
	Brief    string `json:"brief"`
}

func (s *Server) placeOrder(ctx *fasthttp.RequestCtx) error {
	var b placeOrderBody
	if err := decodeJSON(ctx.PostBody(), &b, false); err != nil {
		return err
	}
	msg, err := s.orderMessage(&b)
	if err != nil {
		return err
	}

	v, err := s.askOwned(b.AgentID, msg)
	return answerOrder(ctx, fasthttp.StatusCreated, v, err)
}

// orderMessage checks a new order's fields.
func (s *Server) orderMessage(b *placeOrderBody) (*actors.PlaceOrder, error) {
	if b.AgentID == "" {
		return nil, invalid("field \"agent_id\" is required")
	}
	if b.Price == nil || *b.Price < 0 || *b.Price > maxPrice {
		return nil, invalid("field \"price\" is required: a whole number of points, 0 to %d",
			maxPrice)
	}
	deadline, err := time.Parse(time.RFC3339, b.Deadline)
	if err != nil {
		return nil, invalid("field \"deadline\" must be an RFC 3339 time such as 2030-01-02T15:04:05Z")
	}
	for _, f := range []struct {
		name, value string
		required    bool
	}{{"gig", b.Gig, true}, {"tier", b.Tier, false}} {
		if err := checkName(f.name, f.value, f.required); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct{ name, value string }{{"scope", b.Scope}, {"brief", b.Brief}} {
		if err := checkText(f.name, f.value, s.cfg.Limits.MaxTextBytes); err != nil {
			return nil, err
		}
	}
	return &actors.PlaceOrder{Gig: b.Gig, Scope: b.Scope, Tier: b.Tier, Brief: b.Brief,
		Price: *b.Price, Deadline: deadline.UTC()}, nil
}

// maxPrice bounds an order's price in points, far above any real order, so that sums over
// orders cannot overflow.
const maxPrice = 1_000_000_000

// askOrder forwards a message about an order to the agent the order id names.
func (s *Server) askOrder(orderID string, msg any) (any, error) {
	agentID, ok := actors.AgentOfOrder(orderID)
	if !ok {
		return nil, notFound("no order %q", orderID)
	}
	return s.ask(agentID, msg, notFound("no order %q", orderID))
}

func (s *Server) getOrder(ctx *fasthttp.RequestCtx) error {
	id := pathParam(ctx, "id")
	v, err := s.askOrder(id, &actors.GetOrder{OrderID: id})
	if err != nil {
		return err
	}
	return writeJSON(ctx, fasthttp.StatusOK, v.(*actors.Order))
}

func (s *Server) getFile(ctx *fasthttp.RequestCtx) error {
	id := pathParam(ctx, "id")
	name, err := url.PathUnescape(pathParam(ctx, "name")) // the router matches the raw path
	if err != nil {
		return notFound("no file %q", pathParam(ctx, "name"))
	}
	n, err := strconv.Atoi(pathParam(ctx, "n"))
	if err != nil || n < 1 {
		return notFound("no delivery %q", pathParam(ctx, "n"))
	}
	v, err := s.askOrder(id, &actors.GetFile{OrderID: id, Delivery: n, Name: name})
	if err != nil {
		return err
	}
	meta := v.(*actors.FileMeta)

	data, err := s.files.ReadFile(id, n, name)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: file %q is recorded but its bytes are missing", actors.ErrInternal, name)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", actors.ErrUnavailable, err)
	}
	ctx.Response.Header.SetContentType("application/octet-stream")
	ctx.Response.Header.Set("Content-Disposition", "attachment; filename*=UTF-8''"+
		urlPathEscape(name))
	ctx.Response.Header.Set("X-Content-SHA256", meta.SHA256)
	ctx.Response.Header.Set(fasthttp.HeaderETag, `"sha256:`+meta.SHA256+`"`)
	ctx.SetBody(data)
	return nil
}

// ownerActions are the owner's decisions, each at /admin/orders/{id}/<action>.
var ownerActions = []actors.Action{
	actors.ActApprove, actors.ActDeny, actors.ActRelease, actors.ActRefund, actors.ActUnflag,
}

type ownerBody struct {
	Reason string `json:"reason"`
}

func (s *Server) decide(action actors.Action) handler {
	return func(ctx *fasthttp.RequestCtx) error {
		var b ownerBody
		if err := decodeJSON(ctx.PostBody(), &b, true); err != nil {
			return err
		}
		if err := checkText("reason", b.Reason, s.cfg.Limits.MaxTextBytes); err != nil {
			return err
		}
		if action == actors.ActDeny && b.Reason == "" {
			b.Reason = "denied by the owner"
		}

		id := pathParam(ctx, "id")
		v, err := s.askOrder(id, &actors.OwnerDecision{OrderID: id, Action: action, Reason: b.Reason})
		return answerOrder(ctx, fasthttp.StatusOK, v, err)
	}
}

type revisionBody struct {
	Note string `json:"note"`
}

func (s *Server) requestRevision(ctx *fasthttp.RequestCtx) error {
	var b revisionBody
	if err := decodeJSON(ctx.PostBody(), &b, false); err != nil {
		return err
	}
	if b.Note == "" {
		return invalid("field \"note\" is required: what should change")
	}
	if err := checkText("note", b.Note, s.cfg.Limits.MaxTextBytes); err != nil {
		return err
	}

	id := pathParam(ctx, "id")
	v, err := s.askOrder(id, &actors.RequestRevision{OrderID: id, Note: b.Note})
	return answerOrder(ctx, fasthttp.StatusOK, v, err)
}

type scopeBody struct {
	Scope    *string `json:"scope"`
	Brief    *string `json:"brief"`
	Deadline *string `json:"deadline"`
}

func (s *Server) changeScope(ctx *fasthttp.RequestCtx) error {
	var b scopeBody
	if err := decodeJSON(ctx.PostBody(), &b, false); err != nil {
		return err
	}
	msg, err := s.scopeMessage(pathParam(ctx, "id"), &b)
	if err != nil {
		return err
	}

	v, err := s.askOrder(msg.OrderID, msg)
	return answerOrder(ctx, fasthttp.StatusOK, v, err)
}

func (s *Server) scopeMessage(id string, b *scopeBody) (*actors.ChangeScope, error) {
	if b.Scope == nil && b.Brief == nil && b.Deadline == nil {
		return nil, invalid("give at least one of \"scope\", \"brief\" and \"deadline\"")
	}
	msg := &actors.ChangeScope{OrderID: id, Scope: b.Scope, Brief: b.Brief}
	for name, v := range map[string]*string{"scope": b.Scope, "brief": b.Brief} {
		if v != nil {
			if err := checkText(name, *v, s.cfg.Limits.MaxTextBytes); err != nil {
				return nil, err
			}
		}
	}
	if b.Deadline != nil {
		t, err := time.Parse(time.RFC3339, *b.Deadline)
		if err != nil {
			return nil, invalid("field \"deadline\" must be an RFC 3339 time")
		}
		t = t.UTC()
		msg.Deadline = &t
	}
	return msg, nil
}
