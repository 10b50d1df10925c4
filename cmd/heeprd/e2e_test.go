package main

// End-to-end tests: each starts the real heeprd binary on loopback ports and checks the agent API
// and the admin API against the contract (docs: /work/contract-notes.md, SPEC.md). They are
// skipped with -short.

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const shortSkip = "end-to-end test: starts the heeprd binary"

// ---- 1. the whole flow ----

func TestE2EFullFlow(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	s := startServer(t, "")
	start := time.Now().Add(-time.Second)

	c := s.createAgent(t, map[string]any{
		"name": "Flow Fox", "owner": "owner@example.test", "poll_minutes": 5,
	})
	t.Run("bootstrap token lives 7 days by default", func(t *testing.T) {
		r := s.admin(t, "POST", "/admin/agents/"+c.id+"/bootstrap", nil)
		b := expectJSON[bootstrapJSON](t, r, 201)
		s.noteSecret(b.BootstrapToken)
		exp := parseTime(t, "bootstrap_expires_at", b.BootstrapExpiresAt)
		if d := time.Until(exp); d < 7*24*time.Hour-time.Minute || d > 7*24*time.Hour {
			t.Errorf("default bootstrap TTL %s, want 7 days", d)
		}
		c.token = b.BootstrapToken
	})
	t.Run("fresh agent", func(t *testing.T) {
		a := s.getAgent(t, c.id)
		if a.AgentID != c.id || a.Name != "Flow Fox" || a.Owner != "owner@example.test" {
			t.Errorf("agent = %+v", a)
		}
		if a.Status != "active" || a.KeyState != "none" || a.Online || a.LastPollAt != nil {
			t.Errorf("fresh agent: status %q key_state %q online %v last_poll_at %v; want "+
				"active, none, false, null", a.Status, a.KeyState, a.Online, a.LastPollAt)
		}
		if a.Settings.PollMinutes != 5 || a.Settings.RevisionCap != 2 ||
			a.Settings.ManualAcceptance || a.Settings.KeyTTLSeconds != 0 {
			t.Errorf("settings = %+v, want poll 5, revision cap 2 (default), auto, no TTL",
				a.Settings)
		}
		if a.EventsQueued != 0 {
			t.Errorf("events_queued = %d, want 0", a.EventsQueued)
		}
	})

	var key string
	t.Run("register", func(t *testing.T) {
		r := s.tryRegister(t, "", "Bootstrap", c.token, map[string]any{"agent_id": c.id})
		reg := expectJSON[registerJSON](t, r, 201)
		if got := jsonKeys(t, r.body); !slices.Equal(got, []string{"agent_id", "api_key"}) {
			t.Errorf("register answer keys %v, want [agent_id api_key]", got)
		}
		if reg.AgentID != c.id {
			t.Errorf("agent_id %q, want %q", reg.AgentID, c.id)
		}
		checkToken(t, "api key", reg.APIKey, "sk_live_", c.id)
		key = reg.APIKey
	})
	if key == "" {
		t.Fatal("no API key; cannot go on")
	}

	t.Run("idle poll is exactly {}", func(t *testing.T) {
		s.expectEmptyPoll(t, key)
		a := s.getAgent(t, c.id)
		if !a.Online || a.LastPollAt == nil || a.KeyState != "active" {
			t.Fatalf("after a poll: online %v last_poll_at %v key_state %q; want true, "+
				"a time, active", a.Online, a.LastPollAt, a.KeyState)
		}
		at := parseTime(t, "last_poll_at", *a.LastPollAt)
		if at.Before(start) || at.After(time.Now().Add(time.Second)) {
			t.Errorf("last_poll_at %s is not the time of the poll", at)
		}
	})

	deadline := futureDeadline()
	oid := s.placeOrder(t, c.id, map[string]any{"deadline": deadline})
	part := strings.TrimPrefix(c.id, "agt_")

	t.Run("new_order event", func(t *testing.T) {
		evs := s.poll(t, key)
		if len(evs) != 1 {
			t.Fatalf("got %d events, want 1 new_order", len(evs))
		}
		e := evs[0]
		if !regexp.MustCompile(`^evt_` + part + `_[1-9][0-9]*$`).MatchString(e.ID) {
			t.Errorf("event id %q does not look like evt_%s_<n>", e.ID, part)
		}
		if e.Kind != "new_order" || e.OrderID != oid {
			t.Errorf("event kind %q order_id %q, want new_order %q", e.Kind, e.OrderID, oid)
		}
		want := []string{"created_at", "id", "kind", "order", "order_id", "sf"}
		if got := jsonKeys(t, e.Raw); !slices.Equal(got, want) {
			t.Errorf("event keys %v, want %v", got, want)
		}
		created := parseTime(t, "created_at", e.CreatedAt)
		if created.Before(start) || created.After(time.Now().Add(time.Second)) {
			t.Errorf("created_at %s is not the time the order was placed", created)
		}
		o := e.Order
		wantView := orderViewJSON{
			ID: oid, Gig: "logo design", Scope: "one logo, two colours", Tier: "basic",
			Price: 1200, Deadline: o.Deadline, Brief: "A fox, minimal. Ünïcode ✓",
			State: "in_progress", RevisionsAllowed: 2, RevisionsUsed: 0,
		}
		if o != wantView {
			t.Errorf("event order = %+v\nwant %+v", o, wantView)
		}
		if d := parseTime(t, "deadline", o.Deadline); !d.Equal(parseTime(t, "d", deadline)) {
			t.Errorf("deadline %s, want %s", o.Deadline, deadline)
		}
		var raw struct {
			Order map[string]any `json:"order"`
		}
		decodeInto(t, e.Raw, &raw)
		viewKeys := []string{"brief", "deadline", "gig", "id", "price", "revisions_allowed",
			"revisions_used", "scope", "state", "tier"}
		if got := mapKeys(raw.Order); !slices.Equal(got, viewKeys) {
			t.Errorf("event order keys %v, want exactly %v (the agent's view)", got, viewKeys)
		}
		if _, isInt := raw.Order["price"].(float64); !isInt ||
			bytes.Contains(e.Raw, []byte(`"price":"`)) {
			t.Errorf("price must be a JSON number: %s", clip(e.Raw))
		}
		if strings.TrimSpace(e.SF) == "" {
			t.Errorf("sf is empty on a new_order event")
		}
		rules := s.agent(t, "GET", "/agents/"+c.id+"/skill/RULES.md", key, nil)
		if rules.status != 200 || e.SF != string(rules.body) {
			t.Errorf("sf is not the agent's RULES.md (%d, %d bytes vs %d bytes)",
				rules.status, len(e.SF), len(rules.body))
		}
	})

	t.Run("drained", func(t *testing.T) {
		s.expectEmptyPoll(t, key)
		if a := s.getAgent(t, c.id); a.EventsQueued != 0 || a.Orders["in_progress"] != 1 {
			t.Errorf("events_queued %d, orders %v; want 0 and one in_progress",
				a.EventsQueued, a.Orders)
		}
	})

	t.Run("progress 50", func(t *testing.T) {
		r := s.agent(t, "POST", "/status", key,
			map[string]any{"order_id": oid, "progress": 50, "message": "halfway"})
		got := expectJSON[struct {
			AgentID string `json:"agent_id"`
			Status  string `json:"status"`
			Order   *struct {
				OrderID  string `json:"order_id"`
				Progress int    `json:"progress"`
				Message  string `json:"message"`
			} `json:"order"`
		}](t, r, 200)
		if got.AgentID != c.id || got.Status != "active" || got.Order == nil ||
			got.Order.OrderID != oid || got.Order.Progress != 50 ||
			got.Order.Message != "halfway" {
			t.Errorf("status answer %s", r)
		}
		o := s.getOrder(t, oid)
		if o.State != "in_progress" || o.Progress == nil || o.Progress.Percent != 50 ||
			o.Progress.Message != "halfway" {
			t.Errorf("order after progress: state %q progress %+v", o.State, o.Progress)
		}
	})

	t.Run("deliver JSON", func(t *testing.T) {
		r := s.agent(t, "POST", "/orders/"+oid+"/deliver", key, map[string]any{
			"text": "Here is the logo.", "urls": []string{"https://example.com/logo.svg"},
		})
		d := expectJSON[deliverReplyJSON](t, r, 201)
		if d != (deliverReplyJSON{OrderID: oid, Delivery: 1, State: "delivered"}) {
			t.Errorf("deliver answer %s", r)
		}
		o := s.getOrder(t, oid)
		if o.State != "delivered" || o.ID != oid || o.AgentID != c.id || o.Price != 1200 {
			t.Errorf("order = %+v", o)
		}
		if len(o.Deliveries) != 1 || o.Deliveries[0].N != 1 ||
			o.Deliveries[0].Text != "Here is the logo." ||
			!slices.Equal(o.Deliveries[0].URLs, []string{"https://example.com/logo.svg"}) {
			t.Errorf("deliveries = %+v", o.Deliveries)
		}
		checkHistory(t, o, []transitionJSON{
			{From: "", To: "in_progress", By: "customer"},
			{From: "in_progress", To: "delivered", By: "agent"},
		})
	})

	t.Run("release", func(t *testing.T) {
		r := s.admin(t, "POST", "/admin/orders/"+oid+"/release", nil)
		if got := expectJSON[orderReplyJSON](t, r, 200); got.OrderID != oid ||
			got.State != "released" {
			t.Errorf("release answer %s", r)
		}
		o := s.getOrder(t, oid)
		if o.State != "released" {
			t.Errorf("state %q, want released", o.State)
		}
		checkHistory(t, o, []transitionJSON{
			{From: "", To: "in_progress", By: "customer"},
			{From: "in_progress", To: "delivered", By: "agent"},
			{From: "delivered", To: "released", By: "owner"},
		})
		a := s.getAgent(t, c.id)
		if a.Orders["released"] != 1 || a.Orders["delivered"] != 0 || !a.Online {
			t.Errorf("agent after release: orders %v online %v", a.Orders, a.Online)
		}
		msg := expectError(t, s, s.agent(t, "POST", "/orders/"+oid+"/deliver", key,
			map[string]any{"text": "again"}), 409, "invalid_state")
		if !strings.Contains(msg, "released") {
			t.Errorf("invalid_state message %q does not name the state released", msg)
		}
	})

	t.Run("ops: healthz, readyz, metrics without ids", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz"} {
			if r := s.do(t, "GET", s.opsURL+p, nil, nil); r.status != 200 {
				t.Errorf("%s", r)
			}
		}
		r := s.do(t, "GET", s.opsURL+"/metrics", nil, nil)
		if r.status != 200 || !bytes.Contains(r.body, []byte("\nheepr_")) {
			t.Fatalf("GET /metrics: %d, %d bytes; want heepr_ series", r.status, len(r.body))
		}
		_, secret := splitSecret(key)
		for _, bad := range []string{c.id, part, oid, secret} {
			if bytes.Contains(r.body, []byte(bad)) {
				t.Errorf("/metrics names an agent, order or key (%s)", redact(bad))
			}
		}
	})
}

