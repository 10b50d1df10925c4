package main

// End-to-end tests of an order's life as the agent and the owner see it: the exact payload of
// every event kind, revisions beyond the cap, deadlines (with the server up and down),
// idempotent retries across a crash, the request limits and the request budget. Like the other
// e2e tests they start the real binary on loopback ports and are skipped with -short.

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Exact key sets of an event as the agent receives it, by kind.
var (
	lcWorkKeys     = []string{"created_at", "id", "kind", "order", "order_id", "sf"}
	lcRevisionKeys = []string{"created_at", "id", "kind", "note", "order", "order_id",
		"revision", "sf"}
	lcDeniedKeys = []string{"created_at", "id", "kind", "order", "order_id", "reason"}
)

// lcWant is what one event must look like.
type lcWant struct {
	seq           int // the n of evt_<agent part>_<n>
	kind, orderID string
	keys          []string
	state         string // order.state
	revisionsUsed int
	note, reason  string
	revision      int
	sf            string // "" means sf must be absent
}

// lcCheckEvent checks one event against w: id, kind, exact JSON keys, created_at, the order view
// and the kind's own fields.
func lcCheckEvent(t testing.TB, agentID string, e eventJSON, w lcWant, since time.Time) {
	t.Helper()
	part := strings.TrimPrefix(agentID, "agt_")
	if want := fmt.Sprintf("evt_%s_%d", part, w.seq); e.ID != want {
		t.Errorf("event %s (%s): id %q, want %q", e.ID, e.Kind, e.ID, want)
	}
	if e.Kind != w.kind || e.OrderID != w.orderID || e.Order.ID != w.orderID {
		t.Errorf("event %s: kind %q order_id %q order.id %q, want %s about %s", e.ID, e.Kind,
			e.OrderID, e.Order.ID, w.kind, w.orderID)
	}
	if got := jsonKeys(t, e.Raw); !slices.Equal(got, w.keys) {
		t.Errorf("event %s (%s): keys %v, want exactly %v", e.ID, e.Kind, got, w.keys)
	}
	created, err := time.Parse(time.RFC3339, e.CreatedAt)
	if err != nil {
		t.Errorf("event %s: created_at %q is not RFC 3339", e.ID, e.CreatedAt)
	} else if created.Before(since) || created.After(time.Now().Add(time.Second)) {
		t.Errorf("event %s: created_at %s is not between %s and now", e.ID, created, since)
	}
	if e.Order.State != w.state || e.Order.RevisionsUsed != w.revisionsUsed {
		t.Errorf("event %s (%s): order.state %q revisions_used %d, want %q and %d", e.ID,
			e.Kind, e.Order.State, e.Order.RevisionsUsed, w.state, w.revisionsUsed)
	}
	if e.Note != w.note || e.Revision != w.revision || e.Reason != w.reason {
		t.Errorf("event %s (%s): note %q revision %d reason %q, want %q, %d, %q", e.ID,
			e.Kind, e.Note, e.Revision, e.Reason, w.note, w.revision, w.reason)
	}
	if w.sf == "" {
		if bytes.Contains(e.Raw, []byte(`"sf"`)) {
			t.Errorf("event %s (%s) carries sf; it must be absent", e.ID, e.Kind)
		}
	} else if e.SF != w.sf {
		t.Errorf("event %s (%s): sf (%d bytes) is not the agent's RULES.md (%d bytes)", e.ID,
			e.Kind, len(e.SF), len(w.sf))
	}
}

// lcRules returns the agent's RULES.md as served to it.
func lcRules(t testing.TB, s *e2eServer, c creds) string {
	t.Helper()
	r := s.agent(t, "GET", "/agents/"+c.id+"/skill/RULES.md", c.key, nil)
	if r.status != 200 || len(bytes.TrimSpace(r.body)) == 0 {
		t.Fatalf("%s: want 200 and the rules", r)
	}
	return string(r.body)
}

// lcPollN polls once and fails the test unless exactly n events came back.
func lcPollN(t testing.TB, s *e2eServer, c creds, n int) []eventJSON {
	t.Helper()
	evs := s.poll(t, c.key)
	if len(evs) != n {
		kinds := make([]string, len(evs))
		for i, e := range evs {
			kinds[i] = e.ID + " " + e.Kind
		}
		t.Fatalf("poll returned %d events %v, want %d", len(evs), kinds, n)
	}
	return evs
}

// ---- 1. every event kind's payload ----

