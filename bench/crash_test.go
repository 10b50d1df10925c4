package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// A fabricated agent with one order, for the verifier's table tests.
const (
	tAgent  = "agt_t"
	tOrder  = "ord_t_1"
	tKey    = "sk_live_agt_t_k1"
	tKey2   = "sk_live_agt_t_k2"
	tToken  = "bs_agt_t_b1"
	tToken2 = "bs_agt_t_b2"
)

var (
	terms0 = orderTerms{Scope: "s0", Brief: "b0", Deadline: "2099-01-01T00:00:00Z"}
	terms1 = orderTerms{Scope: "s1", Brief: "b1", Deadline: "2099-02-01T00:00:00Z"}
)

// fabLedger builds a ledger in order of issue.
type fabLedger struct{ entries []*entry }

func (l *fabLedger) add(e *entry) *entry {
	e.Seq = int64(len(l.entries) + 1)
	if e.Agent == "" {
		e.Agent = tAgent
	}
	l.entries = append(l.entries, e)
	return e
}

// on records a write on the order: acked with the answered state, refused with a code, or in
// doubt. Agent API writes carry the first key.
func (l *fabLedger) on(kind opKind, out outcome, stateOrCode string) *entry {
	e := &entry{Kind: kind, Order: tOrder, Outcome: out}
	switch out {
	case outAcked:
		e.State, e.AnswerOrder = stateOrCode, tOrder
	case outRefused:
		e.Code = stateOrCode
	}
	switch kind {
	case opDeliverJSON, opDeliverFiles, opDecline, opFlag, opProgress:
		e.Key = tKey
	}
	return l.add(e)
}

// deliver records a delivery of d with the answered number n (0 when not acked).
func (l *fabLedger) deliver(out outcome, n int, d *deliveryContent) *entry {
	e := l.on(opDeliverFiles, out, stDelivered)
	if out != outAcked {
		e.State = ""
	}
	e.DeliveryN, e.Delivery = n, d
	return e
}

func (l *fabLedger) progress(out outcome, p int) *entry {
	e := l.on(opProgress, out, stInProgress)
	if out != outAcked {
		e.State = ""
	}
	e.Progress, e.AnswerProgress = p, p
	return e
}

func (l *fabLedger) agentOp(kind opKind, out outcome) *entry {
	e := &entry{Kind: kind, Outcome: out}
	if kind == opAgentStatus || kind == opPoll {
		e.Key = tKey
	}
	return l.add(e)
}

func (l *fabLedger) poll(out outcome, events ...seenEvent) *entry {
	e := l.agentOp(opPoll, out)
	e.Events = events
	return e
}

// baseLedger: an agent created and registered, one order placed, its new_order polled.
func baseLedger(manual bool, revisionCap int) *fabLedger {
	l := &fabLedger{}
	l.add(&entry{Kind: opCreateAgent, Outcome: outAcked, Token: tToken, Manual: manual,
		RevisionCap: revisionCap})
	l.add(&entry{Kind: opRegister, Outcome: outAcked, Token: tToken, IssuedKey: tKey})
	state := stInProgress
	if manual {
		state = stAwaiting
	}
	l.add(&entry{Kind: opPlace, Order: tOrder, Outcome: outAcked, State: state,
		AnswerOrder: tOrder, Terms: &terms0})
	l.poll(outAcked, seenEvent{ID: "evt_t_1", Kind: evNewOrder, OrderID: tOrder})
	return l
}

// baseObs is the server state baseLedger leaves.
func baseObs(state string) *observation {
	return &observation{
		Agents: map[string]*obsAgent{tAgent: {Found: true, Status: agentActive,
			KeyState: "active", OrderCount: 1}},
		Orders: map[string]*obsOrder{tOrder: {Found: true, State: state, Terms: terms0}},
		Files:  map[fileRef]*obsFile{},
		Keys:   map[string]*obsKey{tKey: {Agent: tAgent, Code: authOK}},
	}
}

func fileDelivery(tag string) *deliveryContent {
	return &deliveryContent{Text: "text " + tag, URLs: []string{"https://example.com/" + tag},
		Files: []deliveredFile{newDeliveredFile("work "+tag+".bin", []byte("a\x00b\x00"+tag))}}
}