// checkHistory compares an order's history (from, to, by) and checks each entry has a time.
func checkHistory(t testing.TB, o orderJSON, want []transitionJSON) {
	t.Helper()
	if len(o.History) != len(want) {
		t.Errorf("order %s history has %d entries, want %d: %+v", o.ID, len(o.History),
			len(want), o.History)
		return
	}
	for i, h := range o.History {
		if h.From != want[i].From || h.To != want[i].To || h.By != want[i].By {
			t.Errorf("history[%d] = %s->%s by %s, want %s->%s by %s", i, h.From, h.To, h.By,
				want[i].From, want[i].To, want[i].By)
		}
		parseTime(t, "history at", h.At)
	}
}

// ---- 2. every error code of the core ----

func TestE2EErrors(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	s := startServer(t, "")
	a := s.newAgent(t, map[string]any{"name": "A"})
	b := s.newAgent(t, map[string]any{"name": "B"})
	aPart := strings.TrimPrefix(a.id, "agt_")
	fakeAgent := "agt_" + strings.Repeat("a", 16)
	wrongSecret := strings.Repeat("b", 32)

	t.Run("missing_credentials", func(t *testing.T) {
		cases := []struct{ name, method, url, auth string }{
			{"events no header", "GET", "/events", ""},
			{"events Basic", "GET", "/events", "Basic dXNlcjpwYXNz"},
			{"events Bootstrap", "GET", "/events", "Bootstrap " + a.token},
			{"events Bearer no key", "GET", "/events", "Bearer"},
			{"events Bearer blank", "GET", "/events", "Bearer    "},
			{"events no scheme", "GET", "/events", a.key},
			{"api events Bootstrap", "GET", "/api/events", "Bootstrap " + a.token},
			{"register no header", "POST", "/agent/register", ""},
			{"register Bearer", "POST", "/agent/register", "Bearer " + a.key},
			{"register Basic", "POST", "/api/agent/register", "Basic " + a.token},
			{"status", "POST", "/status", ""},
			{"deliver", "POST", "/orders/ord_x/deliver", ""},
			{"decline", "POST", "/orders/ord_x/decline", ""},
			{"flag", "POST", "/orders/ord_x/flag", "Token " + a.key},
			{"skill", "GET", "/skill", ""},
			{"skill file", "GET", "/agents/" + a.id + "/skill/SKILL.md", ""},
			{"admin no header", "GET", "admin:/admin/agents/" + a.id, ""},
			{"admin Basic", "GET", "admin:/admin/agents/" + a.id, "Basic " + s.adminToken},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				url := s.agentURL + tc.url
				if p, ok := strings.CutPrefix(tc.url, "admin:"); ok {
					url = s.opsURL + p
				}
				hdr := map[string]string{}
				if tc.auth != "" {
					hdr["Authorization"] = tc.auth
				}
				r := s.do(t, tc.method, url, hdr, nil)
				expectError(t, s, r, 401, "missing_credentials")
			})
		}
	})

	t.Run("scheme names are case-insensitive", func(t *testing.T) {
		for _, scheme := range []string{"bearer", "BEARER", "bEaReR"} {
			r := s.do(t, "GET", s.agentURL+"/events",
				map[string]string{"Authorization": scheme + " " + a.key}, nil)
			if r.status != 200 {
				t.Errorf("scheme %q: %s, want 200", scheme, r)
			}
		}
		for _, scheme := range []string{"BOOTSTRAP", "bootstrap"} {
			c := s.createAgent(t, nil)
			r := s.tryRegister(t, "", scheme, c.token, nil)
			if r.status != 201 {
				t.Errorf("scheme %q: %s, want 201", scheme, r)
			}
		}
		r := s.do(t, "GET", s.opsURL+"/admin/agents/"+a.id,
			map[string]string{"Authorization": "bearer " + s.adminToken}, nil)
		if r.status != 200 {
			t.Errorf("admin with scheme bearer: %s, want 200", r)
		}
	})

	t.Run("key_unknown", func(t *testing.T) {
		for _, key := range []string{
			"garbage",
			"sk_live_garbage",
			"sk_live_" + fakeAgent + "_" + strings.Repeat("a", 32),
			"sk_live_" + a.id + "_" + wrongSecret,
			a.key[:len(a.key)-1] + flipChar(a.key[len(a.key)-1]),
			a.key + "x",
			strings.ToUpper(a.key),
			a.token, // a bootstrap token is not a key
		} {
			for _, path := range []string{"/events", "/skill"} {
				r := s.agent(t, "GET", path, key, nil)
				expectError(t, s, r, 401, "key_unknown")
			}
		}
		for _, tok := range []string{"garbage", s.adminToken + "x", a.key} {
			r := s.do(t, "GET", s.opsURL+"/admin/agents/"+a.id,
				map[string]string{"Authorization": "Bearer " + tok}, nil)
			expectError(t, s, r, 401, "key_unknown")
		}
	})

	t.Run("key_revoked", func(t *testing.T) {
		c := s.newAgent(t, nil)
		oid := s.placeOrder(t, c.id, nil)
		r := s.admin(t, "POST", "/admin/agents/"+c.id+"/revoke-key", nil)
		got := expectJSON[struct {
			AgentID  string `json:"agent_id"`
			KeyState string `json:"key_state"`
		}](t, r, 200)
		if got.AgentID != c.id || got.KeyState != "revoked" {
			t.Errorf("revoke answer %s", r)
		}
		expectError(t, s, s.agent(t, "GET", "/events", c.key, nil), 401, "key_revoked")
		expectError(t, s, s.agent(t, "POST", "/orders/"+oid+"/deliver", c.key,
			map[string]any{"text": "x"}), 401, "key_revoked")
		expectError(t, s, s.agent(t, "GET", "/skill", c.key, nil), 401, "key_revoked")
		if st := s.getAgent(t, c.id).KeyState; st != "revoked" {
			t.Errorf("key_state %q, want revoked", st)
		}
		expectError(t, s, s.admin(t, "POST", "/admin/agents/"+c.id+"/revoke-key", nil),
			409, "invalid_state")
		if o := s.getOrder(t, oid); o.State != "in_progress" || len(o.Deliveries) != 0 {
			t.Errorf("a revoked key delivered: order %+v", o)
		}
		// register works again with a new token
		c.token = s.mintToken(t, c.id, nil)
		key2 := s.register(t, c)
		if evs := s.poll(t, key2); len(evs) != 1 || evs[0].OrderID != oid {
			t.Errorf("new key polls %d events, want the queued new_order", len(evs))
		}
		// the replaced key still says why it stopped working
		expectError(t, s, s.agent(t, "GET", "/events", c.key, nil), 401, "key_revoked")
	})

	t.Run("key_expired", func(t *testing.T) {
		t.Parallel()
		c := s.createAgent(t, map[string]any{"key_ttl_seconds": 1})
		before := time.Now()
		c.key = s.register(t, c)
		ag := s.getAgent(t, c.id)
		if ag.KeyExpiresAt == nil || ag.Settings.KeyTTLSeconds != 1 {
			t.Fatalf("key_expires_at %v ttl %d, want a time and 1", ag.KeyExpiresAt,
				ag.Settings.KeyTTLSeconds)
		}
		if exp := parseTime(t, "key_expires_at", *ag.KeyExpiresAt); exp.Before(
			before.Add(time.Second)) || exp.After(time.Now().Add(time.Second)) {
			t.Errorf("key_expires_at %s is not 1 s after registration", exp)
		}
		// poll (bounded) until the key stops working; it must not stop before its second
		var r *response
		for i := 0; i < 50; i++ {
			if r = s.agent(t, "GET", "/events", c.key, nil); r.status != 200 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if lived := time.Since(before); lived < 900*time.Millisecond {
			t.Errorf("a key with a 1 s TTL stopped after %s", lived)
		}
		expectError(t, s, r, 401, "key_expired")
		expectError(t, s, s.agent(t, "POST", "/status", c.key,
			map[string]any{"status": "paused"}), 401, "key_expired")
		if ag := s.getAgent(t, c.id); ag.KeyState != "expired" || ag.Status != "active" {
			t.Errorf("key_state %q status %q, want expired and active", ag.KeyState, ag.Status)
		}
		// an expired key is not live: a new token registers without a revoke
		c.token = s.mintToken(t, c.id, nil)
		c.key = s.register(t, c)
		if r := s.agent(t, "GET", "/events", c.key, nil); r.status != 200 {
			t.Errorf("fresh key after expiry: %s", r)
		}
	})

	t.Run("bootstrap_unknown", func(t *testing.T) {
		c := s.createAgent(t, nil)
		for _, tok := range []string{
			"garbage",
			"bs_garbage",
			"bs_" + fakeAgent + "_" + strings.Repeat("a", 32),
			"bs_" + c.id + "_" + wrongSecret,
			c.token[:len(c.token)-1] + flipChar(c.token[len(c.token)-1]),
			"sk_live_" + strings.TrimPrefix(c.token, "bs_"),
		} {
			expectError(t, s, s.tryRegister(t, "", "Bootstrap", tok, nil), 401,
				"bootstrap_unknown")
		}
		// a malformed token is refused before its body is read, as a malformed key is
		for _, tok := range []string{"garbage", "bs_garbage"} {
			expectError(t, s, s.tryRegister(t, "", "Bootstrap", tok, "{not json"), 401,
				"bootstrap_unknown")
		}
		// none of that consumed the real token
		s.register(t, c)
	})

	t.Run("bootstrap_used", func(t *testing.T) {
		c := s.newAgent(t, nil)
		expectError(t, s, s.tryRegister(t, "", "Bootstrap", c.token, nil), 401,
			"bootstrap_used")
		s.admin(t, "POST", "/admin/agents/"+c.id+"/revoke-key", nil)
		expectError(t, s, s.tryRegister(t, "/api", "Bootstrap", c.token, nil), 401,
			"bootstrap_used")
	})

	t.Run("bootstrap_expired", func(t *testing.T) {
		t.Parallel()
		c := s.createAgent(t, map[string]any{"bootstrap_ttl_seconds": 1})
		m := s.createAgent(t, nil)
		mint := s.mintToken(t, m.id, map[string]any{"ttl_seconds": 1})
		time.Sleep(1100 * time.Millisecond) // both tokens expire 1 s after they were issued
		expectError(t, s, s.tryRegister(t, "", "Bootstrap", c.token, nil), 401,
			"bootstrap_expired")
		expectError(t, s, s.tryRegister(t, "", "Bootstrap", mint, nil), 401,
			"bootstrap_expired")
		if st := s.getAgent(t, c.id).KeyState; st != "none" {
			t.Errorf("key_state %q after an expired token, want none", st)
		}
	})

	t.Run("active_key_exists does not consume the token", func(t *testing.T) {
		c := s.newAgent(t, nil)
		t2 := s.mintToken(t, c.id, nil)
		for i := 0; i < 2; i++ {
			expectError(t, s, s.tryRegister(t, "", "Bootstrap", t2, nil), 409,
				"active_key_exists")
		}
		if r := s.agent(t, "GET", "/events", c.key, nil); r.status != 200 {
			t.Errorf("the live key stopped working after a refused register: %s", r)
		}
		s.admin(t, "POST", "/admin/agents/"+c.id+"/revoke-key", nil)
		c.token = t2
		key2 := s.register(t, c)
		if r := s.agent(t, "GET", "/events", key2, nil); r.status != 200 {
			t.Errorf("key from the once-refused token: %s", r)
		}
		r := s.agent(t, "GET", "/events", c.key, nil)
		if r.status != 401 {
			t.Errorf("the old, revoked key after re-register: %s, want 401", r)
		}
		checkEnvelope(t, s, r)
	})

	t.Run("register with another agent_id", func(t *testing.T) {
		c := s.createAgent(t, nil)
		for _, id := range []string{b.id, fakeAgent, "agt_bogus", "x"} {
			r := s.tryRegister(t, "", "Bootstrap", c.token, map[string]any{"agent_id": id})
			expectError(t, s, r, 400, "invalid_request")
		}
		r := s.tryRegister(t, "", "Bootstrap", c.token, map[string]any{"agent_id": c.id})
		if r.status != 201 {
			t.Errorf("the token after refused registers: %s, want 201", r)
		}
	})

	t.Run("a new token retires the unused old one", func(t *testing.T) {
		c := s.createAgent(t, nil)
		t2 := s.mintToken(t, c.id, nil)
		expectError(t, s, s.tryRegister(t, "", "Bootstrap", c.token, nil), 401,
			"bootstrap_unknown")
		c.token = t2
		s.register(t, c)
	})

	t.Run("forbidden", func(t *testing.T) {
		for _, f := range []string{"SKILL.md", "RULES.md", "skill.json"} {
			for _, prefix := range []string{"", "/api"} {
				r := s.agent(t, "GET", prefix+"/agents/"+b.id+"/skill/"+f, a.key, nil)
				expectError(t, s, r, 403, "forbidden")
				if bytes.Contains(r.body, []byte("# ")) {
					t.Errorf("403 leaks file content: %s", r)
				}
			}
		}
	})

	t.Run("not_found", func(t *testing.T) {
		for _, tc := range []struct{ url, key string }{
			{s.agentURL + "/nope", ""},
			{s.agentURL + "/api/nope", a.key},
			{s.agentURL + "/", a.key},
			{s.agentURL + "/events/", a.key},
			{s.agentURL + "/api/api/events", a.key},
			{s.agentURL + "/admin/agents/" + a.id, s.adminToken},
			{s.opsURL + "/nope", s.adminToken},
			{s.opsURL + "/admin/nope", s.adminToken},
			{s.opsURL + "/admin/agents/" + fakeAgent, s.adminToken},
			{s.opsURL + "/admin/orders/ord_" + aPart + "_999", s.adminToken},
		} {
			hdr := map[string]string{}
			if tc.key != "" {
				hdr["Authorization"] = "Bearer " + tc.key
			}
			expectError(t, s, s.do(t, "GET", tc.url, hdr, nil), 404, "not_found")
		}
		expectError(t, s, s.admin(t, "POST", "/admin/orders", orderBody(fakeAgent, nil)),
			404, "not_found")

		bOrder := s.placeOrder(t, b.id, nil)
		unknown := "ord_" + aPart + "_999"
		actions := []struct {
			name string
			send func(id string) *response
		}{
			{"deliver", func(id string) *response {
				return s.agent(t, "POST", "/orders/"+id+"/deliver", a.key,
					map[string]any{"text": "mine now"})
			}},
			{"decline", func(id string) *response {
				return s.agent(t, "POST", "/orders/"+id+"/decline", a.key,
					map[string]any{"reason": "capacity"})
			}},
			{"flag", func(id string) *response {
				return s.agent(t, "POST", "/orders/"+id+"/flag", a.key,
					map[string]any{"reason": "other"})
			}},
			{"progress", func(id string) *response {
				return s.agent(t, "POST", "/status", a.key,
					map[string]any{"order_id": id, "progress": 10})
			}},
		}
		for _, act := range actions {
			t.Run(act.name, func(t *testing.T) {
				mUnknown := expectError(t, s, act.send(unknown), 404, "not_found")
				mOther := expectError(t, s, act.send(bOrder), 404, "not_found")
				if strings.ReplaceAll(mUnknown, unknown, "ID") !=
					strings.ReplaceAll(mOther, bOrder, "ID") {
					t.Errorf("another agent's order is told apart from an unknown one:\n"+
						"unknown: %q\nother's: %q", mUnknown, mOther)
				}
			})
		}
		if o := s.getOrder(t, bOrder); o.State != "in_progress" || len(o.Deliveries) != 0 ||
			o.Progress != nil {
			t.Errorf("another agent changed B's order: %+v", o)
		}
	})

	t.Run("invalid_state", func(t *testing.T) {
		oid := s.placeOrder(t, a.id, nil)
		s.poll(t, a.key)
		deliver := func() *response {
			return s.agent(t, "POST", "/orders/"+oid+"/deliver", a.key,
				map[string]any{"text": "done"})
		}
		if r := deliver(); r.status != 201 {
			t.Fatalf("first delivery: %s", r)
		}
		checks := []struct {
			name  string
			r     *response
			state string
		}{
			{"deliver twice", deliver(), "delivered"},
			{"decline delivered", s.agent(t, "POST", "/orders/"+oid+"/decline", a.key,
				map[string]any{"reason": "capacity"}), "delivered"},
			{"progress on delivered", s.agent(t, "POST", "/status", a.key,
				map[string]any{"order_id": oid, "progress": 90}), "delivered"},
			{"approve delivered", s.admin(t, "POST", "/admin/orders/"+oid+"/approve", nil),
				"delivered"},
		}
		flag := s.agent(t, "POST", "/orders/"+oid+"/flag", a.key,
			map[string]any{"reason": "policy_violation", "message": "odd request"})
		if got := expectJSON[orderReplyJSON](t, flag, 200); got.State != "flagged" {
			t.Errorf("flag a delivered order: %s", flag)
		}
		checks = append(checks, struct {
			name  string
			r     *response
			state string
		}{"release flagged", s.admin(t, "POST", "/admin/orders/"+oid+"/release", nil),
			"flagged"})
		for _, c := range checks {
			msg := expectError(t, s, c.r, 409, "invalid_state")
			if !strings.Contains(msg, c.state) {
				t.Errorf("%s: message %q does not name the state %q", c.name, msg, c.state)
			}
		}
		o2 := s.placeOrder(t, a.id, nil)
		s.agent(t, "POST", "/orders/"+o2+"/decline", a.key, map[string]any{"reason": "other"})
		msg := expectError(t, s, s.agent(t, "POST", "/orders/"+o2+"/flag", a.key,
			map[string]any{"reason": "other"}), 409, "invalid_state")
		if !strings.Contains(msg, "declined") {
			t.Errorf("message %q does not name the state declined", msg)
		}
		s.poll(t, a.key)
	})

	t.Run("agent_paused", func(t *testing.T) {
		c := s.newAgent(t, nil)
		r := s.agent(t, "POST", "/status", c.key, map[string]any{"status": "paused"})
		if got := jsonKeys(t, r.body); r.status != 200 ||
			!slices.Equal(got, []string{"agent_id", "status"}) ||
			!bytes.Contains(r.body, []byte(`"status":"paused"`)) {
			t.Errorf("pause: %s, want 200 {agent_id, status: paused}", r)
		}
		msg := expectError(t, s, s.admin(t, "POST", "/admin/orders", orderBody(c.id, nil)),
			409, "agent_paused")
		if !strings.Contains(msg, "paused") {
			t.Errorf("agent_paused message %q", msg)
		}
		ag := s.getAgent(t, c.id)
		if ag.Status != "paused" || ag.EventsQueued != 0 || sumCounts(ag.Orders) != 0 {
			t.Errorf("paused agent: status %q, events %d, orders %v", ag.Status,
				ag.EventsQueued, ag.Orders)
		}
		s.expectEmptyPoll(t, c.key) // a paused agent still polls
		r = s.agent(t, "POST", "/status", c.key, map[string]any{"status": "active"})
		if r.status != 200 {
			t.Fatalf("resume: %s", r)
		}
		s.placeOrder(t, c.id, nil)
	})

	t.Run("payload_too_large", func(t *testing.T) {
		small := startServer(t, "", "--max-body-bytes", "1024", "--max-text-bytes", "64")
		c := small.newAgent(t, nil)
		oid := small.placeOrder(t, c.id, nil)
		bigJSON := []byte(`{"text":"` + strings.Repeat("x", 4000) + `"}`)
		ctype, bigMultipart := multipartBody(t, []mpPart{
			{field: "file", filename: "big.bin", data: binaryBlob(4000)},
		})
		textCT, textMP := multipartBody(t, []mpPart{
			{field: "text", data: bytes.Repeat([]byte("t"), 65)},
		})
		auth := map[string]string{"Authorization": "Bearer " + c.key,
			"Content-Type": "application/json"}
		cases := []struct {
			name, path, ctype string
			body              []byte
			limit             string
		}{
			{"deliver JSON", "/orders/" + oid + "/deliver", "application/json", bigJSON, "1024"},
			{"deliver multipart", "/api/orders/" + oid + "/deliver", ctype, bigMultipart,
				"1024"},
			{"status", "/status", "application/json", bigJSON, "1024"},
			{"decline", "/orders/" + oid + "/decline", "application/json", bigJSON, "1024"},
			{"register", "/agent/register", "application/json", bigJSON, "1024"},
			{"deliver text over 64", "/orders/" + oid + "/deliver", "application/json",
				[]byte(`{"text":"` + strings.Repeat("y", 65) + `"}`), "64"},
			{"decline message over 64", "/orders/" + oid + "/decline", "application/json",
				[]byte(`{"reason":"other","message":"` + strings.Repeat("y", 65) + `"}`),
				"64"},
			{"multipart text over 64", "/orders/" + oid + "/deliver", textCT, textMP, "64"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				auth["Content-Type"] = tc.ctype
				r, err := small.try("POST", small.agentURL+tc.path, auth, tc.body)
				if err != nil {
					t.Fatalf("a body over the limit got no answer: %v", err)
				}
				msg := expectError(t, small, r, 413, "payload_too_large")
				if !strings.Contains(msg, tc.limit) {
					t.Errorf("message %q does not name the limit %s", msg, tc.limit)
				}
			})
		}
		// A body far over the limit must still get its 413, not a reset connection: the
		// server has to read (or half-close and drain) what the client is still sending.
		t.Run("2 MiB body, 20 times", func(t *testing.T) {
			bigBodyAnswers(t, small, "POST", small.agentURL+"/orders/"+oid+"/deliver", map[string]string{
				"Authorization": "Bearer " + c.key, "Content-Type": "application/json",
			}, bytes.Repeat([]byte("z"), 2<<20), "1024")
		})
		// refused before any route, and still counted
		if v := lcMetric(t, small,
			`heepr_http_requests_total{code="413",route="unmatched"}`); v < 20 {
			t.Errorf("unmatched 413s counted: %v, want at least the 20 above", v)
		}
		t.Run("ops listener: 2 MiB admin body, 20 times", func(t *testing.T) {
			bigBodyAnswers(t, small, "POST", small.opsURL+"/admin/agents", map[string]string{
				"Authorization": "Bearer " + small.adminToken, "Content-Type": "application/json",
			}, []byte(`{"name":"`+strings.Repeat("n", 2<<20)+`"}`), "")
		})
		t.Run("skill file over --max-skill-bytes, 20 times", func(t *testing.T) {
			bigBodyAnswers(t, small, "PUT", small.opsURL+"/admin/agents/"+c.id+
				"/skill/SKILL.md", map[string]string{
				"Authorization": "Bearer " + small.adminToken,
			}, bytes.Repeat([]byte("s"), 1<<20+1), "1048576")
		})
		if o := small.getOrder(t, oid); o.State != "in_progress" {
			t.Errorf("order after refused bodies: %s", o.State)
		}
		r := small.agent(t, "POST", "/orders/"+oid+"/deliver", c.key,
			map[string]any{"text": "fits"})
		if r.status != 201 {
			t.Errorf("small delivery after refused ones: %s", r)
		}
	})

	// A body over 64 KiB, or chunked, is read only once the route checked its credential, so
	// that nobody without one can make the server hold a body of up to --max-body-bytes. The
	// refusal is the credential's own error; with a good credential the body is read and
	// judged as usual. Routes that read no body answer as they always do.
	t.Run("large body before its credential", func(t *testing.T) {
		large := bytes.Repeat([]byte("z"), 100<<10)
		small := []byte("z")
		wrongKey := a.key[:len(a.key)-1] + flipChar(a.key[len(a.key)-1])
		cases := []struct {
			name, method, url, auth string
			body                    []byte
			chunked                 bool
			status                  int
			code                    string
		}{
			{"no credential", "POST", "/status", "", large, false, 401, "missing_credentials"},
			{"malformed key", "POST", "/status", "Bearer nonsense", large, false, 401,
				"key_unknown"},
			{"key of no agent", "POST", "/api/status",
				"Bearer sk_live_" + fakeAgent + "_" + wrongSecret, large, false, 401,
				"key_unknown"},
			{"wrong secret", "POST", "/status", "Bearer " + wrongKey, large, false, 401,
				"key_unknown"},
			{"wrong secret, chunked", "POST", "/status", "Bearer " + wrongKey, small, true, 401,
				"key_unknown"},
			{"agent's key: body read", "POST", "/status", "Bearer " + b.key, large, false, 400,
				"invalid_request"},
			{"agent's key, chunked: body read", "POST", "/orders/x/decline", "Bearer " + b.key,
				small, true, 400, "invalid_request"},
			{"register reads 64 KiB at most", "POST", "/agent/register",
				"Bootstrap " + a.token, large, false, 413, "payload_too_large"},
			{"unknown path", "POST", "/nope", "", large, false, 404, "not_found"},
			{"wrong method", "PUT", "/status", "", large, false, 405, "method_not_allowed"},
			{"poll with a body", "GET", "/events", "", large, false, 401,
				"missing_credentials"},
			{"ops, wrong token", "POST", s.opsURL + "/admin/agents", "Bearer nope", large,
				false, 401, "key_unknown"},
			{"ops, admin token: body read", "POST", s.opsURL + "/admin/agents",
				"Bearer " + s.adminToken, large, false, 400, "invalid_request"},
			{"ops, unknown path", "POST", s.opsURL + "/nope", "", large, true, 404,
				"not_found"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				url := tc.url
				if !strings.HasPrefix(url, "http") {
					url = s.agentURL + url
				}
				hdr := map[string]string{"Content-Type": "application/json"}
				if tc.auth != "" {
					hdr["Authorization"] = tc.auth
				}
				r, err := s.tryBody(tc.method, url, hdr, tc.body, tc.chunked)
				if err != nil {
					t.Fatalf("no answer: %v", err)
				}
				expectError(t, s, r, tc.status, tc.code)
			})
		}
		s.poll(t, a.key) // the agents' keys still work
		s.poll(t, b.key)

		// a chunked register body is read without a key, up to 64 KiB
		c := s.createAgent(t, nil)
		r, err := s.tryBody("POST", s.agentURL+"/agent/register", map[string]string{
			"Authorization": "Bootstrap " + c.token, "Content-Type": "application/json",
		}, []byte(`{"agent_id":"`+c.id+`"}`), true)
		if err != nil || r.status != 201 {
			t.Errorf("chunked register: %v, %v", r, err)
		}
		if r, err := s.tryBody("GET", s.opsURL+"/healthz", nil, large, true); err != nil ||
			r.status != 200 {
			t.Errorf("healthz with a chunked body: %v, %v", r, err)
		}
	})

	t.Run("unsupported_media_type", func(t *testing.T) {
		oid := s.placeOrder(t, a.id, nil)
		body := []byte(`{"text":"hello"}`)
		for _, ct := range []string{"text/plain", "", "application/x-www-form-urlencoded",
			"application/jsonx", "multipart/mixed; boundary=x", ";;;", "text/json"} {
			r := s.deliverRaw(t, "", a.key, oid, ct, body)
			expectError(t, s, r, 415, "unsupported_media_type")
		}
		if o := s.getOrder(t, oid); o.State != "in_progress" {
			t.Errorf("order after refused deliveries: %s", o.State)
		}
		s.poll(t, a.key)
	})

	t.Run("method_not_allowed", func(t *testing.T) {
		for _, tc := range []struct{ method, url string }{
			{"GET", s.agentURL + "/orders/ord_x/deliver"},
			{"GET", s.agentURL + "/api/orders/ord_x/flag"},
			{"POST", s.agentURL + "/events"},
			{"PUT", s.agentURL + "/api/events"},
			{"DELETE", s.agentURL + "/status"},
			{"POST", s.agentURL + "/skill"},
			{"GET", s.agentURL + "/agent/register"},
			{"DELETE", s.agentURL + "/agents/" + a.id + "/skill/SKILL.md"},
			{"DELETE", s.opsURL + "/admin/agents"},
			{"GET", s.opsURL + "/admin/orders"},
			{"PATCH", s.opsURL + "/admin/agents/" + a.id},
			{"GET", s.opsURL + "/admin/agents/" + a.id + "/skill/SKILL.md"},
			{"POST", s.opsURL + "/readyz"},
		} {
			r := s.do(t, tc.method, tc.url, map[string]string{
				"Authorization": "Bearer " + a.key}, nil)
			expectError(t, s, r, 405, "method_not_allowed")
			if r.header.Get("Allow") == "" {
				t.Errorf("%s: 405 without an Allow header", r)
			}
		}
	})
}

