package actors

import (
	"errors"
	"testing"
	"time"
)

func idem(key string, fp byte) Idempotency {
	return Idempotency{Key: key, Fingerprint: Fingerprint{fp}}
}

// idemAction builds one of the idempotent agent messages for an order.
type idemAction struct {
	name   string
	from   OrderState
	msg    func(h SecretHash, id string, i Idempotency) any
	result any // the first answer, without the order id
}

var idemActions = []idemAction{
	{"deliver", InProgress, func(h SecretHash, id string, i Idempotency) any {
		return &Deliver{Key: h, Idem: i, OrderID: id, Text: "x"}
	}, DeliverResult{Delivery: 1, State: Delivered}},
	{"decline", InProgress, func(h SecretHash, id string, i Idempotency) any {
		return &Decline{Key: h, Idem: i, OrderID: id, Reason: "capacity"}
	}, OrderResult{State: Declined}},
	{"flag", Delivered, func(h SecretHash, id string, i Idempotency) any {
		return &Flag{Key: h, Idem: i, OrderID: id, Reason: "other"}
	}, OrderResult{State: Flagged}},
	{"progress", InProgress, func(h SecretHash, id string, i Idempotency) any {
		return &SetStatus{Key: h, Idem: i, OrderID: id, Progress: 10}
	}, nil},
}

func TestIdempotentRequests(t *testing.T) {
	for _, ia := range idemActions {
		t.Run(ia.name, func(t *testing.T) {
			_, ta, h, o := orderAt(t, ia.from)
			now := t0.Add(time.Hour)
			k := idem("k1", 1)

			first, changes, err := ta.handle(ia.msg(h, o.ID, k), now)
			wantErr(t, err, nil)
			if n := len(changes); n == 0 || kinds(changes[n-1:]) != "PutRemembered" {
				t.Fatalf("changes = %s, want the answer remembered last", kinds(changes))
			}
			rec := changes[len(changes)-1].(PutRemembered)
			if rec.AgentID != ta.state.ID || rec.Record.Key != "k1" ||
				rec.Record.Fingerprint != k.Fingerprint || !rec.Record.At.Equal(now) ||
				rec.Record.result() != first {
				t.Errorf("remembered = %+v", rec.Record)
			}
			switch want := ia.result.(type) {
			case DeliverResult:
				want.OrderID = o.ID
				if *first.(*DeliverResult) != want {
					t.Errorf("first = %+v", first)
				}
			case OrderResult:
				want.OrderID = o.ID
				if *first.(*OrderResult) != want {
					t.Errorf("first = %+v", first)
				}
			}
			after := encodeOrder(t, o)

			tests := []struct {
				name string
				key  SecretHash
				i    Idempotency
				want error
			}{
				{"replay", h, k, nil},
				{"replay later", h, k, nil},
				{"same key, other request", h, idem("k1", 2), ErrIdempotencyReused},
				{"replay with a wrong key", HashSecret("x"), k, ErrKeyUnknown},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					v, changes, err := ta.handle(ia.msg(tc.key, o.ID, tc.i), now.Add(time.Minute))
					wantErr(t, err, tc.want)
					wantChanges := "" // a replay only waits for the first to be durable
					if tc.want == nil {
						wantChanges = "Barrier"
					}
					if kinds(changes) != wantChanges || encodeOrder(t, o) != after {
						t.Errorf("a %s changed something: %s", tc.name, kinds(changes))
					}
					if tc.want == nil && v != first {
						t.Errorf("replay answered %+v, want the first answer %+v", v, first)
					}
				})
			}
		})
	}
}

func TestIdempotentFailureIsNotRemembered(t *testing.T) {
	_, ta, h, o := orderAt(t, Delivered)
	msg := &Deliver{Key: h, Idem: idem("k", 1), OrderID: o.ID, Text: "x"}
	_, changes, err := ta.handle(msg, t0)
	wantErr(t, err, ErrInvalidState)
	if changes != nil || ta.answers.len() != 0 {
		t.Fatalf("failed request remembered: %s", kinds(changes))
	}
	o.State = InProgress
	v, _, err := ta.handle(msg, t0.Add(time.Second))
	wantErr(t, err, nil)
	if v.(*DeliverResult).State != Delivered {
		t.Errorf("retry = %+v", v)
	}
	// Without a key nothing is remembered and a repeat is refused by the state.
	o.State = InProgress
	plain := &Decline{Key: h, OrderID: o.ID, Reason: "other"}
	if _, changes, err := ta.handle(plain, t0); err != nil || kinds(changes) != "PutOrder" {
		t.Fatalf("plain decline: %s, %v", kinds(changes), err)
	}
	_, _, err = ta.handle(plain, t0)
	wantErr(t, err, ErrInvalidState)
}

