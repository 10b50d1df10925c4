package actors

import (
	"context"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"
)

// Tests of the finer transitions: revisions, scope changes, unflagging and deadlines.

func TestRequestRevision(t *testing.T) {
	tests := []struct {
		name        string
		from        OrderState
		used        int // revisions used before; the cap is 2
		want        error
		wantState   OrderState
		wantChanges string
		wantReason  string
	}{
		{"first revision", Delivered, 0, nil, InProgress, "PutOrder PutEvent PutAgent",
			"revision 1"},
		{"last revision within the cap", Delivered, 1, nil, InProgress,
			"PutOrder PutEvent PutAgent", "revision 2"},
		{"beyond the cap goes to the owner", Delivered, 2, nil, RevisionReview, "PutOrder",
			"revision beyond the cap"},
		{"not delivered", InProgress, 0, ErrInvalidState, InProgress, "", ""},
		{"already in review", RevisionReview, 2, ErrInvalidState, RevisionReview, "", ""},
		{"released", Released, 0, ErrInvalidState, Released, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ta, _, o := orderAt(t, tc.from)
			o.RevisionsUsed = tc.used
			ta.events = nil
			before := encodeOrder(t, o)
			now := t0.Add(time.Hour)
			v, changes, err := ta.requestRevision(&RequestRevision{OrderID: o.ID,
				Note: "bigger cat"}, now)
			wantErr(t, err, tc.want)
			if kinds(changes) != tc.wantChanges || o.State != tc.wantState {
				t.Fatalf("changes %q state %s, want %q %s", kinds(changes), o.State,
					tc.wantChanges, tc.wantState)
			}
			if tc.want != nil {
				if v != nil || encodeOrder(t, o) != before {
					t.Errorf("refused revision changed the order")
				}
				return
			}
			last := o.History[len(o.History)-1]
			if last != (Transition{At: now, From: Delivered, To: tc.wantState, By: ByCustomer,
				Reason: tc.wantReason}) {
				t.Errorf("transition = %+v", last)
			}
			if tc.wantState == RevisionReview {
				if o.RevisionsUsed != tc.used || len(ta.events) != 0 ||
					o.PendingRevision == nil || o.PendingRevision.Message != "bigger cat" {
					t.Errorf("review: used %d, events %d, pending %+v", o.RevisionsUsed,
						len(ta.events), o.PendingRevision)
				}
				return
			}
			if o.RevisionsUsed != tc.used+1 || o.PendingRevision != nil || len(ta.events) != 1 {
				t.Fatalf("used %d, pending %+v, events %+v", o.RevisionsUsed, o.PendingRevision,
					ta.events)
			}
			ev := ta.events[0]
			if ev.Kind != RevisionRequest || ev.Note != "bigger cat" ||
				ev.Revision != tc.used+1 || ev.Order.State != InProgress ||
				ev.Order.RevisionsUsed != tc.used+1 {
				t.Errorf("event = %+v", ev)
			}
		})
	}
}