// bigBodyAnswers sends a body far over the limit 20 times and checks every attempt gets a 413
// envelope naming the limit ("" to skip that check) rather than a reset connection.
func bigBodyAnswers(t *testing.T, s *e2eServer, method, url string, hdr map[string]string,
	body []byte, limit string) {
	t.Helper()
	const attempts = 20
	lost := 0
	var lastErr error
	for i := 0; i < attempts; i++ {
		r, err := s.try(method, url, hdr, body)
		if err != nil {
			lost++
			lastErr = err
			continue
		}
		msg := expectError(t, s, r, 413, "payload_too_large")
		if !strings.Contains(msg, limit) {
			t.Errorf("message %q does not name the limit %s", msg, limit)
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d requests with a %d-byte body got no answer, not the 413 "+
			"envelope (the server closed while the body was still coming); last: %v",
			lost, attempts, len(body), lastErr)
	}
}

func flipChar(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// ---- 3. both prefixes ----

func TestE2EPrefixes(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	s := startServer(t, "")
	for _, prefix := range []string{"", "/api"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			c := s.createAgent(t, nil)
			reg := expectJSON[registerJSON](t, s.tryRegister(t, prefix, "Bootstrap", c.token,
				nil), 201)
			checkToken(t, "api key", reg.APIKey, "sk_live_", c.id)
			key := reg.APIKey
			o1, o2, o3 := s.placeOrder(t, c.id, nil), s.placeOrder(t, c.id, nil),
				s.placeOrder(t, c.id, nil)
			evs := s.pollAt(t, prefix, key)
			if len(evs) != 3 || evs[0].OrderID != o1 || evs[1].OrderID != o2 ||
				evs[2].OrderID != o3 {
				t.Errorf("poll at %s/events: %d events, want o1 o2 o3 oldest first", prefix,
					len(evs))
			}
			if evs := s.pollAt(t, prefix, key); evs != nil {
				t.Errorf("second poll at %s/events: %d events, want {}", prefix, len(evs))
			}
			r := s.agent(t, "POST", prefix+"/status", key,
				map[string]any{"order_id": o1, "progress": 10})
			if r.status != 200 {
				t.Errorf("%s", r)
			}
			r = s.agent(t, "POST", prefix+"/orders/"+o1+"/deliver", key,
				map[string]any{"text": "done"})
			if r.status != 201 {
				t.Errorf("%s", r)
			}
			r = s.agent(t, "POST", prefix+"/orders/"+o2+"/decline", key,
				map[string]any{"reason": "deadline_too_short", "message": "too soon"})
			if r.status != 200 {
				t.Errorf("%s", r)
			}
			r = s.agent(t, "POST", prefix+"/orders/"+o3+"/flag", key,
				map[string]any{"reason": "illegal"})
			if r.status != 200 {
				t.Errorf("%s", r)
			}
			for id, want := range map[string]string{o1: "delivered", o2: "declined",
				o3: "flagged"} {
				if got := s.getOrder(t, id).State; got != want {
					t.Errorf("order %s: %s, want %s", id, got, want)
				}
			}
			sk := expectJSON[skillJSON](t, s.agent(t, "GET", prefix+"/skill", key, nil), 200)
			if sk.AgentID != c.id || sk.File != "SKILL.md" || sk.Content == "" {
				t.Errorf("skill at %s: %+v", prefix, sk)
			}
			r = s.agent(t, "GET", prefix+"/agents/"+c.id+"/skill/SKILL.md", key, nil)
			if r.status != 200 || string(r.body) != sk.Content {
				t.Errorf("skill file at %s: %d", prefix, r.status)
			}
			r = s.do(t, "GET", s.agentURL+prefix+"/skill", map[string]string{
				"Authorization": "Bearer " + key, "If-None-Match": sk.ContentHash}, nil)
			if r.status != 304 {
				t.Errorf("If-None-Match at %s/skill: %d, want 304", prefix, r.status)
			}
		})
	}
}