func TestIdempotencyRetention(t *testing.T) {
	tests := []struct {
		name        string
		ttl         time.Duration
		second      time.Duration // when the second idempotent request comes
		wantForgets bool
	}{
		{"within the TTL", time.Hour, 59 * time.Minute, false},
		{"exactly at the TTL", time.Hour, time.Hour, false},
		{"past the TTL", time.Hour, time.Hour + 1, true},
		{"default TTL kept", 0, DefaultIdempotencyTTL, false},
		{"default TTL past", 0, DefaultIdempotencyTTL + time.Second, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			te, ta, h, o := orderAt(t, InProgress)
			te.IdempotencyTTL = tc.ttl
			o.Deadline = t0.Add(1000 * time.Hour)
			set := func(k Idempotency, at time.Duration) []Change {
				t.Helper()
				_, changes, err := ta.handle(&SetStatus{Key: h, Idem: k, OrderID: o.ID,
					Progress: 1}, t0.Add(at))
				if err != nil {
					t.Fatal(err)
				}
				return changes
			}
			set(idem("old", 1), 0)
			changes := set(idem("new", 1), tc.second)
			forgot := kinds(changes) == "PutProgress PutRemembered DeleteRemembered"
			if forgot != tc.wantForgets {
				t.Fatalf("changes = %s, want forgetting: %v", kinds(changes), tc.wantForgets)
			}
			if forgot {
				if d := changes[2].(DeleteRemembered); d.Key != "old" || d.AgentID != ta.state.ID {
					t.Errorf("delete = %+v", d)
				}
				// A forgotten key may carry a new request.
				set(idem("old", 2), tc.second)
			}
		})
	}
}

// TestIdempotencyKeyReusableAfterTTL: past its retention a key is forgotten, so a new request
// with it runs, even when no other idempotent request came in between to prune it.
func TestIdempotencyKeyReusableAfterTTL(t *testing.T) {
	te, ta, h, o := orderAt(t, InProgress)
	te.IdempotencyTTL = time.Hour
	msg := func(fp byte) *SetStatus {
		return &SetStatus{Key: h, Idem: idem("k", fp), OrderID: o.ID, Progress: int(fp)}
	}
	if _, _, err := ta.handle(msg(1), t0); err != nil {
		t.Fatal(err)
	}
	_, _, err := ta.handle(msg(2), t0.Add(2*time.Hour))
	if err != nil {
		t.Errorf("key reused two hours after a 1h retention: %v", err)
	}
}

func TestIdempotencyRestored(t *testing.T) {
	te := newTestEnv(journalSync)
	te.IdempotencyTTL = time.Hour
	id := NewAgentID()
	res := &OrderResult{OrderID: idWithSeq(OrderPrefix, id, 1), State: Declined}
	recs := []*Remembered{ // any order
		{Key: "b", Fingerprint: Fingerprint{1}, At: t0.Add(30 * time.Minute), Order: res},
		{Key: "a", Fingerprint: Fingerprint{1}, At: t0, Order: res},
	}
	key := HashSecret("s")
	snap := &Snapshot{State: AgentState{ID: id, Status: Active, Key: &APIKey{Hash: key}},
		Remembered: recs}
	a := &newRef(NewFleet(nil, te.Env), snap).agent

	v, changes, err := a.handle(&Decline{Key: key, Idem: idem("a", 1), OrderID: res.OrderID},
		t0.Add(time.Minute))
	if err != nil || v != res || kinds(changes) != "Barrier" {
		t.Fatalf("restored replay = %v, %s, %v", v, kinds(changes), err)
	}
	// Only "a" is past the retention at t0+61m; "b" stays.
	changes = a.remember(&Remembered{Key: "c", At: t0.Add(61 * time.Minute), Order: res},
		t0.Add(61*time.Minute))
	if kinds(changes) != "PutRemembered DeleteRemembered" ||
		changes[1].(DeleteRemembered).Key != "a" {
		t.Errorf("changes = %s", kinds(changes))
	}
	if _, ok := a.answers.byKey["b"]; !ok {
		t.Error("b forgotten early")
	}
}