func TestE2EEventPayloads(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	s := startServer(t, "", "--approval-window", "2s")
	since := time.Now().Add(-time.Second)
	auto := s.newAgent(t, map[string]any{"name": "Payload auto", "revision_cap": 2})
	man := s.newAgent(t, map[string]any{"name": "Payload manual", "manual_acceptance": true,
		"revision_cap": 3})
	autoRules, manRules := lcRules(t, s, auto), lcRules(t, s, man)

	// The manual agent's orders go first: the approval window of the first one runs while the
	// rest of the test does.
	mTimeout := s.placeOrder(t, man.id, nil)
	mApprove := s.placeOrder(t, man.id, nil)
	mDeny := s.placeOrder(t, man.id, nil)
	mustStatus(t, s.admin(t, "POST", "/admin/orders/"+mApprove+"/approve", nil), 200)
	mustStatus(t, s.admin(t, "POST", "/admin/orders/"+mDeny+"/deny",
		map[string]any{"reason": "no budget this month"}), 200)

	t.Run("manual: new_order, owner_approved_order, owner_denied_order", func(t *testing.T) {
		evs := lcPollN(t, s, man, 5)
		for i, oid := range []string{mTimeout, mApprove, mDeny} {
			lcCheckEvent(t, man.id, evs[i], lcWant{seq: i + 1, kind: "new_order",
				orderID: oid, keys: lcWorkKeys, state: "awaiting_approval", sf: manRules}, since)
			if evs[i].Order.RevisionsAllowed != 3 {
				t.Errorf("new_order revisions_allowed %d, want 3", evs[i].Order.RevisionsAllowed)
			}
		}
		lcCheckEvent(t, man.id, evs[3], lcWant{seq: 4, kind: "owner_approved_order",
			orderID: mApprove, keys: lcWorkKeys, state: "in_progress", sf: manRules}, since)
		lcCheckEvent(t, man.id, evs[4], lcWant{seq: 5, kind: "owner_denied_order",
			orderID: mDeny, keys: lcDeniedKeys, state: "denied",
			reason: "no budget this month"}, since)
		s.expectEmptyPoll(t, man.key)
	})

	oid := s.placeOrder(t, auto.id, nil)
	deliver := func(t *testing.T, text string) {
		t.Helper()
		mustStatus(t, s.agent(t, "POST", "/orders/"+oid+"/deliver", auto.key,
			map[string]any{"text": text}), 201)
	}
	revise := func(t *testing.T, note string) {
		t.Helper()
		r := s.admin(t, "POST", "/admin/orders/"+oid+"/revision", map[string]any{"note": note})
		if got := expectJSON[orderReplyJSON](t, r, 200); got.State != "in_progress" {
			t.Fatalf("revision within the cap: %s, want in_progress", r)
		}
	}
	t.Run("auto: new_order", func(t *testing.T) {
		evs := lcPollN(t, s, auto, 1)
		lcCheckEvent(t, auto.id, evs[0], lcWant{seq: 1, kind: "new_order", orderID: oid,
			keys: lcWorkKeys, state: "in_progress", sf: autoRules}, since)
		if evs[0].Order.RevisionsAllowed != 2 {
			t.Errorf("revisions_allowed %d, want 2", evs[0].Order.RevisionsAllowed)
		}
	})
	t.Run("revision_request 1 and 2", func(t *testing.T) {
		deliver(t, "v1")
		revise(t, "bigger, please")
		evs := lcPollN(t, s, auto, 1)
		lcCheckEvent(t, auto.id, evs[0], lcWant{seq: 2, kind: "revision_request",
			orderID: oid, keys: lcRevisionKeys, state: "in_progress", revisionsUsed: 1,
			note: "bigger, please", revision: 1, sf: autoRules}, since)
		deliver(t, "v2")
		revise(t, "now in blue ✓")
		evs = lcPollN(t, s, auto, 1)
		lcCheckEvent(t, auto.id, evs[0], lcWant{seq: 3, kind: "revision_request",
			orderID: oid, keys: lcRevisionKeys, state: "in_progress", revisionsUsed: 2,
			note: "now in blue ✓", revision: 2, sf: autoRules}, since)
		if o := s.getOrder(t, oid); o.RevisionsUsed != 2 || o.State != "in_progress" {
			t.Errorf("admin order: revisions_used %d state %s, want 2 in_progress",
				o.RevisionsUsed, o.State)
		}
	})
	t.Run("scope_change carries the updated order", func(t *testing.T) {
		dl := time.Now().Add(96 * time.Hour).UTC().Truncate(time.Second)
		mustStatus(t, s.admin(t, "POST", "/admin/orders/"+oid+"/scope", map[string]any{
			"scope": "three logos", "brief": "with a hat ✓", "deadline": dl.Format(time.RFC3339),
		}), 200)
		evs := lcPollN(t, s, auto, 1)
		e := evs[0]
		lcCheckEvent(t, auto.id, e, lcWant{seq: 4, kind: "scope_change", orderID: oid,
			keys: lcWorkKeys, state: "in_progress", revisionsUsed: 2, sf: autoRules}, since)
		if e.Order.Scope != "three logos" || e.Order.Brief != "with a hat ✓" ||
			!parseTime(t, "deadline", e.Order.Deadline).Equal(dl) {
			t.Errorf("scope_change order: scope %q brief %q deadline %s; want the update",
				e.Order.Scope, e.Order.Brief, e.Order.Deadline)
		}
		if e.Order.Gig != "logo design" || e.Order.Price != 1200 || e.Order.Tier != "basic" {
			t.Errorf("scope_change changed what it was not asked to: %+v", e.Order)
		}
		o := s.getOrder(t, oid)
		if n := len(o.History); n == 0 || o.History[n-1].By != "owner" ||
			o.History[n-1].From != "in_progress" || o.History[n-1].To != "in_progress" {
			t.Errorf("scope change not in the history as in_progress->in_progress by owner: "+
				"%+v", o.History)
		}
		s.expectEmptyPoll(t, auto.key)
	})
	t.Run("approval window passes: owner_denied_order approval_timeout", func(t *testing.T) {
		var evs []eventJSON
		for end := time.Now().Add(10 * time.Second); len(evs) == 0; {
			if time.Now().After(end) {
				t.Fatalf("no owner_denied_order within 10 s of a 2 s approval window; order "+
					"is %s", s.getOrder(t, mTimeout).State)
			}
			time.Sleep(100 * time.Millisecond)
			evs = s.poll(t, man.key)
		}
		if len(evs) != 1 {
			t.Fatalf("%d events, want one owner_denied_order: %+v", len(evs), evs)
		}
		lcCheckEvent(t, man.id, evs[0], lcWant{seq: 6, kind: "owner_denied_order",
			orderID: mTimeout, keys: lcDeniedKeys, state: "denied",
			reason: "approval_timeout"}, since)
		o := s.getOrder(t, mTimeout)
		if o.State != "denied" || o.Refund == nil || o.Refund.Reason != "approval_timeout" {
			t.Errorf("timed-out order: state %s refund %+v, want denied, approval_timeout",
				o.State, o.Refund)
		}
		checkHistory(t, o, []transitionJSON{
			{To: "awaiting_approval", By: "customer"},
			{From: "awaiting_approval", To: "denied", By: "system"},
		})
		expectError(t, s, s.admin(t, "POST", "/admin/orders/"+mTimeout+"/approve", nil), 409,
			"invalid_state")
	})
}