// ---- 4. isolation ----

func TestE2EIsolation(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	s := startServer(t, "")
	a := s.newAgent(t, map[string]any{"name": "A"})
	b := s.newAgent(t, map[string]any{"name": "B"})
	oa1 := s.placeOrder(t, a.id, map[string]any{"brief": "secret brief of A"})
	oa2 := s.placeOrder(t, a.id, nil)

	t.Run("B sees none of A's events", func(t *testing.T) {
		s.expectEmptyPoll(t, b.key)
	})
	t.Run("A's orders are unknown to B", func(t *testing.T) {
		unknown := "ord_" + strings.TrimPrefix(b.id, "agt_") + "_77"
		for _, tc := range []struct {
			name, path string
			body       map[string]any
		}{
			{"deliver", "/orders/%s/deliver", map[string]any{"text": "x"}},
			{"decline", "/orders/%s/decline", map[string]any{"reason": "other"}},
			{"flag", "/api/orders/%s/flag", map[string]any{"reason": "illegal"}},
			{"status", "/status", map[string]any{"progress": 99}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				send := func(id string) *response {
					body := map[string]any{}
					for k, v := range tc.body {
						body[k] = v
					}
					path := tc.path
					if strings.Contains(path, "%s") {
						path = fmt.Sprintf(path, id)
					} else {
						body["order_id"] = id
					}
					return s.agent(t, "POST", path, b.key, body)
				}
				mA := expectError(t, s, send(oa1), 404, "not_found")
				mU := expectError(t, s, send(unknown), 404, "not_found")
				if strings.ReplaceAll(mA, oa1, "ID") != strings.ReplaceAll(mU, unknown, "ID") {
					t.Errorf("A's order answers differently from an unknown one: %q vs %q",
						mA, mU)
				}
				if strings.Contains(mA, "secret brief") || strings.Contains(mA, a.id) {
					t.Errorf("404 leaks A's order: %q", mA)
				}
			})
		}
		for _, id := range []string{oa1, oa2} {
			o := s.getOrder(t, id)
			if o.State != "in_progress" || len(o.Deliveries) != 0 || o.Progress != nil ||
				len(o.History) != 1 {
				t.Errorf("B's attempts changed A's order %s: %+v", id, o)
			}
		}
	})
	t.Run("A's skill files are forbidden to B", func(t *testing.T) {
		for _, f := range []string{"SKILL.md", "HEARTBEAT_EVENTS.md", "RULES.md", "API.md",
			"skill.json", "NOPE.md"} {
			r := s.agent(t, "GET", "/agents/"+a.id+"/skill/"+f, b.key, nil)
			expectError(t, s, r, 403, "forbidden")
		}
		sk := expectJSON[skillJSON](t, s.agent(t, "GET", "/skill", b.key, nil), 200)
		if sk.AgentID != b.id || strings.Contains(sk.Content, a.id) {
			t.Errorf("B's /skill is about %s", sk.AgentID)
		}
	})
	t.Run("events stay with their agent", func(t *testing.T) {
		ob := s.placeOrder(t, b.id, nil)
		evs := s.poll(t, b.key)
		bPart := strings.TrimPrefix(b.id, "agt_")
		if len(evs) != 1 || evs[0].OrderID != ob ||
			!strings.HasPrefix(evs[0].ID, "evt_"+bPart+"_") {
			t.Errorf("B's poll: %+v, want exactly its own new_order", evs)
		}
		evs = s.poll(t, a.key)
		if len(evs) != 2 || evs[0].OrderID != oa1 || evs[1].OrderID != oa2 {
			t.Errorf("A's poll: %d events, want its 2 orders", len(evs))
		}
		for _, e := range evs {
			if e.OrderID == ob || !strings.HasPrefix(e.ID,
				"evt_"+strings.TrimPrefix(a.id, "agt_")+"_") {
				t.Errorf("A got event %s about %s", e.ID, e.OrderID)
			}
		}
	})
}