// shows adds delivery n of d to the observed order, with its file bytes.
func shows(obs *observation, n int, d *deliveryContent) {
	o := obs.Orders[tOrder]
	od := obsDelivery{N: n, Text: d.Text, URLs: d.URLs}
	for _, f := range d.Files {
		od.Files = append(od.Files, obsFileMeta{Name: f.Name, Size: int64(len(f.Data)),
			SHA256: f.SHA256})
		obs.Files[fileRef{Order: tOrder, N: n, Name: f.Name}] = &obsFile{Found: true,
			Data: bytes.Clone(f.Data), HeaderSHA: f.SHA256}
	}
	o.Deliveries = append(o.Deliveries, od)
}

func intp(v int) *int { return &v }

func TestVerify(t *testing.T) {
	d1, d2 := fileDelivery("1"), fileDelivery("2")
	rotate := func(l *fabLedger) { // the key revoked and a new one registered
		l.agentOp(opRevokeKey, outAcked)
		l.agentOp(opMintBootstrap, outAcked).Token = tToken2
		e := l.agentOp(opRegister, outAcked)
		e.Token, e.IssuedKey = tToken2, tKey2
	}
	tests := []struct {
		name       string
		manual     bool
		cap        int
		ledger     func(l *fabLedger)
		state      string // the observed order state
		obs        func(o *observation)
		violations []string // the checks that must fail, sorted; nil: none
	}{
		{name: "placed and polled", state: stInProgress},
		{name: "acknowledged delivery present", state: stDelivered,
			ledger: func(l *fabLedger) { l.deliver(outAcked, 1, d1) },
			obs:    func(o *observation) { shows(o, 1, d1) }},
		{name: "acknowledged delivery lost", state: stInProgress,
			ledger:     func(l *fabLedger) { l.deliver(outAcked, 1, d1) },
			violations: []string{"delivery_missing", "order_state"}},
		{name: "delivery in doubt absent", state: stInProgress,
			ledger: func(l *fabLedger) { l.deliver(outInDoubt, 0, d1) }},
		{name: "delivery in doubt present", state: stDelivered,
			ledger: func(l *fabLedger) { l.deliver(outInDoubt, 0, d1) },
			obs:    func(o *observation) { shows(o, 1, d1) }},
		{name: "delivery nobody sent", state: stDelivered,
			ledger:     func(l *fabLedger) { l.deliver(outInDoubt, 0, d1) },
			obs:        func(o *observation) { shows(o, 1, d2) },
			violations: []string{"delivery_unexpected"}},
		{name: "file bytes differ", state: stDelivered,
			ledger: func(l *fabLedger) { l.deliver(outAcked, 1, d1) },
			obs: func(o *observation) {
				shows(o, 1, d1)
				f := o.Files[fileRef{Order: tOrder, N: 1, Name: d1.Files[0].Name}]
				f.Data[1] = 'X'
			},
			violations: []string{"delivery_content"}},
		{name: "file gone", state: stDelivered,
			ledger: func(l *fabLedger) { l.deliver(outAcked, 1, d1) },
			obs: func(o *observation) {
				shows(o, 1, d1)
				o.Files[fileRef{Order: tOrder, N: 1, Name: d1.Files[0].Name}] = &obsFile{}
			},
			violations: []string{"delivery_content"}},
		{name: "second delivery after a revision", cap: 1, state: stDelivered,
			ledger: func(l *fabLedger) {
				l.deliver(outAcked, 1, d1)
				l.on(opRevision, outAcked, stInProgress)
				l.deliver(outAcked, 2, d2)
				l.poll(outAcked, seenEvent{ID: "evt_t_2", Kind: evRevision, OrderID: tOrder,
					Revision: 1})
			},
			obs: func(o *observation) {
				shows(o, 1, d1)
				shows(o, 2, d2)
				o.Orders[tOrder].RevisionsUsed = 1
			}},
		{name: "delivery number reused", cap: 1, state: stDelivered,
			ledger: func(l *fabLedger) {
				l.deliver(outAcked, 1, d1)
				l.on(opRevision, outAcked, stInProgress)
				l.deliver(outAcked, 1, d2)
				l.poll(outAcked, seenEvent{ID: "evt_t_2", Kind: evRevision, OrderID: tOrder})
			},
			obs: func(o *observation) {
				shows(o, 1, d2)
				o.Orders[tOrder].RevisionsUsed = 1
			},
			violations: []string{"acked_transition", "delivery_content"}},
		{name: "progress kept", state: stInProgress,
			ledger: func(l *fabLedger) { l.progress(outAcked, 40) },
			obs:    func(o *observation) { o.Orders[tOrder].Progress = intp(40) }},
		{name: "progress lost", state: stInProgress,
			ledger:     func(l *fabLedger) { l.progress(outAcked, 40) },
			violations: []string{"order_state"}},
		{name: "progress changed by a write in doubt", state: stInProgress,
			ledger: func(l *fabLedger) {
				l.progress(outAcked, 40)
				l.progress(outInDoubt, 70)
			},
			obs: func(o *observation) { o.Orders[tOrder].Progress = intp(70) }},
		{name: "progress cleared by a delivery", state: stDelivered,
			ledger: func(l *fabLedger) {
				l.progress(outAcked, 40)
				l.deliver(outAcked, 1, d1)
			},
			obs: func(o *observation) { shows(o, 1, d1) }},
		{name: "order missing", state: stInProgress,
			obs:        func(o *observation) { o.Orders[tOrder] = &obsOrder{} },
			violations: []string{"order_missing"}},
		{name: "order count beyond placements", state: stInProgress,
			obs:        func(o *observation) { o.Agents[tAgent].OrderCount = 2 },
			violations: []string{"order_count"}},
		{name: "placement in doubt may add an order", state: stInProgress,
			ledger: func(l *fabLedger) {
				l.add(&entry{Kind: opPlace, Outcome: outInDoubt, Terms: &terms1})
				l.poll(outAcked, seenEvent{ID: "evt_t_9", Kind: evNewOrder, OrderID: "ord_t_2"})
			},
			obs: func(o *observation) { o.Agents[tAgent].OrderCount = 2 }},
		{name: "event for an order never placed", state: stInProgress,
			ledger: func(l *fabLedger) {
				l.poll(outAcked, seenEvent{ID: "evt_t_9", Kind: evNewOrder, OrderID: "ord_t_2"})
			},
			violations: []string{"event_unknown_order"}},
		{name: "release after an impossible delivery", state: stReleased,
			ledger:     func(l *fabLedger) { l.on(opRelease, outAcked, stReleased) },
			violations: []string{"acked_transition"}},
		{name: "refusal the history allows", state: stInProgress,
			ledger:     func(l *fabLedger) { l.on(opDecline, outRefused, codeInvalid) },
			violations: []string{"refusal"}},
		{name: "refusal explained by a write in doubt", manual: true, state: stInProgress,
			ledger: func(l *fabLedger) {
				l.on(opApprove, outInDoubt, "")
				l.on(opDeny, outRefused, codeInvalid)
				l.poll(outAcked, seenEvent{ID: "evt_t_2", Kind: evApproved, OrderID: tOrder})
			}},
		{name: "404 on an acknowledged order", state: stInProgress,
			ledger:     func(l *fabLedger) { l.on(opFlag, outRefused, codeNotFound) },
			violations: []string{"order_lost"}},
		{name: "flag and unflag", state: stDelivered,
			ledger: func(l *fabLedger) {
				l.deliver(outAcked, 1, d1)
				l.on(opFlag, outAcked, stFlagged)
				l.on(opUnflag, outAcked, stDelivered)
			},
			obs: func(o *observation) { shows(o, 1, d1) }},
		{name: "unflag lost", state: stFlagged,
			ledger: func(l *fabLedger) {
				l.on(opFlag, outAcked, stFlagged)
				l.on(opUnflag, outAcked, stInProgress)
			},
			obs:        func(o *observation) { o.Orders[tOrder].FlaggedFrom = stInProgress },
			violations: []string{"order_state"}},
		{name: "revision beyond the cap, then approved", cap: 0, state: stInProgress,
			ledger: func(l *fabLedger) {
				l.deliver(outAcked, 1, d1)
				l.on(opRevision, outAcked, stRevisionReview)
				l.on(opApprove, outAcked, stInProgress)
				l.poll(outAcked, seenEvent{ID: "evt_t_2", Kind: evRevision, OrderID: tOrder,
					Revision: 1})
			},
			obs: func(o *observation) {
				shows(o, 1, d1)
				o.Orders[tOrder].RevisionsUsed = 1
			}},
		{name: "revision event lost", cap: 1, state: stInProgress,
			ledger: func(l *fabLedger) {
				l.deliver(outAcked, 1, d1)
				l.on(opRevision, outAcked, stInProgress)
			},
			obs: func(o *observation) {
				shows(o, 1, d1)
				o.Orders[tOrder].RevisionsUsed = 1
			},
			violations: []string{"event_lost"}},
		{name: "event lost to a poll in doubt", cap: 1, state: stInProgress,
			ledger: func(l *fabLedger) {
				l.deliver(outAcked, 1, d1)
				l.on(opRevision, outAcked, stInProgress)
				l.poll(outInDoubt)
			},
			obs: func(o *observation) {
				shows(o, 1, d1)
				o.Orders[tOrder].RevisionsUsed = 1
			}},
		{name: "event still queued at the end", state: stInProgress,
			ledger: func(l *fabLedger) {
				l.add(&entry{Kind: opScope, Order: tOrder, Outcome: outAcked,
					State: stInProgress, Terms: &terms1})
			},
			obs: func(o *observation) {
				o.Orders[tOrder].Terms = terms1
				o.Keys[tKey].Events = []seenEvent{{ID: "evt_t_2", Kind: evScopeChange,
					OrderID: tOrder}}
			}},
		{name: "scope change lost", state: stInProgress,
			ledger: func(l *fabLedger) {
				l.add(&entry{Kind: opScope, Order: tOrder, Outcome: outAcked,
					State: stInProgress, Terms: &terms1})
				l.poll(outAcked, seenEvent{ID: "evt_t_2", Kind: evScopeChange, OrderID: tOrder})
			},
			violations: []string{"order_state"}},
		{name: "event returned twice with one id", state: stInProgress,
			ledger: func(l *fabLedger) {
				l.poll(outAcked, seenEvent{ID: "evt_t_1", Kind: evNewOrder, OrderID: tOrder})
			}},
		{name: "event id reused for another event", state: stInProgress,
			ledger: func(l *fabLedger) {
				l.poll(outAcked, seenEvent{ID: "evt_t_1", Kind: evScopeChange, OrderID: tOrder})
			},
			violations: []string{"event_id"}},
		{name: "event repeated under a new id", state: stInProgress,
			ledger: func(l *fabLedger) {
				l.poll(outAcked, seenEvent{ID: "evt_t_7", Kind: evNewOrder, OrderID: tOrder})
			},
			violations: []string{"event_extra"}},
		{name: "manual placement answered in_progress", manual: true, state: stInProgress,
			ledger:     func(l *fabLedger) { l.entries[2].State = stInProgress },
			violations: []string{"placement"}},
		{name: "paused agent keeps its status", state: stInProgress,
			ledger: func(l *fabLedger) {
				e := l.agentOp(opAgentStatus, outAcked)
				e.Status, e.AnswerStatus = agentPaused, agentPaused
				l.add(&entry{Kind: opPlace, Outcome: outRefused, Code: codePaused, Terms: &terms1})
			},
			obs: func(o *observation) { o.Agents[tAgent].Status = agentPaused }},
		{name: "pause lost", state: stInProgress,
			ledger: func(l *fabLedger) {
				e := l.agentOp(opAgentStatus, outAcked)
				e.Status, e.AnswerStatus = agentPaused, agentPaused
			},
			violations: []string{"agent_status"}},
		{name: "order placed for a paused agent", state: stInProgress,
			ledger: func(l *fabLedger) {
				e := l.agentOp(opAgentStatus, outAcked)
				e.Status, e.AnswerStatus = agentPaused, agentPaused
				l.add(&entry{Kind: opPlace, Order: "ord_t_2", Outcome: outAcked,
					State: stInProgress, Terms: &terms1})
				l.poll(outAcked, seenEvent{ID: "evt_t_2", Kind: evNewOrder, OrderID: "ord_t_2"})
			},
			obs: func(o *observation) {
				o.Agents[tAgent].Status = agentPaused
				o.Agents[tAgent].OrderCount = 2
			},
			violations: []string{"agent_status"}},
		{name: "revoked key answers key_revoked", state: stInProgress,
			ledger: func(l *fabLedger) { l.agentOp(opRevokeKey, outAcked) },
			obs: func(o *observation) {
				o.Agents[tAgent].KeyState = "revoked"
				o.Keys[tKey] = &obsKey{Agent: tAgent, Code: codeKeyRevoked}
			}},
		{name: "revoked key still works", state: stInProgress,
			ledger:     func(l *fabLedger) { l.agentOp(opRevokeKey, outAcked) },
			violations: []string{"key", "key_state"}},
		{name: "revocation in doubt", state: stInProgress,
			ledger: func(l *fabLedger) { l.agentOp(opRevokeKey, outInDoubt) }},
		{name: "rotation", state: stInProgress,
			ledger: rotate,
			obs: func(o *observation) {
				o.Keys[tKey] = &obsKey{Agent: tAgent, Code: codeKeyRevoked}
				o.Keys[tKey2] = &obsKey{Agent: tAgent, Code: authOK}
			}},
		{name: "replaced key forgotten too soon", state: stInProgress,
			ledger: rotate,
			obs: func(o *observation) {
				o.Keys[tKey] = &obsKey{Agent: tAgent, Code: codeKeyUnknown}
				o.Keys[tKey2] = &obsKey{Agent: tAgent, Code: authOK}
			},
			violations: []string{"key"}},
		{name: "registration in doubt, then bootstrap_used", state: stInProgress,
			ledger: func(l *fabLedger) {
				l.agentOp(opRevokeKey, outAcked)
				l.agentOp(opMintBootstrap, outAcked).Token = tToken2
				l.agentOp(opRegister, outInDoubt).Token = tToken2
				e := l.agentOp(opRegister, outRefused)
				e.Token, e.Code = tToken2, codeBootUsed
			},
			obs: func(o *observation) { // replaced or not, the key was revoked
				o.Keys[tKey] = &obsKey{Agent: tAgent, Code: codeKeyRevoked}
			}},
		{name: "bootstrap_used without a registration", state: stInProgress,
			ledger: func(l *fabLedger) {
				l.agentOp(opRevokeKey, outAcked)
				l.agentOp(opMintBootstrap, outAcked).Token = tToken2
				e := l.agentOp(opRegister, outRefused)
				e.Token, e.Code = tToken2, codeBootUsed
			},
			obs: func(o *observation) {
				o.Agents[tAgent].KeyState = "revoked"
				o.Keys[tKey] = &obsKey{Agent: tAgent, Code: codeKeyRevoked}
			},
			violations: []string{"agent_history"}},
		{name: "key refused mid-run", state: stInProgress,
			ledger: func(l *fabLedger) {
				e := l.poll(outRefused)
				e.Code = codeKeyRevoked
			},
			violations: []string{"key"}},
		{name: "agent missing", state: stInProgress,
			obs:        func(o *observation) { o.Agents[tAgent] = &obsAgent{} },
			violations: []string{"agent_missing"}},
		{name: "undecodable answer", state: stInProgress,
			ledger:     func(l *fabLedger) { l.progress(outAcked, 10).Bad = "garbage" },
			violations: []string{"answer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := baseLedger(tt.manual, tt.cap)
			if tt.ledger != nil {
				tt.ledger(l)
			}
			obs := baseObs(tt.state)
			obs.Agents[tAgent].Manual, obs.Agents[tAgent].RevisionCap = tt.manual, tt.cap
			if tt.obs != nil {
				tt.obs(obs)
			}
			v := verify(l.entries, obs)
			var got []string
			for _, x := range v.Violations {
				got = appendUnique(got, x.Check)
			}
			sort.Strings(got)
			if !slices.Equal(got, tt.violations) {
				t.Errorf("violations %v, want %v", got, tt.violations)
				for _, x := range v.Violations {
					t.Logf("  %s: %s", x.Check, x.Detail)
				}
			}
		})
	}
}