// ---- 2. revisions beyond the cap go to the owner ----

func TestE2ERevisionsBeyondCap(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	s := startServer(t, "")
	since := time.Now().Add(-time.Second)
	c := s.newAgent(t, map[string]any{"revision_cap": 1})
	rules := lcRules(t, s, c)
	oid := s.placeOrder(t, c.id, nil)
	lcPollN(t, s, c, 1)
	deliver := func(text string, n int) {
		t.Helper()
		r := s.agent(t, "POST", "/orders/"+oid+"/deliver", c.key, map[string]any{"text": text})
		if d := expectJSON[deliverReplyJSON](t, r, 201); d.Delivery != n ||
			d.State != "delivered" {
			t.Fatalf("%s: want delivery %d, delivered", r, n)
		}
	}
	owner := func(action, state string, body any) {
		t.Helper()
		r := s.admin(t, "POST", "/admin/orders/"+oid+"/"+action, body)
		if got := expectJSON[orderReplyJSON](t, r, 200); got != (orderReplyJSON{oid, state}) {
			t.Fatalf("%s: want %s", r, state)
		}
	}

	deliver("v1", 1)
	owner("revision", "in_progress", map[string]any{"note": "first"})
	lcCheckEvent(t, c.id, lcPollN(t, s, c, 1)[0], lcWant{seq: 2, kind: "revision_request",
		orderID: oid, keys: lcRevisionKeys, state: "in_progress", revisionsUsed: 1,
		note: "first", revision: 1, sf: rules}, since)
	deliver("v2", 2)

	owner("revision", "revision_review", map[string]any{"note": "second"})
	s.expectEmptyPoll(t, c.key) // beyond the cap: the owner decides first, the agent hears nothing
	if o := s.getOrder(t, oid); o.State != "revision_review" || o.RevisionsUsed != 1 {
		t.Errorf("beyond the cap: state %s revisions_used %d, want revision_review, 1",
			o.State, o.RevisionsUsed)
	}
	expectError(t, s, s.agent(t, "POST", "/orders/"+oid+"/deliver", c.key,
		map[string]any{"text": "early"}), 409, "invalid_state")
	owner("approve", "in_progress", nil)
	e := lcPollN(t, s, c, 1)[0]
	lcCheckEvent(t, c.id, e, lcWant{seq: 3, kind: "revision_request", orderID: oid,
		keys: lcRevisionKeys, state: "in_progress", revisionsUsed: 2, note: "second",
		revision: 2, sf: rules}, since)
	if e.Order.RevisionsAllowed != 1 {
		t.Errorf("revisions_allowed %d, want 1", e.Order.RevisionsAllowed)
	}
	deliver("v3", 3)

	owner("revision", "revision_review", map[string]any{"note": "third"})
	owner("deny", "delivered", map[string]any{"reason": "enough"})
	s.expectEmptyPoll(t, c.key)

	o := s.getOrder(t, oid)
	if o.State != "delivered" || len(o.Deliveries) != 3 || o.RevisionsUsed != 2 {
		t.Errorf("final order: state %s, %d deliveries, revisions_used %d; want delivered, 3, 2",
			o.State, len(o.Deliveries), o.RevisionsUsed)
	}
	checkHistory(t, o, []transitionJSON{
		{To: "in_progress", By: "customer"},
		{From: "in_progress", To: "delivered", By: "agent"},
		{From: "delivered", To: "in_progress", By: "customer"},
		{From: "in_progress", To: "delivered", By: "agent"},
		{From: "delivered", To: "revision_review", By: "customer"},
		{From: "revision_review", To: "in_progress", By: "owner"},
		{From: "in_progress", To: "delivered", By: "agent"},
		{From: "delivered", To: "revision_review", By: "customer"},
		{From: "revision_review", To: "delivered", By: "owner"},
	})
	for i := 1; i < len(o.History); i++ {
		if parseTime(t, "at", o.History[i].At).Before(parseTime(t, "at", o.History[i-1].At)) {
			t.Errorf("history[%d] is older than history[%d]: %+v", i, i-1, o.History)
		}
	}
	// the owner's answer is final for that request: a new one may follow
	owner("release", "released", nil)
}