// ---- 5. skill files ----

func TestE2ESkill(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	s := startServer(t, "")
	c := s.newAgent(t, map[string]any{"name": "Skilled", "poll_minutes": 7})
	other := s.newAgent(t, nil)
	files := []string{"SKILL.md", "HEARTBEAT_EVENTS.md", "RULES.md", "API.md", "skill.json"}

	getSkill := func(t *testing.T, inm string) *response {
		hdr := map[string]string{"Authorization": "Bearer " + c.key}
		if inm != "" {
			hdr["If-None-Match"] = inm
		}
		return s.do(t, "GET", s.agentURL+"/skill", hdr, nil)
	}

	var first skillJSON
	t.Run("GET /skill", func(t *testing.T) {
		r := getSkill(t, "")
		first = expectJSON[skillJSON](t, r, 200)
		want := []string{"agent_id", "content", "content_hash", "file"}
		if got := jsonKeys(t, r.body); !slices.Equal(got, want) {
			t.Errorf("keys %v, want %v", got, want)
		}
		if first.AgentID != c.id || first.File != "SKILL.md" || first.Content == "" {
			t.Errorf("skill = %+v", first)
		}
		if !reHash.MatchString(first.ContentHash) ||
			first.ContentHash != "sha256:"+sha256Hex([]byte(first.Content)) {
			t.Errorf("content_hash %q is not sha256 of the content", first.ContentHash)
		}
		if et := r.header.Get("ETag"); et != `"`+first.ContentHash+`"` {
			t.Errorf("ETag %q, want %q", et, `"`+first.ContentHash+`"`)
		}
		if !strings.Contains(first.Content, c.id) {
			t.Errorf("SKILL.md does not mention the agent id")
		}
	})
	t.Run("If-None-Match", func(t *testing.T) {
		h := first.ContentHash
		for _, inm := range []string{`"` + h + `"`, h, `"sha256:00", "` + h + `"`} {
			r := getSkill(t, inm)
			if r.status != 304 || len(r.body) != 0 {
				t.Errorf("If-None-Match %s: %d with %d bytes, want 304 and empty", inm,
					r.status, len(r.body))
			}
		}
		for _, inm := range []string{`"sha256:` + strings.Repeat("0", 64) + `"`, "nope"} {
			if r := getSkill(t, inm); r.status != 200 {
				t.Errorf("If-None-Match %s: %d, want 200", inm, r.status)
			}
		}
	})

	served := map[string][]byte{}
	t.Run("five files with ETag", func(t *testing.T) {
		for _, f := range files {
			r := s.agent(t, "GET", "/agents/"+c.id+"/skill/"+f, c.key, nil)
			if r.status != 200 || len(r.body) == 0 {
				t.Errorf("%s", r)
				continue
			}
			served[f] = r.body
			etag := `"sha256:` + sha256Hex(r.body) + `"`
			if got := r.header.Get("ETag"); got != etag {
				t.Errorf("%s: ETag %q, want %q", f, got, etag)
			}
			wantType := "text/markdown"
			if f == "skill.json" {
				wantType = "application/json"
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, wantType) {
				t.Errorf("%s: Content-Type %q, want %s", f, ct, wantType)
			}
			r = s.do(t, "GET", s.agentURL+"/api/agents/"+c.id+"/skill/"+f, map[string]string{
				"Authorization": "Bearer " + c.key, "If-None-Match": etag}, nil)
			if r.status != 304 {
				t.Errorf("%s with If-None-Match: %d, want 304", f, r.status)
			}
		}
		if !bytes.Equal(served["SKILL.md"], []byte(first.Content)) {
			t.Errorf("raw SKILL.md differs from GET /skill content")
		}
		checkIndex(t, s, c, 7, served)
	})
	t.Run("unknown files", func(t *testing.T) {
		for _, f := range []string{"NOPE.md", "skill.JSON", "skill.md", "SKILL.md.bak",
			"..%2FSKILL.md", "%2e%2e", "SKILL.md%00"} {
			r := s.agent(t, "GET", "/agents/"+c.id+"/skill/"+f, c.key, nil)
			expectError(t, s, r, 404, "not_found")
		}
	})

	newSkill := "# Custom skill\n\nPoll, work, deliver. ✓\n"
	t.Run("owner replaces SKILL.md", func(t *testing.T) {
		r := s.admin(t, "PUT", "/admin/agents/"+c.id+"/skill/SKILL.md", newSkill)
		put := expectJSON[struct {
			AgentID     string `json:"agent_id"`
			File        string `json:"file"`
			ContentHash string `json:"content_hash"`
			IndexHash   string `json:"index_hash"`
		}](t, r, 200)
		wantHash := "sha256:" + sha256Hex([]byte(newSkill))
		if put.AgentID != c.id || put.File != "SKILL.md" || put.ContentHash != wantHash {
			t.Errorf("PUT answer %s, want content_hash %s", r, wantHash)
		}
		got := expectJSON[skillJSON](t, getSkill(t, ""), 200)
		if got.Content != newSkill || got.ContentHash != wantHash ||
			got.ContentHash == first.ContentHash {
			t.Errorf("after PUT: content %q hash %s; want the new text and %s",
				got.Content, got.ContentHash, wantHash)
		}
		if r := getSkill(t, `"`+first.ContentHash+`"`); r.status != 200 {
			t.Errorf("old hash after PUT: %d, want 200", r.status)
		}
		if r := getSkill(t, `"`+wantHash+`"`); r.status != 304 {
			t.Errorf("new hash after PUT: %d, want 304", r.status)
		}
		served["SKILL.md"] = []byte(newSkill)
		idx := checkIndex(t, s, c, 7, served)
		if put.IndexHash != "sha256:"+sha256Hex(idx) {
			t.Errorf("index_hash %s is not the hash of the served skill.json", put.IndexHash)
		}
		r = s.agent(t, "GET", "/agents/"+other.id+"/skill/SKILL.md", other.key, nil)
		if r.status != 200 || string(r.body) == newSkill {
			t.Errorf("another agent's SKILL.md changed too")
		}
	})
	t.Run("owner replaces RULES.md: sf follows", func(t *testing.T) {
		rules := "# Rules\n\nNo malware. Ünïcode kept.\n"
		r := s.admin(t, "PUT", "/admin/agents/"+c.id+"/skill/RULES.md", rules)
		if r.status != 200 {
			t.Fatalf("%s", r)
		}
		oid := s.placeOrder(t, c.id, nil)
		evs := s.poll(t, c.key)
		if len(evs) != 1 || evs[0].OrderID != oid || evs[0].SF != rules {
			t.Errorf("sf after RULES.md PUT = %q, want the new rules", firstSF(evs))
		}
	})
	t.Run("owner cannot replace skill.json or unknown files", func(t *testing.T) {
		expectError(t, s, s.admin(t, "PUT", "/admin/agents/"+c.id+"/skill/skill.json",
			`{"files":[]}`), 400, "invalid_request")
		expectError(t, s, s.admin(t, "PUT", "/admin/agents/"+c.id+"/skill/NOPE.md", "x"),
			404, "not_found")
		expectError(t, s, s.admin(t, "PUT", "/admin/agents/agt_"+strings.Repeat("a", 16)+
			"/skill/SKILL.md", "x"), 404, "not_found")
	})
}