// TestVerifyCounts checks the tallies of a small run.
func TestVerifyCounts(t *testing.T) {
	d1 := fileDelivery("1")
	l := baseLedger(false, 1)
	l.progress(outAcked, 10).Retried = true
	l.deliver(outAcked, 1, d1)
	l.on(opRelease, outInDoubt, "")
	l.poll(outInDoubt)
	obs := baseObs(stReleased)
	obs.Agents[tAgent].RevisionCap = 1
	shows(obs, 1, d1)
	v := verify(l.entries, obs)
	if len(v.Violations) != 0 {
		t.Fatalf("violations %+v", v.Violations)
	}
	want := map[opKind]int{opCreateAgent: 1, opRegister: 1, opPlace: 1, opPoll: 1,
		opProgress: 1, opDeliverFiles: 1}
	for k, n := range want {
		if v.Acked[k] != n {
			t.Errorf("acked %s = %d, want %d", k, v.Acked[k], n)
		}
	}
	if v.InDoubt[opRelease] != 1 || v.InDoubt[opPoll] != 1 || v.Retried[opProgress] != 1 {
		t.Errorf("in doubt %v, resolved by retry %v", v.InDoubt, v.Retried)
	}
	if v.Orders != 1 || v.Deliveries != 1 || v.Files != 1 ||
		v.FileBytes != int64(len(d1.Files[0].Data)) || v.Keys != 1 || v.Events.Expected != 1 {
		t.Errorf("checked %+v", v)
	}
}