// ---- 3. missed deadlines, with the server up and with it down ----

func TestE2EMissedDeadline(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	dir := t.TempDir()
	s1 := startServer(t, dir)
	c := s1.newAgent(t, nil)
	// Deadlines are whole seconds: the first is 1.5 to 2.5 s ahead, the second 2 s later.
	now := time.Now()
	runDL := now.Add(2500 * time.Millisecond).UTC().Truncate(time.Second)
	downDL := runDL.Add(2 * time.Second)
	oRun := s1.placeOrder(t, c.id, map[string]any{"deadline": runDL.Format(time.RFC3339)})
	oDone := s1.placeOrder(t, c.id, map[string]any{"deadline": runDL.Format(time.RFC3339)})
	oDown := s1.placeOrder(t, c.id, map[string]any{"deadline": downDL.Format(time.RFC3339)})
	mustStatus(t, s1.agent(t, "POST", "/orders/"+oDone+"/deliver", c.key,
		map[string]any{"text": "on time"}), 201)

	checkRefund := func(t *testing.T, o orderJSON, dl time.Time) {
		t.Helper()
		if o.Refund == nil || o.Refund.Reason != "missed_deadline" {
			t.Errorf("order %s: refund %+v, want reason missed_deadline", o.ID, o.Refund)
		} else if at := parseTime(t, "refund at", o.Refund.At); at.Before(dl) {
			t.Errorf("order %s refunded at %s, before its deadline %s", o.ID, at, dl)
		}
		checkHistory(t, o, []transitionJSON{
			{To: "in_progress", By: "customer"},
			{From: "in_progress", To: "refunded", By: "system"},
		})
		if n := len(o.History); n > 0 && o.History[n-1].Reason != "missed_deadline" {
			t.Errorf("order %s: last history reason %q, want missed_deadline", o.ID,
				o.History[n-1].Reason)
		}
	}

	t.Run("while running, without a poll", func(t *testing.T) {
		o := waitOrderState(t, s1, oRun, "refunded", 10*time.Second)
		checkRefund(t, o, runDL)
		msg := expectError(t, s1, s1.agent(t, "POST", "/orders/"+oRun+"/deliver", c.key,
			map[string]any{"text": "late"}), 409, "invalid_state")
		if !strings.Contains(msg, "refunded") {
			t.Errorf("invalid_state message %q does not name refunded", msg)
		}
		if o := s1.getOrder(t, oRun); len(o.Deliveries) != 0 {
			t.Errorf("a late delivery was stored: %+v", o.Deliveries)
		}
	})
	if st := s1.getOrder(t, oDown).State; st != "in_progress" || !time.Now().Before(downDL) {
		t.Fatalf("order %s is %s at %s, before its deadline %s: the test is too slow to "+
			"stop the server first", oDown, st, time.Now().UTC(), downDL)
	}
	s1.stop(t)
	time.Sleep(time.Until(downDL.Add(300 * time.Millisecond)))

	s2 := startServer(t, dir)
	for _, sec := range s1.knownSecrets()[1:] {
		s2.noteSecret(sec)
	}
	t.Run("deadline passed while down: refunded right after start", func(t *testing.T) {
		o := waitOrderState(t, s2, oDown, "refunded", 3*time.Second)
		checkRefund(t, o, downDL)
		expectError(t, s2, s2.agent(t, "POST", "/orders/"+oDown+"/deliver", c.key,
			map[string]any{"text": "after restart"}), 409, "invalid_state")
	})
	t.Run("a delivered order's deadline no longer applies", func(t *testing.T) {
		if o := s2.getOrder(t, oDone); o.State != "delivered" || o.Refund != nil {
			t.Errorf("delivered order after its deadline: state %s refund %+v", o.State,
				o.Refund)
		}
		if a := s2.getAgent(t, c.id); a.Orders["refunded"] != 2 || a.Orders["delivered"] != 1 {
			t.Errorf("agent order counts %v, want 2 refunded and 1 delivered", a.Orders)
		}
	})
}