func firstSF(evs []eventJSON) string {
	if len(evs) == 0 {
		return "<no event>"
	}
	return evs[0].SF
}

// checkIndex fetches skill.json and checks it against the other served files; it returns the
// raw skill.json.
func checkIndex(t *testing.T, s *e2eServer, c creds, poll int,
	served map[string][]byte) []byte {
	t.Helper()
	agentID := c.id
	r := s.agent(t, "GET", "/agents/"+agentID+"/skill/skill.json", c.key, nil)
	idx := expectJSON[skillIndexJSON](t, r, 200)
	if idx.AgentID != agentID || idx.PollMinutes != poll || idx.APIBase != s.agentURL+"/api" {
		t.Errorf("skill.json agent_id %q poll_minutes %d api_base %q; want %s, %d, %s/api",
			idx.AgentID, idx.PollMinutes, idx.APIBase, agentID, poll, s.agentURL)
	}
	if len(idx.Limits) == 0 {
		t.Errorf("skill.json has no limits")
	}
	var names []string
	for _, f := range idx.Files {
		names = append(names, f.Name)
		content, ok := served[f.Name]
		if !ok {
			continue
		}
		if f.SHA256 != sha256Hex(content) || f.Size != int64(len(content)) {
			t.Errorf("skill.json lists %s as %d bytes %s; served %d bytes %s", f.Name, f.Size,
				f.SHA256, len(content), sha256Hex(content))
		}
	}
	want := []string{"SKILL.md", "HEARTBEAT_EVENTS.md", "RULES.md", "API.md"}
	if !slices.Equal(names, want) {
		t.Errorf("skill.json files %v, want %v", names, want)
	}
	return r.body
}

// ---- 6. multipart delivery ----

func TestE2EMultipartDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	s := startServer(t, "")
	c := s.newAgent(t, nil)
	oid := s.placeOrder(t, c.id, nil)
	big, tiny := binaryBlob(100<<10), []byte{0x00, 0xff, 0xfe, 'a', 0x00, 0xc3}
	uni := []byte("héllo wörld ✓\n")
	files := map[string][]byte{"blob.bin": big, "tiny.dat": tiny, "résumé ✓.txt": uni}
	ctype, body := multipartBody(t, []mpPart{
		{field: "text", data: []byte("Three files attached ✓")},
		{field: "urls", data: []byte("https://example.com/a")},
		{field: "file", filename: "blob.bin", ctype: "application/octet-stream", data: big},
		{field: "urls", data: []byte("http://example.com/b?x=1&y=%20")},
		{field: "file", filename: "tiny.dat", ctype: "application/octet-stream", data: tiny},
		{field: "file", filename: "résumé ✓.txt", ctype: "text/plain", data: uni},
	})

	t.Run("deliver", func(t *testing.T) {
		r := s.deliverRaw(t, "", c.key, oid, ctype, body)
		d := expectJSON[deliverReplyJSON](t, r, 201)
		if d != (deliverReplyJSON{OrderID: oid, Delivery: 1, State: "delivered"}) {
			t.Errorf("%s", r)
		}
	})
	t.Run("order lists the files", func(t *testing.T) {
		o := s.getOrder(t, oid)
		if o.State != "delivered" || len(o.Deliveries) != 1 {
			t.Fatalf("order state %s, %d deliveries", o.State, len(o.Deliveries))
		}
		d := o.Deliveries[0]
		if d.Text != "Three files attached ✓" {
			t.Errorf("text %q", d.Text)
		}
		wantURLs := []string{"https://example.com/a", "http://example.com/b?x=1&y=%20"}
		if !slices.Equal(d.URLs, wantURLs) {
			t.Errorf("urls %q, want %q", d.URLs, wantURLs)
		}
		if len(d.Files) != len(files) {
			t.Errorf("%d files listed, want %d: %+v", len(d.Files), len(files), d.Files)
		}
		for _, f := range d.Files {
			data, ok := files[f.Name]
			if !ok {
				t.Errorf("unexpected file %q", f.Name)
				continue
			}
			if f.Size != int64(len(data)) || f.SHA256 != sha256Hex(data) {
				t.Errorf("%s listed as %d bytes %s, want %d bytes %s", f.Name, f.Size,
					f.SHA256, len(data), sha256Hex(data))
			}
		}
	})
	t.Run("download is byte-identical", func(t *testing.T) {
		for name, data := range files {
			r := s.admin(t, "GET", "/admin/orders/"+oid+"/deliveries/1/files/"+
				url.PathEscape(name), nil)
			if r.status != 200 {
				t.Errorf("%s", r)
				continue
			}
			if !bytes.Equal(r.body, data) {
				t.Errorf("%s: downloaded %d bytes (sha256 %s), want %d bytes (%s)", name,
					len(r.body), sha256Hex(r.body), len(data), sha256Hex(data))
			}
			if got := r.header.Get("X-Content-SHA256"); got != sha256Hex(data) {
				t.Errorf("%s: X-Content-SHA256 %q", name, got)
			}
		}
	})
	t.Run("unknown files are 404", func(t *testing.T) {
		for _, p := range []string{
			"/admin/orders/" + oid + "/deliveries/1/files/nope.bin",
			"/admin/orders/" + oid + "/deliveries/2/files/blob.bin",
			"/admin/orders/" + oid + "/deliveries/0/files/blob.bin",
			"/admin/orders/" + oid + "/deliveries/1/files/BLOB.BIN",
		} {
			expectError(t, s, s.admin(t, "GET", p, nil), 404, "not_found")
		}
	})
	t.Run("files only, and a one-byte NUL file", func(t *testing.T) {
		o2 := s.placeOrder(t, c.id, nil)
		ct, b := multipartBody(t, []mpPart{{field: "f", filename: "nul", data: []byte{0}}})
		if r := s.deliverRaw(t, "/api", c.key, o2, ct, b); r.status != 201 {
			t.Fatalf("%s", r)
		}
		r := s.admin(t, "GET", "/admin/orders/"+o2+"/deliveries/1/files/nul", nil)
		if r.status != 200 || !bytes.Equal(r.body, []byte{0}) {
			t.Errorf("%s", r)
		}
	})
}

// ---- 7. crash: kill -9 after acknowledged writes ----