// TestApplyOrder walks the README's transition table.
func TestApplyOrder(t *testing.T) {
	tests := []struct {
		from    orderModel
		kind    opKind
		cap     int
		want    string
		event   string
		allowed bool
	}{
		{orderModel{State: stAwaiting}, opApprove, 0, stInProgress, evApproved, true},
		{orderModel{State: stAwaiting}, opDeny, 0, stDenied, evDenied, true},
		{orderModel{State: stAwaiting}, opDeliverJSON, 0, "", "", false},
		{orderModel{State: stInProgress}, opDeliverJSON, 0, stDelivered, "", true},
		{orderModel{State: stInProgress}, opDecline, 0, stDeclined, "", true},
		{orderModel{State: stDelivered}, opDecline, 0, "", "", false},
		{orderModel{State: stDelivered}, opRevision, 1, stInProgress, evRevision, true},
		{orderModel{State: stDelivered, RevisionsUsed: 1}, opRevision, 1, stRevisionReview, "",
			true},
		{orderModel{State: stRevisionReview}, opApprove, 1, stInProgress, evRevision, true},
		{orderModel{State: stRevisionReview}, opDeny, 1, stDelivered, "", true},
		{orderModel{State: stDelivered}, opRelease, 0, stReleased, "", true},
		{orderModel{State: stRevisionReview}, opScope, 0, stRevisionReview, evScopeChange, true},
		{orderModel{State: stFlagged}, opScope, 0, "", "", false},
		{orderModel{State: stDelivered}, opFlag, 0, stFlagged, "", true},
		{orderModel{State: stFlagged, FlaggedFrom: stDelivered}, opUnflag, 0, stDelivered, "",
			true},
		{orderModel{State: stFlagged}, opRefund, 0, stRefunded, "", true},
		{orderModel{State: stReleased}, opRefund, 0, "", "", false},
		{orderModel{State: stDelivered}, opProgress, 0, "", "", false},
	}
	for _, tt := range tests {
		e := &entry{Kind: tt.kind, Seq: 9}
		got, ev, ok := applyOrder(tt.from, e, tt.cap)
		if ok != tt.allowed || (ok && (got.State != tt.want || ev != tt.event)) {
			t.Errorf("%s from %+v: got %s %q %v, want %s %q %v", tt.kind, tt.from, got.State,
				ev, ok, tt.want, tt.event, tt.allowed)
		}
	}
}