func TestRevisionBeyondCapApprovedByOwner(t *testing.T) {
	_, ta, h, o := orderAt(t, InProgress)
	if _, _, err := ta.deliver(&Deliver{Key: h, OrderID: o.ID, Text: "cat"},
		t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	o.RevisionsUsed = 2
	ta.events = nil
	if _, _, err := ta.requestRevision(&RequestRevision{OrderID: o.ID, Note: "blue"},
		t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(2 * time.Hour)
	if _, _, err := ta.decide(&OwnerDecision{OrderID: o.ID, Action: ActApprove}, now); err != nil {
		t.Fatal(err)
	}
	if o.State != InProgress || o.RevisionsUsed != 3 || o.PendingRevision != nil {
		t.Fatalf("order = %s used %d pending %+v", o.State, o.RevisionsUsed, o.PendingRevision)
	}
	v, _, err := ta.poll(&Poll{Key: h}, now)
	wantErr(t, err, nil)
	res := v.(*PollResult)
	if len(res.Events) != 1 || res.Events[0].Kind != RevisionRequest ||
		res.Events[0].Note != "blue" || res.Events[0].Revision != 3 || res.Rules != testRules {
		t.Errorf("poll = %+v", res)
	}
	// The agent delivers the revision.
	v, _, err = ta.deliver(&Deliver{Key: h, OrderID: o.ID, Text: "blue cat"}, now)
	wantErr(t, err, nil)
	if d := v.(*DeliverResult); d.Delivery != 2 || d.State != Delivered {
		t.Errorf("deliver = %+v", d)
	}
}

func TestChangeScope(t *testing.T) {
	str := func(s string) *string { return &s }
	later := t0.Add(48 * time.Hour)
	past := t0.Add(-time.Hour)
	tests := []struct {
		name      string
		from      OrderState
		msg       ChangeScope
		want      error
		wantScope string
		wantBrief string
		wantDue   time.Time // zero: unchanged
	}{
		{"everything", InProgress, ChangeScope{Scope: str("two logos"), Brief: str("dogs"),
			Deadline: &later}, nil, "two logos", "dogs", later},
		{"scope only", AwaitingApproval, ChangeScope{Scope: str("x")}, nil, "x", "a cat",
			time.Time{}},
		{"nothing (still tells the agent)", Delivered, ChangeScope{}, nil, "one logo", "a cat",
			time.Time{}},
		{"in revision review", RevisionReview, ChangeScope{Brief: str("b")}, nil, "one logo",
			"b", time.Time{}},
		{"deadline in the past", InProgress, ChangeScope{Scope: str("x"), Deadline: &past},
			ErrInvalidRequest, "", "", time.Time{}},
		{"flagged", Flagged, ChangeScope{Scope: str("x")}, ErrInvalidState, "", "", time.Time{}},
		{"final", Refunded, ChangeScope{Scope: str("x")}, ErrInvalidState, "", "", time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ta, _, o := orderAt(t, tc.from)
			ta.events = nil
			before := encodeOrder(t, o)
			oldDue := o.Deadline
			m := tc.msg
			m.OrderID = o.ID
			now := t0.Add(time.Minute)
			v, changes, err := ta.changeScope(&m, now)
			wantErr(t, err, tc.want)
			if tc.want != nil {
				if v != nil || changes != nil || encodeOrder(t, o) != before ||
					len(ta.events) != 0 {
					t.Errorf("refused scope change changed something")
				}
				return
			}
			wantDue := tc.wantDue
			if wantDue.IsZero() {
				wantDue = oldDue
			}
			if o.Scope != tc.wantScope || o.Brief != tc.wantBrief || !o.Deadline.Equal(wantDue) ||
				o.State != tc.from || !o.UpdatedAt.Equal(now) {
				t.Errorf("order = %+v", o)
			}
			if kinds(changes) != "PutOrder PutEvent PutAgent" {
				t.Errorf("changes = %s", kinds(changes))
			}
			last := o.History[len(o.History)-1]
			if last != (Transition{At: now, From: tc.from, To: tc.from, By: ByOwner,
				Reason: "scope changed"}) {
				t.Errorf("transition = %+v", last)
			}
			if len(ta.events) != 1 || ta.events[0].Kind != ScopeChange ||
				ta.events[0].Order != o.View() {
				t.Errorf("events = %+v", ta.events)
			}
		})
	}
}

func TestUnflagReturnsToFlaggedFrom(t *testing.T) {
	for _, from := range []OrderState{AwaitingApproval, InProgress, Delivered, RevisionReview} {
		t.Run(string(from), func(t *testing.T) {
			_, ta, h, o := orderAt(t, from)
			if _, _, err := ta.flag(&Flag{Key: h, OrderID: o.ID, Reason: "other"},
				t0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			v, _, err := ta.decide(&OwnerDecision{OrderID: o.ID, Action: ActUnflag,
				Reason: "fine"}, t0.Add(time.Hour))
			wantErr(t, err, nil)
			if *v.(*OrderResult) != (OrderResult{o.ID, from}) || o.State != from ||
				o.FlaggedFrom != "" {
				t.Errorf("after unflag: %+v, state %s, flagged from %q", v, o.State,
					o.FlaggedFrom)
			}
		})
	}
}

func TestCheckDeadline(t *testing.T) {
	const window = 30 * time.Minute
	tests := []struct {
		name       string
		manual     bool
		setup      func(ta *testAgent, h SecretHash, o *Order)
		at         time.Duration // after placing at t0+1s
		wantState  OrderState
		wantReason string // history reason of the system's transition; "" for none
		wantEvent  EventKind
		wantAgain  bool // a reminder is scheduled again
	}{
		{"approval window not over", true, nil, window - time.Second, AwaitingApproval, "",
			"", true},
		{"approval window over, exactly", true, nil, window, Denied, ReasonApprovalTimeout,
			OwnerDeniedOrder, false},
		{"approval window long over", true, nil, 5 * window, Denied, ReasonApprovalTimeout,
			OwnerDeniedOrder, false},
		{"approved in time", true, func(ta *testAgent, _ SecretHash, o *Order) {
			ta.decide(&OwnerDecision{OrderID: o.ID, Action: ActApprove}, t0.Add(time.Minute))
		}, window, InProgress, "", "", true},
		{"delivery deadline not reached", false, nil, 24*time.Hour - time.Second, InProgress,
			"", "", true},
		{"delivery deadline reached, exactly", false, nil, 24 * time.Hour, Refunded,
			ReasonMissedDeadline, "", false},
		{"delivered in time", false, func(ta *testAgent, h SecretHash, o *Order) {
			ta.deliver(&Deliver{Key: h, OrderID: o.ID, Text: "x"}, t0.Add(time.Minute))
		}, 48 * time.Hour, Delivered, "", "", false},
		{"in a revision after the deadline", false, func(ta *testAgent, h SecretHash,
			o *Order) {
			ta.deliver(&Deliver{Key: h, OrderID: o.ID, Text: "x"}, t0.Add(time.Minute))
			ta.requestRevision(&RequestRevision{OrderID: o.ID}, t0.Add(2*time.Minute))
		}, 48 * time.Hour, InProgress, "", "", false},
		{"flagged before the deadline", false, func(ta *testAgent, h SecretHash, o *Order) {
			ta.flag(&Flag{Key: h, OrderID: o.ID, Reason: "other"}, t0.Add(time.Minute))
		}, 48 * time.Hour, Flagged, "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			te := newTestEnv(journalSync)
			te.Deadlines = NewDeadlines()
			te.ApprovalWindow = window
			s := defaultSettings()
			s.ManualAcceptance = tc.manual
			ta := newTestAgent(te, s)
			id, h := ta.mustPlaceAfterRegister(t)
			o := ta.orders[id]
			if tc.manual && !o.ApprovalDue.Equal(t0.Add(time.Second+window)) {
				t.Errorf("ApprovalDue = %v", o.ApprovalDue)
			}
			if tc.setup != nil {
				tc.setup(ta, h, o)
			}
			ta.events = nil
			scheduled := te.Deadlines.Len()
			hist := len(o.History)
			now := t0.Add(time.Second + tc.at)
			v, changes, err := ta.checkDeadline(&CheckDeadline{OrderID: id}, now)
			if err != nil || v != nil {
				t.Fatalf("checkDeadline = %v, %v", v, err)
			}
			if o.State != tc.wantState {
				t.Fatalf("state = %s, want %s", o.State, tc.wantState)
			}
			if tc.wantReason == "" {
				if len(changes) != 0 || len(o.History) != hist || len(ta.events) != 0 {
					t.Errorf("nothing due, but changes %s, history %+v", kinds(changes),
						o.History[hist:])
				}
			} else {
				last := o.History[len(o.History)-1]
				if last.By != BySystem || last.Reason != tc.wantReason || !last.At.Equal(now) ||
					o.Refund == nil || o.Refund.Reason != tc.wantReason {
					t.Errorf("transition %+v, refund %+v", last, o.Refund)
				}
			}
			if tc.wantEvent != "" {
				if len(ta.events) != 1 || ta.events[0].Kind != tc.wantEvent ||
					ta.events[0].Reason != tc.wantReason {
					t.Errorf("events = %+v", ta.events)
				}
			}
			if again := te.Deadlines.Len() > scheduled; again != tc.wantAgain {
				t.Errorf("scheduled again: %v, want %v", again, tc.wantAgain)
			}
		})
	}
	t.Run("unknown order", func(t *testing.T) {
		ta := newTestAgent(newTestEnv(journalSync), defaultSettings())
		v, changes, err := ta.checkDeadline(&CheckDeadline{OrderID: "ord_x_1"}, t0)
		if v != nil || changes != nil || err != nil {
			t.Errorf("= %v, %v, %v", v, changes, err)
		}
	})
}

func TestDeadlinesRun(t *testing.T) {
	var nilSchedule *Deadlines
	nilSchedule.Schedule(t0, "agt_x", "ord_x_1") // a nil schedule ignores requests

	d := NewDeadlines()
	now := time.Now()
	d.Schedule(now.Add(time.Hour), "agt_a", "ord_late")
	d.Schedule(now.Add(-time.Second), "agt_a", "ord_due1")
	d.Schedule(now.Add(-2*time.Second), "agt_b", "ord_due0")
	if d.Len() != 3 {
		t.Fatalf("Len = %d", d.Len())
	}
	var mu sync.Mutex
	var fired []string
	got := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx, func(agentID, orderID string) {
			mu.Lock()
			fired = append(fired, agentID+"/"+orderID)
			mu.Unlock()
			got <- struct{}{}
		})
	}()
	wait := func(n int) {
		t.Helper()
		for range n {
			select {
			case <-got:
			case <-time.After(5 * time.Second):
				t.Fatalf("reminder did not fire; fired %v", fired)
			}
		}
	}
	wait(2)
	d.Schedule(time.Now().Add(20*time.Millisecond), "agt_c", "ord_soon") // wakes the loop
	wait(1)
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	want := []string{"agt_b/ord_due0", "agt_a/ord_due1", "agt_c/ord_soon"}
	if !slices.Equal(fired, want) {
		t.Errorf("fired %v, want %v", fired, want)
	}
	if d.Len() != 1 {
		t.Errorf("Len = %d, want the late one left", d.Len())
	}
}