func TestE2ECrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	dir := t.TempDir()
	s1 := startServer(t, dir)

	// A: registered, four orders polled, then delivered (with a file), declined, flagged,
	// progressed; a fifth order queued and not polled; a replaced RULES.md; then paused.
	a := s1.newAgent(t, map[string]any{"name": "Crash A", "poll_minutes": 3})
	var oa []string
	for i := 0; i < 4; i++ {
		oa = append(oa, s1.placeOrder(t, a.id, map[string]any{"price": 100 + i}))
	}
	if evs := s1.poll(t, a.key); len(evs) != 4 {
		t.Fatalf("A polled %d events, want 4", len(evs))
	}
	file := binaryBlob(64 << 10)
	ct, body := multipartBody(t, []mpPart{
		{field: "text", data: []byte("with a file")},
		{field: "file", filename: "work.bin", data: file},
	})
	mustStatus(t, s1.deliverRaw(t, "", a.key, oa[0], ct, body), 201)
	mustStatus(t, s1.agent(t, "POST", "/orders/"+oa[1]+"/decline", a.key,
		map[string]any{"reason": "missing_information", "message": "need the colours"}), 200)
	mustStatus(t, s1.agent(t, "POST", "/orders/"+oa[2]+"/flag", a.key,
		map[string]any{"reason": "policy_violation", "message": "looks like spam"}), 200)
	mustStatus(t, s1.agent(t, "POST", "/status", a.key,
		map[string]any{"order_id": oa[3], "progress": 30, "message": "sketching"}), 200)
	rules := "# Rules after a crash\n"
	mustStatus(t, s1.admin(t, "PUT", "/admin/agents/"+a.id+"/skill/RULES.md", rules), 200)
	oa5 := s1.placeOrder(t, a.id, map[string]any{"gig": "queued gig"})

	// B: registered, one order queued, never polled.
	b := s1.newAgent(t, nil)
	ob := s1.placeOrder(t, b.id, nil)
	// C: registered, key revoked. D: created, token not redeemed. E: token redeemed.
	c := s1.newAgent(t, nil)
	mustStatus(t, s1.admin(t, "POST", "/admin/agents/"+c.id+"/revoke-key", nil), 200)
	// F: registered, key revoked, registered again: the old key is remembered as revoked.
	f := s1.newAgent(t, nil)
	fOldKey := f.key
	mustStatus(t, s1.admin(t, "POST", "/admin/agents/"+f.id+"/revoke-key", nil), 200)
	f.token = s1.mintToken(t, f.id, nil)
	f.key = s1.register(t, f)
	d := s1.createAgent(t, map[string]any{"manual_acceptance": true})
	od := s1.placeOrder(t, d.id, nil)
	// last acknowledged write: A pauses itself
	mustStatus(t, s1.agent(t, "POST", "/status", a.key, map[string]any{"status": "paused"}),
		200)
	s1.kill9(t)

	if fi, err := os.Stat(filepath.Join(dir, "db")); err != nil || !fi.IsDir() {
		t.Errorf("no badger directory %s/db after the first run: %v", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "admin-token")); err == nil {
		t.Errorf("an admin-token file was written although --admin-token was given")
	}
	s2 := startServer(t, dir)
	for _, sec := range s1.knownSecrets()[1:] {
		s2.noteSecret(sec)
	}
	aPart, bPart := strings.TrimPrefix(a.id, "agt_"), strings.TrimPrefix(b.id, "agt_")

	t.Run("orders keep their states", func(t *testing.T) {
		want := map[string]string{oa[0]: "delivered", oa[1]: "declined", oa[2]: "flagged",
			oa[3]: "in_progress", oa5: "in_progress", ob: "in_progress",
			od: "awaiting_approval"}
		for id, st := range want {
			if got := s2.getOrder(t, id).State; got != st {
				t.Errorf("order %s: %s after restart, want %s", id, got, st)
			}
		}
		if o := s2.getOrder(t, oa[1]); o.Decline == nil || o.Decline.Reason !=
			"missing_information" || o.Decline.Message != "need the colours" {
			t.Errorf("decline lost: %+v", o.Decline)
		}
		if o := s2.getOrder(t, oa[2]); o.Flag == nil || o.Flag.Reason != "policy_violation" ||
			o.FlaggedFrom != "in_progress" {
			t.Errorf("flag lost: %+v from %q", o.Flag, o.FlaggedFrom)
		}
		if o := s2.getOrder(t, oa[3]); o.Progress == nil || o.Progress.Percent != 30 ||
			o.Progress.Message != "sketching" {
			t.Errorf("progress lost: %+v", o.Progress)
		}
		o := s2.getOrder(t, oa[0])
		if len(o.Deliveries) != 1 || o.Deliveries[0].Text != "with a file" ||
			len(o.Deliveries[0].Files) != 1 ||
			o.Deliveries[0].Files[0].SHA256 != sha256Hex(file) {
			t.Errorf("delivery lost: %+v", o.Deliveries)
		}
		checkHistory(t, o, []transitionJSON{
			{To: "in_progress", By: "customer"},
			{From: "in_progress", To: "delivered", By: "agent"},
		})
	})
	t.Run("file downloads identical", func(t *testing.T) {
		r := s2.admin(t, "GET", "/admin/orders/"+oa[0]+"/deliveries/1/files/work.bin", nil)
		if r.status != 200 || !bytes.Equal(r.body, file) {
			t.Errorf("download after restart: %d, %d bytes, want %d identical bytes",
				r.status, len(r.body), len(file))
		}
	})
	t.Run("agent state", func(t *testing.T) {
		ag := s2.getAgent(t, a.id)
		if ag.Status != "paused" || ag.KeyState != "active" || ag.Settings.PollMinutes != 3 ||
			ag.Name != "Crash A" || ag.EventsQueued != 1 {
			t.Errorf("A after restart: %+v", ag)
		}
		expectError(t, s2, s2.admin(t, "POST", "/admin/orders", orderBody(a.id, nil)), 409,
			"agent_paused")
		r := s2.agent(t, "GET", "/agents/"+a.id+"/skill/RULES.md", a.key, nil)
		if r.status != 200 || string(r.body) != rules {
			t.Errorf("replaced RULES.md lost: %s", r)
		}
	})
	t.Run("queued events come back with the same ids", func(t *testing.T) {
		// evt_5 was never polled; events 1-4 were, so they may come again (same ids) but
		// need not
		evs := s2.poll(t, a.key)
		if n := len(evs); n == 0 || evs[n-1].ID != "evt_"+aPart+"_5" ||
			evs[n-1].OrderID != oa5 || evs[n-1].Kind != "new_order" ||
			evs[n-1].Order.Gig != "queued gig" || evs[n-1].SF != rules {
			t.Errorf("A's queued events after restart: %+v, want evt_%s_5 for %s last", evs,
				aPart, oa5)
		}
		for i, e := range evs[:max(len(evs)-1, 0)] {
			if e.ID != fmt.Sprintf("evt_%s_%d", aPart, i+1+4-(len(evs)-1)) ||
				!slices.Contains(oa, e.OrderID) {
				t.Errorf("A's event %s about %s after restart: not a redelivery of 1-4",
					e.ID, e.OrderID)
			}
		}
		evs = s2.poll(t, b.key)
		if len(evs) != 1 || evs[0].ID != "evt_"+bPart+"_1" || evs[0].OrderID != ob {
			t.Errorf("B's queued events after restart: %+v", evs)
		}
		s2.expectEmptyPoll(t, a.key)
		s2.expectEmptyPoll(t, b.key)
	})
	t.Run("keys and tokens", func(t *testing.T) {
		expectError(t, s2, s2.agent(t, "GET", "/events", c.key, nil), 401, "key_revoked")
		expectError(t, s2, s2.agent(t, "GET", "/events", fOldKey, nil), 401, "key_revoked")
		s2.expectEmptyPoll(t, f.key)
		expectError(t, s2, s2.tryRegister(t, "", "Bootstrap", c.token, nil), 401,
			"bootstrap_used")
		expectError(t, s2, s2.tryRegister(t, "", "Bootstrap", a.token, nil), 401,
			"bootstrap_used")
		d.key = s2.register(t, d)
		evs := s2.poll(t, d.key)
		if len(evs) != 1 || evs[0].OrderID != od || evs[0].Order.State != "awaiting_approval" {
			t.Errorf("D's events: %+v", evs)
		}
		// the agent finishes work after the crash
		mustStatus(t, s2.agent(t, "POST", "/orders/"+oa[3]+"/deliver", a.key,
			map[string]any{"text": "after the crash"}), 201)
	})

	// a clean restart keeps everything too, the last poll time included
	t.Run("graceful restart keeps last_poll_at", func(t *testing.T) {
		before := s2.getAgent(t, a.id)
		s2.stop(t)
		s3 := startServer(t, dir)
		for _, sec := range s2.knownSecrets()[1:] {
			s3.noteSecret(sec)
		}
		after := s3.getAgent(t, a.id)
		if before.LastPollAt == nil || after.LastPollAt == nil ||
			!parseTime(t, "before", *before.LastPollAt).Equal(
				parseTime(t, "after", *after.LastPollAt)) {
			t.Errorf("last_poll_at %v before SIGTERM, %v after restart", before.LastPollAt,
				after.LastPollAt)
		}
		if o := s3.getOrder(t, oa[3]); o.State != "delivered" {
			t.Errorf("delivery after crash lost on clean restart: %s", o.State)
		}
		s3.expectEmptyPoll(t, a.key)
	})
}

// mustStatus fails the test now unless r has the status.
func mustStatus(t testing.TB, r *response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s, want %d", r, status)
	}
}

// ---- manual acceptance: approve, deny, decline before work ----