func TestClassify(t *testing.T) {
	refused := &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}
	tests := []struct {
		a    answer
		want attemptClass
	}{
		{answer{status: 201}, attemptAcked},
		{answer{status: 409, code: codeInvalid}, attemptRefused},
		{answer{status: 401, code: codeKeyRevoked}, attemptRefused},
		{answer{status: 429}, attemptRetryLater},
		{answer{status: 503}, attemptInDoubt},
		{answer{status: 500}, attemptInDoubt},
		{answer{err: refused}, attemptNotSent},
		{answer{err: fasthttp.ErrDialTimeout}, attemptNotSent},
		{answer{err: fasthttp.ErrConnectionClosed}, attemptInDoubt},
		{answer{err: fasthttp.ErrTimeout}, attemptInDoubt},
		{answer{err: errors.New("read: connection reset by peer")}, attemptInDoubt},
	}
	for _, tt := range tests {
		if got := classify(tt.a); got != tt.want {
			t.Errorf("classify(%+v) = %d, want %d", tt.a, got, tt.want)
		}
	}
}

// TestCrashShort builds heeprd and runs the crash mode with five kills: every acknowledged write
// must survive, and several kinds of writes must have been acknowledged.
func TestCrashShort(t *testing.T) {
	if testing.Short() {
		t.Skip("builds heeprd and kills it five times")
	}
	bin := buildHeeprd(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	argv := []string{"crash", "--json", "--spawn", bin, "--kills", "5", "--agents", "16",
		"--workers", "4", "--min-uptime", "300ms", "--max-uptime", "900ms", "--time-limit", "60s"}
	runErr := run(ctx, argv, &stdout, &stderr)

	rep := crashReport{verdict: &verdict{}}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %v; report is not JSON: %v\n%s\n%s", argv, runErr, err, stdout.String(),
			stderr.String())
	}
	for _, v := range rep.Violations {
		t.Errorf("violation %s agent %s order %s write %d: %s", v.Check, v.Agent, v.Order, v.Seq,
			v.Detail)
	}
	if runErr != nil {
		t.Fatalf("%v: %v\n%s", argv, runErr, stderr.String())
	}
	if rep.Kills != 5 {
		t.Errorf("survived %d kills, want 5", rep.Kills)
	}
	for _, k := range []opKind{opPlace, opPoll, opProgress, opDeliverJSON, opDeliverFiles,
		opRegister} {
		if rep.Acked[k] == 0 {
			t.Errorf("no %s acknowledged: %v", k, rep.Acked)
		}
	}
	kinds := 0
	for _, n := range rep.Acked {
		if n > 0 {
			kinds++
		}
	}
	if kinds < 10 || rep.Orders == 0 || rep.Files == 0 || rep.Events.Expected == 0 {
		t.Errorf("acknowledged %d kinds (%v), checked %d orders, %d files, %d events; want "+
			"more", kinds, rep.Acked, rep.Orders, rep.Files, rep.Events.Expected)
	}
	t.Logf("kills %d, acked %d, in doubt %d, checked %d orders, %d files, %d events",
		rep.Kills, rep.AckedTotal, rep.InDoubtTotal, rep.Orders, rep.Files, rep.Events.Expected)
}