// TestAgentWorkEndsAtDeadline: work (delivery, progress) on an order that is still waiting for
// its first delivery is refused from the deadline on, even before the refund runs; turning the
// order down or flagging it stays possible.
func TestAgentWorkEndsAtDeadline(t *testing.T) {
	tests := []struct {
		name      string
		at        time.Duration // relative to the order's deadline
		delivered bool          // the order already has a delivery (a revision is under way)
		act       Action
		want      error
	}{
		{"deliver 1ns before", -1, false, ActDeliver, nil},
		{"deliver at the deadline", 0, false, ActDeliver, ErrInvalidState},
		{"deliver after", time.Hour, false, ActDeliver, ErrInvalidState},
		{"progress at the deadline", 0, false, ActProgress, ErrInvalidState},
		{"progress 1ns before", -1, false, ActProgress, nil},
		{"decline after", time.Hour, false, ActDecline, nil},
		{"flag after", time.Hour, false, ActFlag, nil},
		{"revision delivered after", time.Hour, true, ActDeliver, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ta, h, o := orderAt(t, InProgress)
			if tc.delivered {
				o.Deliveries = []Delivery{{N: 1, At: t0, Text: "v1"}}
			}
			i := slices.IndexFunc(agentActions, func(aa agentAction) bool {
				return aa.act == tc.act
			})
			before := encodeOrder(t, o)
			_, _, err := agentActions[i].run(ta, h, o.ID, o.Deadline.Add(tc.at))
			wantErr(t, err, tc.want)
			if tc.want != nil && encodeOrder(t, o) != before {
				t.Errorf("refused %s changed the order", tc.act)
			}
		})
	}
	t.Run("status with late progress changes nothing", func(t *testing.T) {
		_, ta, h, o := orderAt(t, InProgress)
		_, changes, err := ta.setStatus(&SetStatus{Key: h, Status: Paused, OrderID: o.ID,
			Progress: 5}, o.Deadline)
		wantErr(t, err, ErrInvalidState)
		if ta.state.Status != Active || changes != nil || o.Progress != nil {
			t.Errorf("status %s, changes %s, progress %+v", ta.state.Status, kinds(changes),
				o.Progress)
		}
	})
}

