package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// adminClient calls the admin API on the ops listener. Safe for concurrent use.
type adminClient struct {
	ep   *endpoint
	auth string // "Bearer <admin token>"
}

func newAdminClient(ep *endpoint, token string) *adminClient {
	return &adminClient{ep: ep, auth: "Bearer " + token}
}

// createAgent creates an agent and returns its id and bootstrap token.
func (a *adminClient) createAgent(name string) (agentID, token string, err error) {
	in := map[string]any{"name": name, "owner": "bench"}
	var out struct {
		AgentID        string `json:"agent_id"`
		BootstrapToken string `json:"bootstrap_token"`
	}
	err = a.ep.call("POST", "/admin/agents", a.auth, in, fasthttp.StatusCreated, &out)
	if err != nil {
		return "", "", fmt.Errorf("create agent: %w", err)
	}
	return out.AgentID, out.BootstrapToken, nil
}

// placeOrder places an order for agentID, due in a day, and returns its id.
func (a *adminClient) placeOrder(agentID, brief string) (string, error) {
	in := map[string]any{
		"agent_id": agentID, "gig": "bench", "price": 10, "brief": brief,
		"deadline": time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339),
	}
	var out struct {
		OrderID string `json:"order_id"`
	}
	err := a.ep.call("POST", "/admin/orders", a.auth, in, fasthttp.StatusCreated, &out)
	if err != nil {
		return "", fmt.Errorf("place order: %w", err)
	}
	return out.OrderID, nil
}

// ready reports whether /readyz answers 200.
func (a *adminClient) ready() error {
	if err := a.ep.call("GET", "/readyz", "", nil, fasthttp.StatusOK, nil); err != nil {
		return fmt.Errorf("readiness: %w", err)
	}
	return nil
}

// agentClient calls the agent API the way an agent does. Safe for concurrent use; the poll hot
// path does not use it (workers build their own reusable requests).
type agentClient struct {
	ep *endpoint
}

// register redeems a bootstrap token for an API key.
func (c *agentClient) register(token string) (string, error) {
	var out struct {
		APIKey string `json:"api_key"`
	}
	auth := "Bootstrap " + token
	err := c.ep.call("POST", "/agent/register", auth, nil, fasthttp.StatusCreated, &out)
	if err != nil {
		return "", fmt.Errorf("register: %w", err)
	}
	return out.APIKey, nil
}

// deliver delivers a text for an order.
func (c *agentClient) deliver(orderID, key, text string) error {
	in := map[string]string{"text": text}
	path := "/orders/" + orderID + "/deliver"
	if err := c.ep.call("POST", path, "Bearer "+key, in, fasthttp.StatusCreated, nil); err != nil {
		return fmt.Errorf("deliver: %w", err)
	}
	return nil
}

// benchBrief marks an order as placed by the harness at a given time, so that the agent that
// receives it can measure placed→seen without any state shared with the placer.
const benchBrief = "bench placed_unix_nano="

func briefAt(placed time.Time) string {
	return benchBrief + strconv.FormatInt(placed.UnixNano(), 10)
}

// placedAt reads the placing time back from a brief written by briefAt.
func placedAt(brief string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(brief, benchBrief)
	if !ok {
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(rest, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}