// ---- 4. idempotent retries across a crash ----

// lcSend posts body to path with the agent's key and an Idempotency-Key.
func lcSend(t testing.TB, s *e2eServer, key, idem, path, ctype string, body []byte) *response {
	t.Helper()
	return s.do(t, "POST", s.agentURL+path, map[string]string{
		"Authorization": "Bearer " + key, "Content-Type": ctype, "Idempotency-Key": idem,
	}, body)
}

func TestE2EIdempotencyAcrossRestart(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	dir := t.TempDir()
	s1 := startServer(t, dir)
	c := s1.newAgent(t, nil)
	var oids []string
	for i := 0; i < 4; i++ {
		oids = append(oids, s1.placeOrder(t, c.id, nil))
	}
	oDeliver, oDecline, oFlag, oProgress := oids[0], oids[1], oids[2], oids[3]
	file := binaryBlob(20 << 10)
	delivery := func(text string) (string, []byte) {
		return multipartBody(t, []mpPart{
			{field: "text", data: []byte(text)},
			{field: "urls", data: []byte("https://example.com/a")},
			{field: "file", filename: "work.bin", ctype: "application/octet-stream",
				data: file},
		})
	}
	const js = "application/json"
	type call struct {
		name, idem, path, ctype string
		body, other             func() []byte // the request, and a different one
		status                  int
	}
	calls := []call{
		{"deliver", "k1", "/orders/" + oDeliver + "/deliver", "",
			func() []byte { _, b := delivery("the work"); return b },
			func() []byte { _, b := delivery("other work"); return b }, 201},
		{"decline", "k2", "/orders/" + oDecline + "/decline", js,
			func() []byte { return []byte(`{"reason":"capacity","message":"too busy"}`) },
			func() []byte { return []byte(`{"reason":"capacity","message":"busier"}`) }, 200},
		{"flag", "k3", "/orders/" + oFlag + "/flag", js,
			func() []byte { return []byte(`{"reason":"other","message":"odd"}`) },
			func() []byte { return []byte(`{"reason":"other","message":"odder"}`) }, 200},
		{"progress", "k4", "/status", js,
			func() []byte { return []byte(`{"order_id":"` + oProgress + `","progress":40}`) },
			func() []byte { return []byte(`{"order_id":"` + oProgress + `","progress":41}`) },
			200},
	}
	send := func(s *e2eServer, cl call, body []byte) *response {
		ct := cl.ctype
		if ct == "" {
			ct = withBoundary(body) // multipartBody picks a new random boundary each time
		}
		return lcSend(t, s, c.key, cl.idem, cl.path, ct, body)
	}
	first := map[string]*response{}
	for _, cl := range calls {
		r := send(s1, cl, cl.body())
		mustStatus(t, r, cl.status)
		first[cl.name] = r
	}
	s1.kill9(t)
	s2 := startServer(t, dir)
	for _, sec := range s1.knownSecrets()[1:] {
		s2.noteSecret(sec)
	}

	for _, cl := range calls {
		t.Run(cl.name, func(t *testing.T) {
			b1, b2 := cl.body(), cl.body()
			if cl.ctype == "" && bytes.Equal(b1, b2) {
				t.Fatalf("two multipart bodies with the same boundary")
			}
			for i, b := range [][]byte{b1, b2} {
				r := send(s2, cl, b)
				if r.status != first[cl.name].status || !bytes.Equal(r.body, first[cl.name].body) {
					t.Errorf("retry %d after kill -9: %s\nwant the first answer %s", i+1, r,
						first[cl.name])
				}
			}
			expectError(t, s2, send(s2, cl, cl.other()), 422, "idempotency_key_reused")
		})
	}
	t.Run("a key is the agent's, whatever the route", func(t *testing.T) {
		r := lcSend(t, s2, c.key, "k2", "/orders/"+oFlag+"/flag", js,
			[]byte(`{"reason":"other","message":"too busy"}`))
		expectError(t, s2, r, 422, "idempotency_key_reused")
	})
	t.Run("exactly one effect each", func(t *testing.T) {
		o := s2.getOrder(t, oDeliver)
		if o.State != "delivered" || len(o.Deliveries) != 1 || o.Deliveries[0].Text !=
			"the work" || len(o.Deliveries[0].Files) != 1 ||
			o.Deliveries[0].Files[0].SHA256 != sha256Hex(file) {
			t.Errorf("delivered order: state %s deliveries %+v, want exactly the first",
				o.State, o.Deliveries)
		}
		for id, want := range map[string]string{oDecline: "declined", oFlag: "flagged"} {
			o := s2.getOrder(t, id)
			if o.State != want || len(o.History) != 2 {
				t.Errorf("order %s: state %s, %d history entries; want %s and 2", id, o.State,
					len(o.History), want)
			}
		}
		if o := s2.getOrder(t, oDecline); o.Decline == nil || o.Decline.Message != "too busy" {
			t.Errorf("decline note %+v, want the first request's", o.Decline)
		}
		if o := s2.getOrder(t, oFlag); o.Flag == nil || o.Flag.Message != "odd" {
			t.Errorf("flag note %+v, want the first request's", o.Flag)
		}
		if o := s2.getOrder(t, oProgress); o.Progress == nil || o.Progress.Percent != 40 {
			t.Errorf("progress %+v, want 40 from the first request", o.Progress)
		}
	})
	t.Run("a new key is a new request", func(t *testing.T) {
		r := lcSend(t, s2, c.key, "k5", "/status", js,
			[]byte(`{"order_id":"`+oProgress+`","progress":41}`))
		mustStatus(t, r, 200)
		if o := s2.getOrder(t, oProgress); o.Progress == nil || o.Progress.Percent != 41 {
			t.Errorf("progress %+v, want 41", o.Progress)
		}
	})
}