// TestIdempotentReplayWaitsForTheFirst: a replay must not report success while the first
// request's changes are still on their way to disk: they may yet fail.
func TestIdempotentReplayWaitsForTheFirst(t *testing.T) {
	f, te := newTestFleet(t, journalSync)
	id, h := spawnRegistered(t, f)
	if _, err := f.Ask(id, &PlaceOrder{Gig: "g", Deadline: t0.Add(time.Hour)},
		askTimeout); err != nil {
		t.Fatal(err)
	}
	te.journal.setMode(journalHold)
	msg := &Deliver{Key: h, Idem: idem("k", 1), OrderID: idWithSeq(OrderPrefix, id, 1),
		Text: "x"}
	if _, err := f.Ask(id, msg, 50*time.Millisecond); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("held deliver: %v", err)
	}
	v, err := f.Ask(id, msg, 200*time.Millisecond) // the agent retries
	te.journal.release(errJournal)                 // and the first one's commit fails
	if err == nil {
		t.Errorf("replay reported success (%+v) before the first delivery was durable; "+
			"that delivery then failed to commit", v)
	}
}

func TestBudget(t *testing.T) {
	type call struct {
		at        time.Duration
		wantWait  time.Duration // 0: admitted
		wantError bool
	}
	tests := []struct {
		name   string
		budget Budget
		calls  []call
	}{
		{"no limit", Budget{}, []call{{0, 0, false}, {0, 0, false}, {0, 0, false}}},
		{"rate 1/s burst 2", Budget{Rate: 1, Burst: 2}, []call{
			{0, 0, false}, {0, 0, false}, {0, time.Second, true},
			{500 * ms, 500 * ms, true}, {time.Second, 0, false}, {time.Second, time.Second, true},
			{10 * time.Second, 0, false}, {10 * time.Second, 0, false},
			{10 * time.Second, time.Second, true},
		}},
		{"burst under 1 counts as 1", Budget{Rate: 2, Burst: 0}, []call{
			{0, 0, false}, {0, 500 * ms, true}, {500 * ms, 0, false},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bucket
			for i, c := range tc.calls {
				err := b.take(tc.budget, t0.Add(c.at))
				if (err != nil) != c.wantError {
					t.Fatalf("call %d at +%v: err = %v", i, c.at, err)
				}
				if err == nil {
					continue
				}
				var rl *RateLimitError
				if !errors.As(err, &rl) || !errors.Is(err, ErrRateLimited) ||
					rl.RetryAfter != c.wantWait {
					t.Fatalf("call %d at +%v: %v, want retry after %v", i, c.at, err, c.wantWait)
				}
			}
		})
	}
}

func TestBudgetOnAgentRequests(t *testing.T) {
	te := newTestEnv(journalSync)
	te.Budget = Budget{Rate: 1, Burst: 1}
	ta := newTestAgent(te, defaultSettings())
	_, h := ta.mustRegister(t, t0) // registering is not charged
	id := ta.mustPlace(t, t0)

	_, _, err := ta.poll(&Poll{Key: HashSecret("x")}, t0) // refused before it is charged
	wantErr(t, err, ErrKeyUnknown)
	_, _, err = ta.poll(&Poll{Key: h}, t0)
	wantErr(t, err, nil)
	ta.ref.lastPoll.Store(0)
	_, _, err = ta.poll(&Poll{Key: h}, t0.Add(time.Second/2))
	wantErr(t, err, ErrRateLimited)
	if !ta.lastPolled().IsZero() {
		t.Error("a rate-limited poll recorded a heartbeat")
	}
	msg := &SetStatus{Key: h, Idem: idem("k", 1), OrderID: id, Progress: 5}
	_, _, err = ta.handle(msg, t0.Add(time.Second))
	wantErr(t, err, nil)
	_, _, err = ta.handle(msg, t0.Add(time.Second)) // a replay costs nothing
	wantErr(t, err, nil)
	_, _, err = ta.handle(&GetSkill{Key: h}, t0.Add(time.Second))
	wantErr(t, err, ErrRateLimited)
	_, _, err = ta.handle(&GetSkill{Owner: true}, t0.Add(time.Second)) // the owner is not limited
	wantErr(t, err, nil)
}