func TestMessageKind(t *testing.T) {
	tests := []struct {
		msg  any
		want string
	}{
		{&Poll{}, "poll"}, {&Drain{}, "drain"}, {&Authenticate{}, "authenticate"},
		{&Register{}, "register"},
		{&Deliver{}, "deliver"}, {&Decline{}, "decline"}, {&Flag{}, "flag"},
		{&SetStatus{}, "set_status"}, {&GetSkill{}, "get_skill"}, {&Create{}, "create"},
		{&GetAgent{}, "get_agent"}, {&MintBootstrap{}, "mint_bootstrap"},
		{&RevokeKey{}, "revoke_key"}, {&PutSkill{}, "put_skill"},
		{&PlaceOrder{}, "place_order"}, {&GetOrder{}, "get_order"}, {&GetFile{}, "get_file"},
		{&OwnerDecision{}, "owner_decision"}, {&RequestRevision{}, "request_revision"},
		{&ChangeScope{}, "change_scope"}, {&CheckDeadline{}, "check_deadline"},
		{"nonsense", "other"}, {nil, "other"}, {Poll{}, "other"},
	}
	named := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := MessageKind(tc.msg); got != tc.want {
				t.Errorf("MessageKind(%T) = %q, want %q", tc.msg, got, tc.want)
			}
		})
		if tc.want != "other" {
			named[tc.want] = true
		}
	}
	// MessageKinds, the metric's label values, must hold every name and nothing else.
	if !slices.Equal(slices.Sorted(maps.Keys(named)), slices.Sorted(slices.Values(MessageKinds))) {
		t.Errorf("MessageKinds = %v, want the kinds named above: %v", MessageKinds,
			slices.Sorted(maps.Keys(named)))
	}
}

func TestPollAnswersAtMostMaxEvents(t *testing.T) {
	te := newTestEnv(journalSync)
	ta := newTestAgent(te, defaultSettings())
	_, h := ta.mustRegister(t, t0)
	for range MaxEventsPerPoll + 5 {
		ta.mustPlace(t, t0)
	}
	v, _, err := ta.poll(&Poll{Key: h}, t0.Add(time.Second))
	wantErr(t, err, nil)
	first := v.(*PollResult).Events
	if len(first) != MaxEventsPerPoll || first[0].Seq != 1 {
		t.Fatalf("first poll: %d events from seq %d, want %d from 1", len(first),
			first[0].Seq, MaxEventsPerPoll)
	}
	v, _, err = ta.poll(&Poll{Key: h}, t0.Add(2*time.Second)) // while the first is leased
	wantErr(t, err, nil)
	if rest := v.(*PollResult).Events; len(rest) != 5 || rest[0].Seq != MaxEventsPerPoll+1 {
		t.Fatalf("second poll: %d events, want the 5 after the first %d", len(rest),
			MaxEventsPerPoll)
	}
}