// ---- 5. request limits ----

func TestE2ELimits(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	s := startServer(t, "", "--max-files", "2", "--max-file-bytes", "100",
		"--max-text-bytes", "50", "--max-urls", "2", "--max-url-bytes", "40",
		"--max-body-bytes", "4096")
	c := s.newAgent(t, nil)
	oid := s.placeOrder(t, c.id, nil)
	okURL := "https://example.com/" + strings.Repeat("a", 20) // 40 bytes
	longURL := okURL + "b"
	file := func(name string, n int) mpPart {
		return mpPart{field: "file", filename: name, data: binaryBlob(n)}
	}
	mp := func(parts ...mpPart) (string, []byte) { return multipartBody(t, parts) }
	jsonBody := func(v any) (string, []byte) {
		return "application/json", encodeBody(t, v)
	}
	deliverPath := "/orders/" + oid + "/deliver"
	type tc struct {
		name, path  string
		ctype       string
		body        []byte
		flag, value string
	}
	var cases []tc
	add := func(name, path, flag, value string, ct string, body []byte) {
		cases = append(cases, tc{name, path, ct, body, flag, value})
	}
	ct, b := mp(file("a", 10), file("b", 10), file("c", 10))
	add("three files", deliverPath, "--max-files", "2", ct, b)
	ct, b = mp(file("big", 101))
	add("a 101-byte file", deliverPath, "--max-file-bytes", "100", ct, b)
	ct, b = jsonBody(map[string]any{"text": strings.Repeat("t", 51)})
	add("JSON text of 51 bytes", deliverPath, "--max-text-bytes", "50", ct, b)
	ct, b = mp(mpPart{field: "text", data: bytes.Repeat([]byte("t"), 51)})
	add("multipart text of 51 bytes", deliverPath, "--max-text-bytes", "50", ct, b)
	ct, b = jsonBody(map[string]any{"urls": []string{okURL, okURL, okURL}})
	add("JSON with three URLs", deliverPath, "--max-urls", "2", ct, b)
	ct, b = mp(mpPart{field: "urls", data: []byte(okURL)}, mpPart{field: "urls",
		data: []byte(okURL)}, mpPart{field: "urls", data: []byte(okURL)})
	add("multipart with three URLs", deliverPath, "--max-urls", "2", ct, b)
	ct, b = jsonBody(map[string]any{"urls": []string{longURL}})
	add("JSON URL of 41 bytes", deliverPath, "--max-url-bytes", "40", ct, b)
	ct, b = mp(mpPart{field: "urls", data: []byte(longURL)})
	add("multipart URL of 41 bytes", deliverPath, "--max-url-bytes", "40", ct, b)
	ct, b = jsonBody(map[string]any{"text": strings.Repeat("x", 5000)})
	add("JSON body of 5 kB", deliverPath, "--max-body-bytes", "4096", ct, b)
	ct, b = mp(file("a", 100), file("b", 100), mpPart{field: "pad",
		data: bytes.Repeat([]byte("p"), 4000)})
	add("multipart body of 4.3 kB", deliverPath, "--max-body-bytes", "4096", ct, b)
	ct, b = jsonBody(map[string]any{"reason": "other", "message": strings.Repeat("m", 51)})
	add("decline message", "/orders/"+oid+"/decline", "--max-text-bytes", "50", ct, b)
	add("flag message", "/orders/"+oid+"/flag", "--max-text-bytes", "50", ct, b)
	ct, b = jsonBody(map[string]any{"order_id": oid, "progress": 5,
		"message": strings.Repeat("m", 51)})
	add("progress message", "/status", "--max-text-bytes", "50", ct, b)

	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			r := s.do(t, "POST", s.agentURL+k.path, map[string]string{
				"Authorization": "Bearer " + c.key, "Content-Type": k.ctype}, k.body)
			msg := expectError(t, s, r, 413, "payload_too_large")
			if !strings.Contains(msg, k.flag) || !strings.Contains(msg, k.value) {
				t.Errorf("413 message %q does not name the flag %s and its value %s", msg,
					k.flag, k.value)
			}
		})
	}
	t.Run("order brief over the text limit", func(t *testing.T) {
		r := s.admin(t, "POST", "/admin/orders", orderBody(c.id, map[string]any{
			"brief": strings.Repeat("b", 51)}))
		msg := expectError(t, s, r, 413, "payload_too_large")
		if !strings.Contains(msg, "--max-text-bytes") || !strings.Contains(msg, "50") {
			t.Errorf("413 message %q does not name --max-text-bytes and 50", msg)
		}
	})
	t.Run("refused requests changed nothing", func(t *testing.T) {
		o := s.getOrder(t, oid)
		if o.State != "in_progress" || len(o.Deliveries) != 0 || o.Progress != nil {
			t.Errorf("order after refused requests: %+v", o)
		}
	})
	t.Run("skill.json shows the limits", func(t *testing.T) {
		r := s.agent(t, "GET", "/agents/"+c.id+"/skill/skill.json", c.key, nil)
		idx := expectJSON[skillIndexJSON](t, r, 200)
		want := map[string]float64{"max_body_bytes": 4096, "max_file_bytes": 100,
			"max_text_bytes": 50, "max_files": 2, "max_urls": 2, "max_url_bytes": 40}
		if len(idx.Limits) != len(want) {
			t.Errorf("limits %v, want exactly %v", idx.Limits, want)
		}
		for k, v := range want {
			if got, ok := idx.Limits[k].(float64); !ok || got != v {
				t.Errorf("limits[%s] = %v, want %v", k, idx.Limits[k], v)
			}
		}
	})
	t.Run("exactly at every limit is accepted", func(t *testing.T) {
		ct, b := mp(mpPart{field: "text", data: bytes.Repeat([]byte("t"), 50)},
			mpPart{field: "urls", data: []byte(okURL)}, mpPart{field: "urls",
				data: []byte(okURL)}, file("a", 100), file("b", 100))
		if len(b) > 4096 {
			t.Fatalf("test body is %d bytes, over the body limit", len(b))
		}
		r := s.deliverRaw(t, "", c.key, oid, ct, b)
		if d := expectJSON[deliverReplyJSON](t, r, 201); d.Delivery != 1 {
			t.Errorf("%s", r)
		}
		o := s.getOrder(t, oid)
		if len(o.Deliveries) != 1 || len(o.Deliveries[0].Files) != 2 ||
			len(o.Deliveries[0].URLs) != 2 || len(o.Deliveries[0].Text) != 50 {
			t.Errorf("delivery at the limits: %+v", o.Deliveries)
		}
	})
}