// TestAgentModelKeys registers an agent five times, revoking each key first: the model answers
// key_revoked for the keys heeprd remembers (actors.MaxPreviousKeys) and key_unknown before.
func TestAgentModelKeys(t *testing.T) {
	var m agentModel
	keys := []string{"k1", "k2", "k3", "k4", "k5"}
	for i, k := range keys {
		if i > 0 {
			var ok bool
			if m, _, ok = applyAgent(m, &entry{Kind: opRevokeKey, Outcome: outAcked}); !ok {
				t.Fatalf("revoke %d refused", i)
			}
		}
		tok := fmt.Sprint("t", i)
		m, _, _ = applyAgent(m, &entry{Kind: opMintBootstrap, Outcome: outAcked, Token: tok})
		next, refusal, ok := applyAgent(m, &entry{Kind: opRegister, Outcome: outAcked,
			Token: tok, IssuedKey: k})
		if !ok {
			t.Fatalf("register %s refused: %s", k, refusal)
		}
		m = next
	}
	want := map[string]string{"k1": codeKeyUnknown, "k2": codeKeyRevoked,
		"k3": codeKeyRevoked, "k4": codeKeyRevoked, "k5": authOK, "": codeKeyUnknown,
		"other": codeKeyUnknown}
	for k, w := range want {
		if got := m.auth(k); got != w {
			t.Errorf("auth(%q) = %s, want %s", k, got, w)
		}
	}
}