func TestE2EManualAcceptance(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	s := startServer(t, "")
	c := s.newAgent(t, map[string]any{"manual_acceptance": true, "revision_cap": 4})
	part := strings.TrimPrefix(c.id, "agt_")
	o1 := s.placeOrder(t, c.id, nil)
	o2 := s.placeOrder(t, c.id, nil)
	o3 := s.placeOrder(t, c.id, nil)

	t.Run("new_order says wait", func(t *testing.T) {
		evs := s.poll(t, c.key)
		if len(evs) != 3 {
			t.Fatalf("%d events, want 3", len(evs))
		}
		for i, e := range evs {
			if e.Kind != "new_order" || e.Order.State != "awaiting_approval" ||
				e.ID != fmt.Sprintf("evt_%s_%d", part, i+1) || e.SF == "" ||
				e.Order.RevisionsAllowed != 4 {
				t.Errorf("event %d = %+v", i, e)
			}
		}
		for _, r := range []*response{
			s.agent(t, "POST", "/orders/"+o1+"/deliver", c.key, map[string]any{"text": "x"}),
			s.agent(t, "POST", "/status", c.key, map[string]any{"order_id": o1, "progress": 1}),
			s.admin(t, "POST", "/admin/orders/"+o1+"/release", nil),
		} {
			msg := expectError(t, s, r, 409, "invalid_state")
			if !strings.Contains(msg, "awaiting_approval") {
				t.Errorf("message %q does not name awaiting_approval", msg)
			}
		}
	})
	t.Run("approve", func(t *testing.T) {
		r := s.admin(t, "POST", "/admin/orders/"+o1+"/approve", map[string]any{"reason": "ok"})
		if got := expectJSON[orderReplyJSON](t, r, 200); got.State != "in_progress" {
			t.Errorf("%s", r)
		}
		evs := s.poll(t, c.key)
		if len(evs) != 1 || evs[0].Kind != "owner_approved_order" || evs[0].OrderID != o1 ||
			evs[0].Order.State != "in_progress" || evs[0].SF == "" ||
			evs[0].ID != "evt_"+part+"_4" {
			t.Errorf("after approve: %+v", evs)
		}
		mustStatus(t, s.agent(t, "POST", "/orders/"+o1+"/deliver", c.key,
			map[string]any{"text": "done"}), 201)
		expectError(t, s, s.admin(t, "POST", "/admin/orders/"+o1+"/approve", nil), 409,
			"invalid_state")
	})
	t.Run("deny", func(t *testing.T) {
		r := s.admin(t, "POST", "/admin/orders/"+o2+"/deny",
			map[string]any{"reason": "no budget"})
		if got := expectJSON[orderReplyJSON](t, r, 200); got.State != "denied" {
			t.Errorf("%s", r)
		}
		evs := s.poll(t, c.key)
		if len(evs) != 1 || evs[0].Kind != "owner_denied_order" || evs[0].OrderID != o2 ||
			evs[0].Reason != "no budget" || evs[0].Order.State != "denied" {
			t.Errorf("after deny: %+v", evs)
		}
		o := s.getOrder(t, o2)
		if o.State != "denied" || o.Refund == nil {
			t.Errorf("denied order: state %s refund %+v", o.State, o.Refund)
		}
		expectError(t, s, s.agent(t, "POST", "/orders/"+o2+"/flag", c.key,
			map[string]any{"reason": "other"}), 409, "invalid_state")
	})
	t.Run("decline before approval", func(t *testing.T) {
		r := s.agent(t, "POST", "/orders/"+o3+"/decline", c.key,
			map[string]any{"reason": "out_of_scope", "message": "not my field"})
		if got := expectJSON[orderReplyJSON](t, r, 200); got != (orderReplyJSON{o3,
			"declined"}) {
			t.Errorf("%s", r)
		}
		o := s.getOrder(t, o3)
		if o.Decline == nil || o.Decline.Reason != "out_of_scope" ||
			o.Decline.Message != "not my field" {
			t.Errorf("decline note %+v", o.Decline)
		}
		checkHistory(t, o, []transitionJSON{
			{To: "awaiting_approval", By: "customer"},
			{From: "awaiting_approval", To: "declined", By: "agent"},
		})
		s.expectEmptyPoll(t, c.key)
	})
	t.Run("owner refund", func(t *testing.T) {
		o4 := s.placeOrder(t, c.id, nil)
		mustStatus(t, s.admin(t, "POST", "/admin/orders/"+o4+"/approve", nil), 200)
		r := s.admin(t, "POST", "/admin/orders/"+o4+"/refund", map[string]any{"reason": "late"})
		if got := expectJSON[orderReplyJSON](t, r, 200); got.State != "refunded" {
			t.Errorf("%s", r)
		}
		if a := s.getAgent(t, c.id); a.Orders["refunded"] != 1 || a.Orders["denied"] != 1 ||
			a.Orders["declined"] != 1 || a.Orders["delivered"] != 1 {
			t.Errorf("order counts %v", a.Orders)
		}
	})
}

// ---- the rest of an order's life: revisions, scope, unflag, retries, deadlines ----

func TestE2EOrderLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	s := startServer(t, "", "--approval-window", "1s")
	c := s.newAgent(t, map[string]any{"revision_cap": 1})
	deliver := func(t *testing.T, oid, text string) *response {
		return s.agent(t, "POST", "/orders/"+oid+"/deliver", c.key, map[string]any{"text": text})
	}

	t.Run("revisions", func(t *testing.T) {
		oid := s.placeOrder(t, c.id, nil)
		s.poll(t, c.key)
		mustStatus(t, deliver(t, oid, "v1"), 201)
		r := s.admin(t, "POST", "/admin/orders/"+oid+"/revision",
			map[string]any{"note": "bigger logo"})
		if got := expectJSON[orderReplyJSON](t, r, 200); got.State != "in_progress" {
			t.Fatalf("revision within the cap: %s, want in_progress", r)
		}
		evs := s.poll(t, c.key)
		if len(evs) != 1 || evs[0].Kind != "revision_request" || evs[0].OrderID != oid ||
			evs[0].Note != "bigger logo" || evs[0].Revision != 1 || evs[0].SF == "" ||
			evs[0].Order.RevisionsUsed != 1 || evs[0].Order.State != "in_progress" {
			t.Errorf("revision event: %+v", evs)
		}
		d := expectJSON[deliverReplyJSON](t, deliver(t, oid, "v2"), 201)
		if d.Delivery != 2 {
			t.Errorf("second delivery numbered %d, want 2", d.Delivery)
		}

		r = s.admin(t, "POST", "/admin/orders/"+oid+"/revision", map[string]any{"note": "more"})
		if got := expectJSON[orderReplyJSON](t, r, 200); got.State != "revision_review" {
			t.Fatalf("revision beyond the cap: %s, want revision_review", r)
		}
		expectError(t, s, deliver(t, oid, "v3"), 409, "invalid_state")
		r = s.admin(t, "POST", "/admin/orders/"+oid+"/deny", map[string]any{"reason": "no"})
		if got := expectJSON[orderReplyJSON](t, r, 200); got.State != "delivered" {
			t.Errorf("owner rejects the revision: %s, want back to delivered", r)
		}
		s.poll(t, c.key)
		mustStatus(t, s.admin(t, "POST", "/admin/orders/"+oid+"/revision",
			map[string]any{"note": "really more"}), 200)
		r = s.admin(t, "POST", "/admin/orders/"+oid+"/approve", nil)
		if got := expectJSON[orderReplyJSON](t, r, 200); got.State != "in_progress" {
			t.Errorf("owner approves the revision: %s, want in_progress", r)
		}
		evs = s.poll(t, c.key)
		if n := len(evs); n == 0 || evs[n-1].OrderID != oid || evs[n-1].SF == "" ||
			evs[n-1].Order.State != "in_progress" {
			t.Errorf("no work event after the approved revision: %+v", evs)
		}
		mustStatus(t, deliver(t, oid, "v3"), 201)
		if o := s.getOrder(t, oid); len(o.Deliveries) != 3 || o.State != "delivered" {
			t.Errorf("order: %d deliveries, %s", len(o.Deliveries), o.State)
		}
	})
	t.Run("scope change", func(t *testing.T) {
		oid := s.placeOrder(t, c.id, nil)
		s.poll(t, c.key)
		dl := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
		r := s.admin(t, "POST", "/admin/orders/"+oid+"/scope", map[string]any{
			"scope": "two logos", "brief": "now with a hat", "deadline": dl})
		mustStatus(t, r, 200)
		evs := s.poll(t, c.key)
		if len(evs) != 1 || evs[0].Kind != "scope_change" || evs[0].SF == "" ||
			evs[0].Order.Scope != "two logos" || evs[0].Order.Brief != "now with a hat" ||
			!parseTime(t, "deadline", evs[0].Order.Deadline).Equal(parseTime(t, "dl", dl)) {
			t.Errorf("scope_change event: %+v", evs)
		}
		if o := s.getOrder(t, oid); o.Scope != "two logos" || o.State != "in_progress" {
			t.Errorf("order after scope change: %+v", o)
		}
	})
	t.Run("unflag", func(t *testing.T) {
		oid := s.placeOrder(t, c.id, nil)
		s.poll(t, c.key)
		mustStatus(t, s.agent(t, "POST", "/orders/"+oid+"/flag", c.key,
			map[string]any{"reason": "other"}), 200)
		r := s.admin(t, "POST", "/admin/orders/"+oid+"/unflag", nil)
		if got := expectJSON[orderReplyJSON](t, r, 200); got.State != "in_progress" {
			t.Errorf("unflag: %s, want back to in_progress", r)
		}
		mustStatus(t, deliver(t, oid, "after unflag"), 201)
	})
	t.Run("Idempotency-Key", func(t *testing.T) {
		oid := s.placeOrder(t, c.id, nil)
		s.poll(t, c.key)
		send := func(key, text string) *response {
			return s.do(t, "POST", s.agentURL+"/orders/"+oid+"/deliver", map[string]string{
				"Authorization": "Bearer " + c.key, "Content-Type": "application/json",
				"Idempotency-Key": key}, []byte(`{"text":"`+text+`"}`))
		}
		first := send("retry-1", "work")
		mustStatus(t, first, 201)
		again := send("retry-1", "work")
		if again.status != 201 || !bytes.Equal(again.body, first.body) {
			t.Errorf("retried delivery: %s, want the first answer %s", again, first)
		}
		expectError(t, s, send("retry-1", "other work"), 422, "idempotency_key_reused")
		expectError(t, s, send("retry-2", "work"), 409, "invalid_state")
		if o := s.getOrder(t, oid); len(o.Deliveries) != 1 {
			t.Errorf("%d deliveries after retries, want 1", len(o.Deliveries))
		}
	})
	t.Run("missed deadline refunds without a poll", func(t *testing.T) {
		dl := time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339)
		oid := s.placeOrder(t, c.id, map[string]any{"deadline": dl})
		o := waitOrderState(t, s, oid, "refunded", 10*time.Second)
		if o.Refund == nil || o.Refund.Reason != "missed_deadline" {
			t.Errorf("refund note %+v, want reason missed_deadline", o.Refund)
		}
		if n := len(o.History); n == 0 || o.History[n-1].By != "system" {
			t.Errorf("history %+v: last transition not by system", o.History)
		}
		msg := expectError(t, s, deliver(t, oid, "late"), 409, "invalid_state")
		if !strings.Contains(msg, "refunded") {
			t.Errorf("message %q does not name refunded", msg)
		}
		s.poll(t, c.key)
	})
	t.Run("approval window passes", func(t *testing.T) {
		m := s.newAgent(t, map[string]any{"manual_acceptance": true})
		oid := s.placeOrder(t, m.id, nil)
		evs := s.poll(t, m.key)
		waitOrderState(t, s, oid, "denied", 10*time.Second)
		evs = append(evs, s.poll(t, m.key)...)
		if len(evs) != 2 || evs[0].Kind != "new_order" ||
			evs[1].Kind != "owner_denied_order" || evs[1].OrderID != oid ||
			evs[1].Reason == "" || evs[1].Order.State != "denied" {
			t.Errorf("after the approval window: %+v, want new_order, then "+
				"owner_denied_order with a reason", evs)
		}
	})
}

// waitOrderState polls the admin API (every 100 ms, at most limit) until the order is in state.
func waitOrderState(t *testing.T, s *e2eServer, oid, state string,
	limit time.Duration) orderJSON {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		o := s.getOrder(t, oid)
		if o.State == state {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s is %s after %s, want %s", oid, o.State, limit, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
