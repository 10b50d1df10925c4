package transport

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/heepr/heeprd/actors"
)

// statusBody is POST /status: the agent's status, progress on one of its orders, or both.
type statusBody struct {
	Status   *string `json:"status"`
	OrderID  *string `json:"order_id"`
	Progress *int    `json:"progress"`
	Message  *string `json:"message"`
}

type statusReply struct {
	AgentID string             `json:"agent_id"`
	Status  actors.AgentStatus `json:"status"`
	Order   *progressReply     `json:"order,omitempty"`
}

type progressReply struct {
	OrderID  string `json:"order_id"`
	Progress int    `json:"progress"`
	Message  string `json:"message,omitempty"`
}

func (s *Server) status(ctx *fasthttp.RequestCtx) error {
	agentID, key, err := bearer(ctx)
	if err != nil {
		return err
	}
	var body statusBody
	if err := decodeStatus(ctx.PostBody(), &body); err != nil {
		return err
	}
	msg, err := s.statusMessage(key, &body)
	if err != nil {
		return err
	}
	if msg.Idem, err = idempotency(ctx, "status", body); err != nil {
		return err
	}

	v, err := s.askAgent(agentID, msg)
	if err != nil {
		return err
	}
	r := v.(*actors.SetStatusResult)
	reply := statusReply{AgentID: r.AgentID, Status: r.Status}
	if r.Progress != nil {
		reply.Order = &progressReply{OrderID: r.OrderID, Progress: r.Progress.Percent,
			Message: r.Progress.Message}
	}
	var scratch [256]byte
	out, err := encodeStatusReply(scratch[:0], &reply)
	if err != nil {
		return errors.Join(actors.ErrInternal, err)
	}
	writeJSONBody(ctx, fasthttp.StatusOK, out)
	return nil
}

// decodeStatus reads a status body, the common shape without encoding/json (flat.go).
func decodeStatus(raw []byte, b *statusBody) error {
	fields := statusFields(b)
	if decodeFlat(raw, fields[:]) {
		return nil
	}
	*b = statusBody{}
	return decodeJSON(raw, b, false)
}

// statusFields are the fields of b as decodeFlat fills them.
func statusFields(b *statusBody) [4]flatField {
	return [...]flatField{
		{name: "status", str: &b.Status},
		{name: "order_id", str: &b.OrderID},
		{name: "progress", num: &b.Progress},
		{name: "message", str: &b.Message},
	}
}

// encodeStatusReply appends the reply to b as encoding/json writes it. The strings an agent
// usually sends need no escaping and are copied; anything else is left to encoding/json.
func encodeStatusReply(b []byte, r *statusReply) ([]byte, error) {
	out, ok := appendStatusReply(b, r)
	if ok {
		return out, nil
	}
	whole, err := json.Marshal(r)
	return append(b, whole...), err
}

func appendStatusReply(b []byte, r *statusReply) ([]byte, bool) {
	ok := true
	add := func(s string) {
		if ok {
			b, ok = appendPlainJSONString(b, s)
		}
	}
	b = append(b, `{"agent_id":`...)
	add(r.AgentID)
	b = append(b, `,"status":`...)
	add(string(r.Status))
	if o := r.Order; o != nil {
		b = append(b, `,"order":{"order_id":`...)
		add(o.OrderID)
		b = append(b, `,"progress":`...)
		b = strconv.AppendInt(b, int64(o.Progress), 10)
		if o.Message != "" {
			b = append(b, `,"message":`...)
			add(o.Message)
		}
		b = append(b, '}')
	}
	return append(b, '}'), ok
}

// statusMessage checks a status body: a status, an order's progress, or both.
func (s *Server) statusMessage(key actors.SecretHash, b *statusBody) (*actors.SetStatus, error) {
	msg := &actors.SetStatus{Key: key}
	if b.Status == nil && b.OrderID == nil {
		return nil, invalid("give \"status\" (active or paused) and/or \"order_id\" with \"progress\"")
	}
	if b.Status != nil {
		st := actors.AgentStatus(*b.Status)
		if st != actors.Active && st != actors.Paused {
			return nil, invalid("field \"status\" must be \"active\" or \"paused\"")
		}
		msg.Status = st
	}
	if b.OrderID != nil && *b.OrderID == "" {
		return nil, invalid("field \"order_id\" is empty")
	}
	if b.OrderID == nil {
		if b.Progress != nil || b.Message != nil {
			return nil, invalid("\"progress\" and \"message\" need \"order_id\"")
		}
		return msg, nil
	}
	if b.Progress == nil || *b.Progress < 0 || *b.Progress > 100 {
		return nil, invalid("field \"progress\" is required with \"order_id\" and must be 0 to 100")
	}
	msg.OrderID, msg.Progress = *b.OrderID, *b.Progress
	if b.Message != nil {
		if err := checkText("message", *b.Message, s.cfg.Limits.MaxTextBytes); err != nil {
			return nil, err
		}
		msg.Message = *b.Message
	}
	return msg, nil
}