// ---- 6. the request budget: 429 and Retry-After ----

// lcMetric sums every sample of a metric family (any labels) on /metrics.
func lcMetric(t testing.TB, s *e2eServer, name string) float64 {
	t.Helper()
	r := s.do(t, "GET", s.opsURL+"/metrics", nil, nil)
	if r.status != 200 {
		t.Fatalf("%s", r)
	}
	sum, found := 0.0, false
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)`)
	for sc.Scan() {
		m := re.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil || math.IsNaN(v) {
			t.Errorf("metric line %q: bad value", sc.Text())
			continue
		}
		sum, found = sum+v, true
	}
	if !found {
		t.Errorf("/metrics has no %s series", name)
	}
	return sum
}

func TestE2ERateLimited(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	s := startServer(t, "", "--agent-rate", "1", "--agent-burst", "3")
	c := s.newAgent(t, nil) // registering does not draw on the budget
	if v := lcMetric(t, s, "heepr_rate_limited_total"); v != 0 {
		t.Errorf("heepr_rate_limited_total %v before any request, want 0", v)
	}
	start := time.Now()
	ok := 0
	var limited *response
	for i := 0; i < 8 && limited == nil; i++ {
		r := s.agent(t, "GET", "/events", c.key, nil)
		if r.status == 200 {
			ok++
		} else {
			limited = r
		}
	}
	// At 1 request per second a slow machine may refill one token per second spent.
	if allowed := 3 + int(time.Since(start)/time.Second); limited == nil || ok < 3 ||
		ok > allowed {
		t.Fatalf("%d polls passed before a refusal (%v); want the burst of 3", ok, limited)
	}
	expectError(t, s, limited, 429, "rate_limited")
	ra := limited.header.Get("Retry-After")
	secs, err := strconv.Atoi(ra)
	if err != nil || secs < 1 {
		t.Fatalf("Retry-After %q, want an integer number of seconds >= 1", ra)
	}
	if secs > 5 {
		t.Errorf("Retry-After %d s for a budget of 1 request per second", secs)
	}
	if v := lcMetric(t, s, "heepr_rate_limited_total"); v < 1 {
		t.Errorf("heepr_rate_limited_total = %v after a 429, want > 0", v)
	}
	// A refused poll is the agent's own pace: it must not look like the server failing.
	if v := lcMetric(t, s, `heepr_polls_total{outcome="rate_limited"}`); v < 1 {
		t.Errorf(`heepr_polls_total{outcome="rate_limited"} = %v after a 429, want > 0`, v)
	}
	if v := lcMetric(t, s, `heepr_polls_total{outcome="unavailable"}`); v != 0 {
		t.Errorf(`heepr_polls_total{outcome="unavailable"} = %v, want 0`, v)
	}
	time.Sleep(time.Duration(secs) * time.Second)
	if r := s.agent(t, "GET", "/events", c.key, nil); r.status != 200 {
		t.Errorf("poll after waiting Retry-After (%d s): %s, want 200", secs, r)
	}

	// API.md tells the agent this server's budget, not the default one.
	time.Sleep(time.Duration(secs) * time.Second)
	r := s.agent(t, "GET", "/agents/"+c.id+"/skill/API.md", c.key, nil)
	want := "allows **1 request per second** sustained and bursts of up to **3**."
	if r.status != 200 || !strings.Contains(string(r.body), want) {
		t.Errorf("API.md: %d, lacks %q", r.status, want)
	}
}
