package actors

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// Handler tests: each calls an agent's handler directly with a controlled now.

func TestRegister(t *testing.T) {
	type setup = func(t *testing.T, ta *testAgent) (SecretHash, time.Time)
	fresh := func(t *testing.T, ta *testAgent) (SecretHash, time.Time) {
		return HashSecret(ta.bootstrap), t0
	}
	tests := []struct {
		name  string
		setup setup
		want  error
	}{
		{"unknown token", func(t *testing.T, ta *testAgent) (SecretHash, time.Time) {
			return HashSecret(NewSecret()), t0
		}, ErrBootstrapUnknown},
		{"no token at all", func(t *testing.T, ta *testAgent) (SecretHash, time.Time) {
			ta.state.Bootstrap = nil
			return HashSecret(ta.bootstrap), t0
		}, ErrBootstrapUnknown},
		{"unknown beats used and expired", func(t *testing.T, ta *testAgent) (SecretHash,
			time.Time) {
			ta.mustRegister(t, t0)
			return HashSecret(NewSecret()), t0.Add(30 * 24 * time.Hour)
		}, ErrBootstrapUnknown},
		{"used", func(t *testing.T, ta *testAgent) (SecretHash, time.Time) {
			ta.mustRegister(t, t0)
			if _, _, err := ta.revokeKey(t0); err != nil { // no live key: only "used" is left
				t.Fatal(err)
			}
			return HashSecret(ta.bootstrap), t0.Add(time.Minute)
		}, ErrBootstrapUsed},
		{"used beats expired", func(t *testing.T, ta *testAgent) (SecretHash, time.Time) {
			ta.mustRegister(t, t0)
			return HashSecret(ta.bootstrap), t0.Add(30 * 24 * time.Hour)
		}, ErrBootstrapUsed},
		{"used beats active key", func(t *testing.T, ta *testAgent) (SecretHash, time.Time) {
			ta.mustRegister(t, t0)
			return HashSecret(ta.bootstrap), t0.Add(time.Minute)
		}, ErrBootstrapUsed},
		{"expired at exactly ExpiresAt", func(t *testing.T, ta *testAgent) (SecretHash,
			time.Time) {
			return HashSecret(ta.bootstrap), ta.state.Bootstrap.ExpiresAt
		}, ErrBootstrapExpired},
		{"expired beats active key", func(t *testing.T, ta *testAgent) (SecretHash, time.Time) {
			ta.mustRegister(t, t0)
			v, _, _ := ta.mintBootstrap(&MintBootstrap{TTL: time.Hour}, t0)
			_, secret, _ := ParseCredential(BootstrapPrefix, v.(*BootstrapResult).BootstrapToken)
			return HashSecret(secret), t0.Add(time.Hour)
		}, ErrBootstrapExpired},
		{"active key exists", func(t *testing.T, ta *testAgent) (SecretHash, time.Time) {
			ta.mustRegister(t, t0)
			v, _, _ := ta.mintBootstrap(&MintBootstrap{TTL: time.Hour}, t0)
			_, secret, _ := ParseCredential(BootstrapPrefix, v.(*BootstrapResult).BootstrapToken)
			return HashSecret(secret), t0.Add(time.Minute)
		}, ErrActiveKeyExists},
		{"one nanosecond before expiry", func(t *testing.T, ta *testAgent) (SecretHash,
			time.Time) {
			return HashSecret(ta.bootstrap), ta.state.Bootstrap.ExpiresAt.Add(-1)
		}, nil},
		{"fresh token", fresh, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			te := newTestEnv(journalSync)
			ta := newTestAgent(te, defaultSettings())
			h, now := tc.setup(t, ta)
			before := ta.state
			beforeBoot := bootOf(ta.state)
			registered := te.Registered.Load()

			v, changes, err := ta.register(&Register{Bootstrap: h}, now)
			wantErr(t, err, tc.want)
			if tc.want != nil {
				if v != nil || changes != nil {
					t.Errorf("refused register returned %v, %v", v, kinds(changes))
				}
				if ta.state.Key != before.Key || bootOf(ta.state) != beforeBoot {
					t.Errorf("refused register changed credentials")
				}
				if got := te.Registered.Load(); got != registered {
					t.Errorf("Registered = %d, want %d", got, registered)
				}
				return
			}
			res := v.(*RegisterResult)
			id, secret, ok := ParseCredential(KeyPrefix, res.APIKey)
			if !ok || id != ta.state.ID || res.AgentID != ta.state.ID {
				t.Fatalf("key %q (agent %q) does not parse to agent %s", res.APIKey, res.AgentID,
					ta.state.ID)
			}
			if err := ta.authenticate(HashSecret(secret), now); err != nil {
				t.Errorf("new key does not authenticate: %v", err)
			}
			if kinds(changes) != "PutAgent" {
				t.Fatalf("changes = %s, want PutAgent", kinds(changes))
			}
			st := changes[0].(PutAgent).State
			if st.Key == nil || st.Key.Hash != HashSecret(secret) || !st.Key.IssuedAt.Equal(now) {
				t.Errorf("stored key = %+v", st.Key)
			}
			if !st.Bootstrap.Used || !ta.state.Bootstrap.Used {
				t.Errorf("bootstrap not marked used")
			}
			if strings.Contains(fmt.Sprint(st), secret) {
				t.Errorf("stored state contains the key's secret")
			}
			if got := te.Registered.Load(); got != registered+1 {
				t.Errorf("Registered = %d, want %d", got, registered+1)
			}
		})
	}
}

// bootOf returns a copy of the bootstrap token, or a zero one, for comparisons.
func bootOf(s AgentState) BootstrapToken {
	if s.Bootstrap == nil {
		return BootstrapToken{}
	}
	return *s.Bootstrap
}

func TestRegisterActiveKeyDoesNotConsumeToken(t *testing.T) {
	te := newTestEnv(journalSync)
	ta := newTestAgent(te, defaultSettings())
	oldKey, oldHash := ta.mustRegister(t, t0)
	v, _, _ := ta.mintBootstrap(&MintBootstrap{TTL: 24 * time.Hour}, t0)
	_, secret, _ := ParseCredential(BootstrapPrefix, v.(*BootstrapResult).BootstrapToken)

	_, _, err := ta.register(&Register{Bootstrap: HashSecret(secret)}, t0.Add(time.Minute))
	if !errors.Is(err, ErrActiveKeyExists) {
		t.Fatalf("register with live key: %v, want ErrActiveKeyExists", err)
	}
	if ta.state.Bootstrap.Used {
		t.Fatal("token consumed by a refused register")
	}
	if err := ta.authenticate(oldHash, t0.Add(time.Minute)); err != nil {
		t.Fatalf("live key %s displaced: %v", oldKey, err)
	}
	if _, _, err := ta.revokeKey(t0.Add(2 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	ta.bootstrap = secret
	_, newHash := ta.mustRegister(t, t0.Add(3*time.Minute))
	if err := ta.authenticate(newHash, t0.Add(3*time.Minute)); err != nil {
		t.Fatalf("new key: %v", err)
	}
}

func TestRegisterAgain(t *testing.T) {
	tests := []struct {
		name    string
		ttl     int64
		retire  func(t *testing.T, ta *testAgent) time.Time // makes the key not live; returns now
		wantReg int64                                       // Registered after re-registering
		wantOld error                                       // the answer to the replaced key
	}{
		{"after revoke", 0, func(t *testing.T, ta *testAgent) time.Time {
			if _, _, err := ta.revokeKey(t0.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			return t0.Add(time.Hour)
		}, 1, ErrKeyRevoked},
		{"after key expiry", 60, func(t *testing.T, ta *testAgent) time.Time {
			return t0.Add(60 * time.Second) // exactly at ExpiresAt
		}, 1, ErrKeyExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			te := newTestEnv(journalSync)
			s := defaultSettings()
			s.KeyTTLSeconds = tc.ttl
			ta := newTestAgent(te, s)
			_, oldHash := ta.mustRegister(t, t0)
			now := tc.retire(t, ta)
			if ta.keyState(now) == KeyActive {
				t.Fatal("key still live")
			}
			ta.mustMintBootstrap(t, now)
			_, newHash := ta.mustRegister(t, now)
			if err := ta.authenticate(newHash, now); err != nil {
				t.Errorf("new key: %v", err)
			}
			if err := ta.authenticate(oldHash, now); !errors.Is(err, tc.wantOld) {
				t.Errorf("old key: %v, want %v", err, tc.wantOld)
			}
			if got := te.Registered.Load(); got != tc.wantReg {
				t.Errorf("Registered = %d, want %d", got, tc.wantReg)
			}
			if tc.ttl > 0 {
				want := now.Add(time.Duration(tc.ttl) * time.Second)
				if !ta.state.Key.ExpiresAt.Equal(want) {
					t.Errorf("ExpiresAt = %v, want %v", ta.state.Key.ExpiresAt, want)
				}
			}
		})
	}
}

// TestPreviousKeys registers an agent again and again, each key revoked before the next: the
// last MaxPreviousKeys replaced keys answer key_revoked, older ones key_unknown, and a key
// stored before keeps the predecessors it was stored with.
func TestPreviousKeys(t *testing.T) {
	te := newTestEnv(journalSync)
	ta := newTestAgent(te, defaultSettings())
	var (
		hashes []SecretHash
		stored []*APIKey
	)
	now := t0
	for i := range MaxPreviousKeys + 2 {
		if i > 0 {
			if _, _, err := ta.revokeKey(now); err != nil {
				t.Fatal(err)
			}
			ta.mustMintBootstrap(t, now)
		}
		_, h := ta.mustRegister(t, now)
		hashes = append(hashes, h)
		stored = append(stored, ta.state.Key)
		now = now.Add(time.Minute)
	}

	last := len(hashes) - 1
	for i, h := range hashes {
		var want error
		switch {
		case i == last:
			want = nil
		case last-i <= MaxPreviousKeys:
			want = ErrKeyRevoked
		default:
			want = ErrKeyUnknown
		}
		if err := ta.authenticate(h, now); !errors.Is(err, want) {
			t.Errorf("key %d of %d: %v, want %v", i+1, len(hashes), err, want)
		}
	}
	for i, k := range stored {
		n := 0
		for p := k.Previous; p != nil; p = p.Previous {
			n++
		}
		if want := min(i, MaxPreviousKeys); n != want {
			t.Errorf("key %d was stored with %d predecessors, now has %d", i+1, want, n)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	hash := HashSecret("secret-one")
	exp := t0.Add(time.Hour)
	tests := []struct {
		name      string
		key       *APIKey
		presented SecretHash
		now       time.Time
		want      error
		wantState KeyState
	}{
		{"no key", nil, hash, t0, ErrKeyUnknown, KeyNone},
		{"wrong key", &APIKey{Hash: hash}, HashSecret("other"), t0, ErrKeyUnknown, KeyActive},
		{"zero hash", &APIKey{Hash: hash}, SecretHash{}, t0, ErrKeyUnknown, KeyActive},
		{"live, never expires", &APIKey{Hash: hash}, hash, t0.Add(100 * 365 * 24 * time.Hour),
			nil, KeyActive},
		{"live, 1ns before expiry", &APIKey{Hash: hash, ExpiresAt: exp}, hash, exp.Add(-1),
			nil, KeyActive},
		{"expired at exactly ExpiresAt", &APIKey{Hash: hash, ExpiresAt: exp}, hash, exp,
			ErrKeyExpired, KeyExpired},
		{"expired after", &APIKey{Hash: hash, ExpiresAt: exp}, hash, exp.Add(time.Hour),
			ErrKeyExpired, KeyExpired},
		{"revoked", &APIKey{Hash: hash, Revoked: true}, hash, t0, ErrKeyRevoked, KeyRevoked},
		{"revoked and expired", &APIKey{Hash: hash, Revoked: true, ExpiresAt: exp}, hash,
			exp, ErrKeyRevoked, KeyRevoked},
		{"revoked, wrong key", &APIKey{Hash: hash, Revoked: true}, HashSecret("x"), t0,
			ErrKeyUnknown, KeyRevoked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ta := newTestAgent(newTestEnv(journalSync), defaultSettings())
			ta.state.Key = tc.key
			wantErr(t, ta.authenticate(tc.presented, tc.now), tc.want)
			if got := ta.keyState(tc.now); got != tc.wantState {
				t.Errorf("keyState = %s, want %s", got, tc.wantState)
			}
		})
	}
}

func TestPoll(t *testing.T) {
	t.Run("wrong key records no heartbeat", func(t *testing.T) {
		te := newTestEnv(journalSync)
		ta := newTestAgent(te, defaultSettings())
		ta.mustRegister(t, t0)
		_, _, err := ta.poll(&Poll{Key: HashSecret("nope")}, t0)
		wantErr(t, err, ErrKeyUnknown)
		if !ta.lastPolled().IsZero() || ta.ref.lastPoll.Load() != 0 || te.Online.Online() != 0 {
			t.Errorf("refused poll recorded a heartbeat")
		}
		if beats := ta.fleet.TakeHeartbeats(nil); len(beats) != 0 {
			t.Errorf("heartbeats = %v", beats)
		}
	})
	t.Run("empty", func(t *testing.T) {
		te := newTestEnv(journalSync)
		ta := newTestAgent(te, defaultSettings())
		_, h := ta.mustRegister(t, t0)
		now := t0.Add(90 * time.Second)
		v, changes, err := ta.poll(&Poll{Key: h}, now)
		wantErr(t, err, nil)
		res := v.(*PollResult)
		if len(res.Events) != 0 || res.Rules != "" || len(changes) != 0 {
			t.Errorf("empty poll = %+v, changes %s", res, kinds(changes))
		}
		if !ta.lastPolled().Equal(now) || ta.ref.lastPoll.Load() != now.UnixNano() {
			t.Errorf("lastPoll = %v / %d, want %v", ta.lastPolled(), ta.ref.lastPoll.Load(), now)
		}
		if got := te.Online.Online(); got != 1 {
			t.Errorf("online = %d, want 1", got)
		}
		// A second poll in the same second counts the agent once.
		if _, _, err := ta.poll(&Poll{Key: h}, now.Add(500*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if got := te.Online.Online(); got != 1 {
			t.Errorf("online after repeat = %d, want 1", got)
		}
		beats := ta.fleet.TakeHeartbeats(nil)
		if len(beats) != 1 || beats[0].AgentID != ta.state.ID ||
			!beats[0].LastPoll.Equal(now.Add(500*time.Millisecond)) {
			t.Errorf("heartbeats = %v", beats)
		}
	})
	t.Run("returns events in order until drained", func(t *testing.T) {
		te := newTestEnv(journalSync)
		ta := newTestAgent(te, defaultSettings())
		_, h := ta.mustPlaceAfterRegister(t)
		ta.mustPlace(t, t0.Add(2*time.Second))
		ta.mustPlace(t, t0.Add(2*time.Second))
		wantIDs := func(res *PollResult, seqs ...uint64) {
			t.Helper()
			if len(res.Events) != len(seqs) {
				t.Fatalf("events = %+v, want seqs %v", res.Events, seqs)
			}
			for i, seq := range seqs {
				ev := res.Events[i]
				order := idWithSeq(OrderPrefix, ta.state.ID, seq)
				if ev.ID != idWithSeq(EventPrefix, ta.state.ID, seq) || ev.Seq != seq ||
					ev.OrderID != order || ev.Kind != NewOrder || ev.Order.ID != order {
					t.Errorf("event %d = %+v, want seq %d", i, ev, seq)
				}
			}
		}
		poll := func(at time.Duration) *PollResult {
			t.Helper()
			v, changes, err := ta.poll(&Poll{Key: h}, t0.Add(at))
			wantErr(t, err, nil)
			res := v.(*PollResult)
			want := "Barrier" // the reply waits for what was journalled before it
			if len(res.Events) == 0 {
				want = ""
			} else if res.Rules != testRules {
				t.Errorf("Rules = %q, want %q", res.Rules, testRules)
			}
			if kinds(changes) != want {
				t.Fatalf("poll changes = %q, want %q", kinds(changes), want)
			}
			return res
		}
		drain := func(upTo uint64, want string) {
			t.Helper()
			v, changes, err := ta.drain(&Drain{Key: h, UpTo: upTo}, t0.Add(5*time.Second))
			wantErr(t, err, nil)
			if v != nil || kinds(changes) != want {
				t.Fatalf("drain(%d) = %v, %q, want %q", upTo, v, kinds(changes), want)
			}
			for _, c := range changes {
				if d := c.(DeleteEvent); d.AgentID != ta.state.ID || d.Seq > upTo {
					t.Errorf("drain(%d) deletes %+v", upTo, d)
				}
			}
		}

		first := poll(3 * time.Second)
		wantIDs(first, 1, 2, 3)
		wantIDs(poll(4 * time.Second)) // leased to the first poll: a concurrent one gets none
		lease := DefaultPollLease
		wantIDs(poll(3*time.Second+lease), 1, 2, 3) // never drained: handed out again
		first.Events[0].Note = "mutated by the caller"
		if ta.events[0].Note != "" {
			t.Error("the poll's answer aliases the queue")
		}
		drain(0, "")
		drain(1, "DeleteEvent")
		wantIDs(poll(4*time.Second+2*lease), 2, 3)
		drain(1, "") // again: nothing left at or below 1
		drain(99, "DeleteEvent DeleteEvent")
		if res := poll(5*time.Second + 3*lease); len(res.Events) != 0 || res.Rules != "" {
			t.Errorf("poll after the drain = %+v", res)
		}
		_, delivered, _ := te.obs.counts()
		if delivered[NewOrder] != 3 {
			t.Errorf("delivered = %v, want 3 new_order", delivered)
		}
		_, _, err := ta.drain(&Drain{Key: HashSecret("x"), UpTo: 99}, t0)
		wantErr(t, err, ErrKeyUnknown)
	})
}

// mustPlaceAfterRegister registers at t0 and places one order at t0+1s.
func (ta *testAgent) mustPlaceAfterRegister(t *testing.T) (string, SecretHash) {
	t.Helper()
	_, h := ta.mustRegister(t, t0)
	return ta.mustPlace(t, t0.Add(time.Second)), h
}

func TestPlaceOrder(t *testing.T) {
	tests := []struct {
		name     string
		manual   bool
		paused   bool
		deadline time.Duration // from now
		want     error
		state    OrderState
	}{
		{"auto acceptance", false, false, time.Hour, nil, InProgress},
		{"manual acceptance", true, false, time.Hour, nil, AwaitingApproval},
		{"deadline 1ns ahead", false, false, 1, nil, InProgress},
		{"paused", false, true, time.Hour, ErrAgentPaused, ""},
		{"deadline now", false, false, 0, ErrInvalidRequest, ""},
		{"deadline past", true, false, -time.Hour, ErrInvalidRequest, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			te := newTestEnv(journalSync)
			s := defaultSettings()
			s.ManualAcceptance = tc.manual
			ta := newTestAgent(te, s)
			if tc.paused {
				ta.state.Status = Paused
			}
			now := t0.Add(time.Minute)
			m := &PlaceOrder{Gig: "g", Scope: "s", Tier: "t", Brief: "b", Price: 42,
				Deadline: now.Add(tc.deadline)}
			v, changes, err := ta.placeOrder(m, now)
			wantErr(t, err, tc.want)
			if tc.want != nil {
				if len(changes) != 0 || len(ta.orders) != 0 || ta.state.LastOrder != 0 ||
					len(ta.events) != 0 {
					t.Errorf("refused order changed something: %s", kinds(changes))
				}
				return
			}
			res := v.(*OrderResult)
			wantID := "ord_" + strings.TrimPrefix(ta.state.ID, AgentPrefix) + "_1"
			if res.OrderID != wantID || res.State != tc.state {
				t.Errorf("result = %+v, want %s %s", res, wantID, tc.state)
			}
			if agentID, ok := AgentOfOrder(res.OrderID); !ok || agentID != ta.state.ID {
				t.Errorf("AgentOfOrder(%s) = %s, %v", res.OrderID, agentID, ok)
			}
			if kinds(changes) != "PutOrder PutEvent PutAgent" {
				t.Fatalf("changes = %s", kinds(changes))
			}
			o := changes[0].(PutOrder).Order
			if o.ID != wantID || o.AgentID != ta.state.ID || o.State != tc.state ||
				o.Price != 42 || o.RevisionsAllowed != 2 || !o.CreatedAt.Equal(now) ||
				!o.UpdatedAt.Equal(now) || o.Deliveries == nil {
				t.Errorf("order = %+v", o)
			}
			wantHist := []Transition{{At: now, To: tc.state, By: ByCustomer, Reason: "placed"}}
			if !slices.Equal(o.History, wantHist) {
				t.Errorf("history = %+v, want %+v", o.History, wantHist)
			}
			ev := changes[1].(PutEvent)
			if ev.AgentID != ta.state.ID || ev.Event.Kind != NewOrder || ev.Event.Seq != 1 ||
				ev.Event.ID != idWithSeq(EventPrefix, ta.state.ID, 1) ||
				ev.Event.Order != o.View() || ev.Event.Order.State != tc.state {
				t.Errorf("event = %+v", ev.Event)
			}
			st := changes[2].(PutAgent).State
			if st.LastOrder != 1 || st.LastEvent != 1 {
				t.Errorf("stored counters = %d/%d, want 1/1", st.LastOrder, st.LastEvent)
			}
			if len(ta.events) != 1 {
				t.Errorf("queue = %d events, want 1", len(ta.events))
			}
			queued, _, moved := te.obs.counts()
			if queued[NewOrder] != 1 || moved["->"+string(tc.state)] != 1 {
				t.Errorf("observer: queued %v moved %v", queued, moved)
			}

			v, _, err = ta.placeOrder(m, now)
			wantErr(t, err, nil)
			if got := v.(*OrderResult).OrderID; got != strings.TrimSuffix(wantID, "1")+"2" {
				t.Errorf("second order id = %s", got)
			}
		})
	}
}

// orderAt builds an agent with a key and one order forced into state s.
func orderAt(t *testing.T, s OrderState) (*testEnv, *testAgent, SecretHash, *Order) {
	t.Helper()
	te := newTestEnv(journalSync)
	ta := newTestAgent(te, defaultSettings())
	id, h := ta.mustPlaceAfterRegister(t)
	return te, ta, h, ta.forceState(t, id, s)
}

func encodeOrder(t *testing.T, o *Order) string {
	t.Helper()
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// agentAction is one of the agent's order actions, run against an order id with a key.
type agentAction struct {
	act     Action
	to      OrderState
	changes string
	run     func(ta *testAgent, h SecretHash, id string, now time.Time) (any, []Change, error)
}

var agentActions = []agentAction{
	{ActDeliver, Delivered, "PutFile PutOrder",
		func(ta *testAgent, h SecretHash, id string, now time.Time) (any, []Change, error) {
			return ta.deliver(&Deliver{Key: h, OrderID: id, Text: "done",
				URLs:  []string{"https://example.com/a"},
				Files: []File{{FileMeta{Name: "a.txt", Size: 3, SHA256: "abc"}, []byte("abc")}},
			}, now)
		}},
	{ActDecline, Declined, "PutOrder",
		func(ta *testAgent, h SecretHash, id string, now time.Time) (any, []Change, error) {
			return ta.decline(&Decline{Key: h, OrderID: id, Reason: "capacity", Message: "busy"},
				now)
		}},
	{ActFlag, Flagged, "PutOrder",
		func(ta *testAgent, h SecretHash, id string, now time.Time) (any, []Change, error) {
			return ta.flag(&Flag{Key: h, OrderID: id, Reason: "illegal", Message: "no"}, now)
		}},
	{ActProgress, "", "PutProgress",
		func(ta *testAgent, h SecretHash, id string, now time.Time) (any, []Change, error) {
			return ta.setStatus(&SetStatus{Key: h, OrderID: id, Progress: 40, Message: "m"}, now)
		}},
}

// wantAllowed is the order state machine as specified, written out independently of allowedFrom.
var wantAllowed = map[Action][]OrderState{
	ActDeliver:  {InProgress},
	ActDecline:  {AwaitingApproval, InProgress},
	ActFlag:     {AwaitingApproval, InProgress, Delivered, RevisionReview},
	ActProgress: {InProgress},
	ActApprove:  {AwaitingApproval, RevisionReview},
	ActDeny:     {AwaitingApproval, RevisionReview},
	ActRelease:  {Delivered},
	ActRefund:   {AwaitingApproval, InProgress, Delivered, RevisionReview, Flagged},
	ActRevision: {Delivered},
	ActScope:    {AwaitingApproval, InProgress, Delivered, RevisionReview},
	ActUnflag:   {Flagged},
	ActExpire:   {AwaitingApproval, InProgress},
}

func TestAgentOrderActions(t *testing.T) {
	for _, aa := range agentActions {
		for _, s := range OrderStates {
			allowed := slices.Contains(wantAllowed[aa.act], s)
			t.Run(fmt.Sprintf("%s from %s", aa.act, s), func(t *testing.T) {
				te, ta, h, o := orderAt(t, s)
				before := encodeOrder(t, o)
				histLen := len(o.History)
				now := t0.Add(time.Hour)
				v, changes, err := aa.run(ta, h, o.ID, now)
				if !allowed {
					wantErr(t, err, ErrInvalidState)
					if !strings.Contains(err.Error(), " is "+string(s)) {
						t.Errorf("error %q does not name state %s", err, s)
					}
					if v != nil || changes != nil || encodeOrder(t, o) != before {
						t.Errorf("refused %s changed something", aa.act)
					}
					return
				}
				wantErr(t, err, nil)
				if kinds(changes) != aa.changes {
					t.Errorf("changes = %s, want %s", kinds(changes), aa.changes)
				}
				to := aa.to
				if to == "" { // progress leaves the state alone
					to = s
				}
				if o.State != to {
					t.Errorf("state = %s, want %s", o.State, to)
				}
				if aa.to != "" {
					if len(o.History) != histLen+1 {
						t.Fatalf("history = %+v", o.History)
					}
					want := Transition{At: now, From: s, To: to, By: ByAgent}
					switch aa.act {
					case ActDecline:
						want.Reason = "capacity"
					case ActFlag:
						want.Reason = "illegal"
					}
					if got := o.History[histLen]; got != want {
						t.Errorf("transition = %+v, want %+v", got, want)
					}
					_, _, moved := te.obs.counts()
					if moved[string(s)+"->"+string(to)] != 1 {
						t.Errorf("observer moved = %v", moved)
					}
				}
				if !o.UpdatedAt.Equal(now) {
					t.Errorf("UpdatedAt = %v, want %v", o.UpdatedAt, now)
				}
			})
		}
	}
}

func TestAgentOrderActionsRefused(t *testing.T) {
	for _, aa := range agentActions {
		t.Run(string(aa.act)+" unknown order", func(t *testing.T) {
			_, ta, h, o := orderAt(t, InProgress)
			other := idWithSeq(OrderPrefix, NewAgentID(), 1) // another agent's order
			mine2 := idWithSeq(OrderPrefix, ta.state.ID, 2)
			for _, id := range []string{"ord_nope", mine2, other} {
				v, changes, err := aa.run(ta, h, id, t0.Add(time.Hour))
				wantErr(t, err, ErrNotFound)
				if v != nil || changes != nil || o.State != InProgress {
					t.Errorf("%s: changed something", id)
				}
			}
		})
		t.Run(string(aa.act)+" wrong key", func(t *testing.T) {
			_, ta, _, o := orderAt(t, InProgress)
			before := encodeOrder(t, o)
			_, _, err := aa.run(ta, HashSecret("x"), o.ID, t0.Add(time.Hour))
			wantErr(t, err, ErrKeyUnknown)
			_, _, err = aa.run(ta, HashSecret("x"), "ord_unknown", t0.Add(time.Hour))
			wantErr(t, err, ErrKeyUnknown) // the key is checked before the order
			if encodeOrder(t, o) != before {
				t.Errorf("changed the order")
			}
		})
	}
}

func TestDeliver(t *testing.T) {
	_, ta, h, o := orderAt(t, InProgress)
	o.Progress = &Progress{Percent: 90, At: t0}
	now := t0.Add(time.Hour)
	files := []File{
		{FileMeta{Name: "a.txt", Size: 1, SHA256: "aa"}, []byte("a")},
		{FileMeta{Name: "b.txt", Size: 2, SHA256: "bb"}, []byte("bb")},
	}
	v, changes, err := ta.deliver(&Deliver{Key: h, OrderID: o.ID, Text: "t",
		URLs: []string{"https://x.example"}, Files: files}, now)
	wantErr(t, err, nil)
	if res := *v.(*DeliverResult); res != (DeliverResult{o.ID, 1, Delivered}) {
		t.Errorf("result = %+v", res)
	}
	if kinds(changes) != "PutFile PutFile PutOrder" {
		t.Fatalf("changes = %s", kinds(changes))
	}
	for i, c := range changes[:2] {
		pf := c.(PutFile)
		if pf.OrderID != o.ID || pf.Delivery != 1 || pf.Name != files[i].Name ||
			string(pf.Data) != string(files[i].Data) {
			t.Errorf("file change %d = %+v", i, pf)
		}
	}
	if o.Progress != nil {
		t.Errorf("progress not cleared: %+v", o.Progress)
	}
	d := o.Deliveries[0]
	if d.N != 1 || !d.At.Equal(now) || d.Text != "t" || len(d.URLs) != 1 || len(d.Files) != 2 ||
		d.Files[1] != files[1].FileMeta {
		t.Errorf("delivery = %+v", d)
	}

	// A second delivery (after the order is back in progress) is number 2.
	o.State = InProgress
	v, _, err = ta.deliver(&Deliver{Key: h, OrderID: o.ID, Text: "again"}, now.Add(time.Second))
	wantErr(t, err, nil)
	if n := v.(*DeliverResult).Delivery; n != 2 || len(o.Deliveries) != 2 {
		t.Errorf("second delivery = %d (%d kept)", n, len(o.Deliveries))
	}

	tests := []struct {
		name     string
		delivery int
		file     string
		want     error
	}{
		{"found", 1, "b.txt", nil},
		{"no such file", 1, "c.txt", ErrNotFound},
		{"file of delivery 1 in delivery 2", 2, "a.txt", ErrNotFound},
		{"delivery 0", 0, "a.txt", ErrNotFound},
		{"delivery 3", 3, "a.txt", ErrNotFound},
	}
	for _, tc := range tests {
		t.Run("getFile "+tc.name, func(t *testing.T) {
			v, _, err := ta.getFile(&GetFile{OrderID: o.ID, Delivery: tc.delivery, Name: tc.file})
			wantErr(t, err, tc.want)
			if tc.want == nil && *v.(*FileMeta) != files[1].FileMeta {
				t.Errorf("meta = %+v", v)
			}
		})
	}
}

func TestDeclineAndFlagRecordNotes(t *testing.T) {
	t.Run("decline", func(t *testing.T) {
		_, ta, h, o := orderAt(t, AwaitingApproval)
		now := t0.Add(time.Hour)
		v, _, err := ta.decline(&Decline{Key: h, OrderID: o.ID, Reason: "capacity",
			Message: "busy"}, now)
		wantErr(t, err, nil)
		if *v.(*OrderResult) != (OrderResult{o.ID, Declined}) {
			t.Errorf("result = %+v", v)
		}
		if *o.Decline != (Note{Reason: "capacity", Message: "busy", At: now}) {
			t.Errorf("decline = %+v", o.Decline)
		}
	})
	for _, from := range []OrderState{AwaitingApproval, InProgress, Delivered, RevisionReview} {
		t.Run("flag from "+string(from), func(t *testing.T) {
			_, ta, h, o := orderAt(t, from)
			now := t0.Add(time.Hour)
			v, _, err := ta.flag(&Flag{Key: h, OrderID: o.ID, Reason: "illegal", Message: "m"},
				now)
			wantErr(t, err, nil)
			if *v.(*OrderResult) != (OrderResult{o.ID, Flagged}) {
				t.Errorf("result = %+v", v)
			}
			if o.FlaggedFrom != from {
				t.Errorf("FlaggedFrom = %s, want %s", o.FlaggedFrom, from)
			}
			if *o.Flag != (Note{Reason: "illegal", Message: "m", At: now}) {
				t.Errorf("flag = %+v", o.Flag)
			}
		})
	}
}

func TestSetStatus(t *testing.T) {
	tests := []struct {
		name        string
		orderState  OrderState
		msg         SetStatus // Key and OrderID are filled in; OrderID "mine" means the order
		want        error
		wantStatus  AgentStatus
		wantChanges string
		wantPercent int // -1: no progress expected on the order
	}{
		{"status only", InProgress, SetStatus{Status: Paused}, nil, Paused, "PutAgent", -1},
		{"nothing", InProgress, SetStatus{}, nil, Active, "", -1},
		{"progress only", InProgress, SetStatus{OrderID: "mine", Progress: 50, Message: "half"},
			nil, Active, "PutProgress", 50},
		{"status and progress", InProgress, SetStatus{Status: Paused, OrderID: "mine",
			Progress: 100}, nil, Paused, "PutAgent PutProgress", 100},
		{"unknown order with status", InProgress, SetStatus{Status: Paused,
			OrderID: "ord_unknown", Progress: 10}, ErrNotFound, Active, "", -1},
		{"other agent's order", InProgress, SetStatus{Status: Paused,
			OrderID: "other", Progress: 10}, ErrNotFound, Active, "", -1},
		{"delivered order with status", Delivered, SetStatus{Status: Paused, OrderID: "mine",
			Progress: 10}, ErrInvalidState, Active, "", -1},
		{"awaiting order with status", AwaitingApproval, SetStatus{Status: Paused,
			OrderID: "mine", Progress: 10}, ErrInvalidState, Active, "", -1},
		{"released order", Released, SetStatus{OrderID: "mine", Progress: 10},
			ErrInvalidState, Active, "", -1},
		{"wrong key", InProgress, SetStatus{Status: Paused, OrderID: "mine", Progress: 10},
			ErrKeyUnknown, Active, "", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ta, h, o := orderAt(t, tc.orderState)
			m := tc.msg
			m.Key = h
			switch m.OrderID {
			case "mine":
				m.OrderID = o.ID
			case "other":
				m.OrderID = idWithSeq(OrderPrefix, NewAgentID(), 1)
			}
			if tc.want == ErrKeyUnknown {
				m.Key = HashSecret("wrong")
			}
			before := encodeOrder(t, o)
			now := t0.Add(time.Hour)
			v, changes, err := ta.setStatus(&m, now)
			wantErr(t, err, tc.want)
			if ta.state.Status != tc.wantStatus {
				t.Errorf("status = %s, want %s", ta.state.Status, tc.wantStatus)
			}
			if kinds(changes) != tc.wantChanges {
				t.Errorf("changes = %q, want %q", kinds(changes), tc.wantChanges)
			}
			if tc.wantPercent < 0 {
				if o.Progress != nil || encodeOrder(t, o) != before {
					t.Errorf("order changed: %+v", o)
				}
			} else {
				want := Progress{Percent: tc.wantPercent, Message: m.Message, At: now}
				if o.Progress == nil || *o.Progress != want || !o.UpdatedAt.Equal(now) {
					t.Errorf("progress = %+v, want %+v", o.Progress, want)
				}
				stored := changes[len(changes)-1].(PutProgress)
				if stored != (PutProgress{AgentID: ta.state.ID, OrderID: o.ID, Progress: want}) {
					t.Errorf("stored %+v, want the order's progress", stored)
				}
			}
			if tc.want != nil {
				if v != nil {
					t.Errorf("reply = %+v", v)
				}
				return
			}
			res := v.(*SetStatusResult)
			if res.AgentID != ta.state.ID || res.Status != tc.wantStatus {
				t.Errorf("reply = %+v", res)
			}
			if tc.wantPercent >= 0 {
				if res.OrderID != o.ID || res.Progress == nil ||
					res.Progress.Percent != tc.wantPercent {
					t.Fatalf("reply = %+v", res)
				}
				res.Progress.Percent = -5 // the reply must not alias the order
				if o.Progress.Percent != tc.wantPercent {
					t.Errorf("reply aliases the order's progress")
				}
			} else if res.OrderID != "" || res.Progress != nil {
				t.Errorf("reply = %+v, want no order", res)
			}
		})
	}
}

func TestPausedAgentGetsNoOrdersButWorks(t *testing.T) {
	_, ta, h, o := orderAt(t, InProgress)
	now := t0.Add(time.Hour)
	if _, _, err := ta.setStatus(&SetStatus{Key: h, Status: Paused}, now); err != nil {
		t.Fatal(err)
	}
	_, _, err := ta.placeOrder(&PlaceOrder{Gig: "g", Deadline: now.Add(time.Hour)}, now)
	wantErr(t, err, ErrAgentPaused)
	if _, _, err := ta.poll(&Poll{Key: h}, now); err != nil {
		t.Errorf("paused agent cannot poll: %v", err)
	}
	if _, _, err := ta.deliver(&Deliver{Key: h, OrderID: o.ID, Text: "x"}, now); err != nil {
		t.Errorf("paused agent cannot deliver: %v", err)
	}
	if _, _, err := ta.setStatus(&SetStatus{Key: h, Status: Active}, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ta.placeOrder(&PlaceOrder{Gig: "g", Deadline: now.Add(time.Hour)},
		now); err != nil {
		t.Errorf("active again, placeOrder: %v", err)
	}
}

func TestDecide(t *testing.T) {
	type outcome struct {
		to       OrderState
		changes  string
		event    EventKind // "" for none
		refunded bool
		reason   string // of the transition
	}
	// want is what an allowed owner decision does, by action and state.
	want := func(act Action, from OrderState) outcome {
		switch {
		case act == ActApprove && from == RevisionReview:
			return outcome{InProgress, "PutOrder PutEvent PutAgent", RevisionRequest, false,
				"revision 1"}
		case act == ActApprove:
			return outcome{InProgress, "PutOrder PutEvent PutAgent", OwnerApprovedOrder, false,
				"because"}
		case act == ActDeny && from == RevisionReview:
			return outcome{Delivered, "PutOrder", "", false, "because"}
		case act == ActDeny:
			return outcome{Denied, "PutOrder PutEvent PutAgent", OwnerDeniedOrder, true,
				"because"}
		case act == ActRelease:
			return outcome{Released, "PutOrder", "", false, "because"}
		case act == ActRefund:
			return outcome{Refunded, "PutOrder", "", true, "because"}
		case act == ActUnflag:
			// back to forceState's FlaggedFrom
			return outcome{InProgress, "PutOrder", "", false, "because"}
		}
		panic("no outcome for " + act)
	}
	for _, act := range []Action{ActApprove, ActDeny, ActRelease, ActRefund, ActUnflag} {
		for _, s := range OrderStates {
			allowed := slices.Contains(wantAllowed[act], s)
			t.Run(fmt.Sprintf("%s from %s", act, s), func(t *testing.T) {
				te, ta, _, o := orderAt(t, s)
				ta.events = nil // drop the new_order event
				before := encodeOrder(t, o)
				now := t0.Add(time.Hour)
				v, changes, err := ta.decide(&OwnerDecision{OrderID: o.ID, Action: act,
					Reason: "because"}, now)
				if !allowed {
					wantErr(t, err, ErrInvalidState)
					if !strings.Contains(err.Error(), " is "+string(s)) {
						t.Errorf("error %q does not name state %s", err, s)
					}
					if v != nil || changes != nil || encodeOrder(t, o) != before ||
						len(ta.events) != 0 {
						t.Errorf("refused decision changed something")
					}
					return
				}
				wantErr(t, err, nil)
				w := want(act, s)
				if *v.(*OrderResult) != (OrderResult{o.ID, w.to}) {
					t.Errorf("result = %+v", v)
				}
				if kinds(changes) != w.changes {
					t.Errorf("changes = %s, want %s", kinds(changes), w.changes)
				}
				last := o.History[len(o.History)-1]
				wantT := Transition{At: now, From: s, To: w.to, By: ByOwner, Reason: w.reason}
				if last != wantT {
					t.Errorf("transition = %+v", last)
				}
				if w.refunded != (o.Refund != nil) {
					t.Errorf("refund = %+v, want one: %v", o.Refund, w.refunded)
				}
				if o.State != Flagged && o.FlaggedFrom != "" && act == ActUnflag {
					t.Errorf("FlaggedFrom kept after unflag: %s", o.FlaggedFrom)
				}
				if o.PendingRevision != nil && s == RevisionReview &&
					(act == ActApprove || act == ActDeny) {
					t.Errorf("PendingRevision kept after %s", act)
				}
				if w.event == "" {
					if len(ta.events) != 0 {
						t.Errorf("queued %+v", ta.events)
					}
					return
				}
				if len(ta.events) != 1 {
					t.Fatalf("queue = %+v", ta.events)
				}
				ev := ta.events[0]
				if ev.Kind != w.event || ev.OrderID != o.ID || ev.Order.State != w.to ||
					!ev.CreatedAt.Equal(now) || ev.Seq != 2 {
					t.Errorf("event = %+v", ev)
				}
				wantReason := ""
				if act == ActDeny {
					wantReason = "because"
				}
				if ev.Reason != wantReason {
					t.Errorf("event reason = %q, want %q", ev.Reason, wantReason)
				}
				queued, _, _ := te.obs.counts()
				if queued[w.event] != 1 {
					t.Errorf("observer queued = %v", queued)
				}
			})
		}
	}
}

// TestDenyRefundNoteIsStructured: a refund note carries a structured reason with the owner's
// text as its message, as ActRefund records it ({owner_refund, text}).
func TestDenyRefundNoteIsStructured(t *testing.T) {
	_, ta, _, o := orderAt(t, AwaitingApproval)
	now := t0.Add(time.Hour)
	if _, _, err := ta.decide(&OwnerDecision{OrderID: o.ID, Action: ActDeny,
		Reason: "we are closed this week"}, now); err != nil {
		t.Fatal(err)
	}
	want := Note{Reason: "owner_denied", Message: "we are closed this week", At: now}
	if o.Refund == nil || *o.Refund != want {
		t.Errorf("deny refund note = %+v, want %+v", o.Refund, want)
	}
}

func TestDecideRefused(t *testing.T) {
	tests := []struct {
		name string
		id   string // "" for the order
		act  Action
		want error
	}{
		{"unknown order", "ord_unknown", ActRefund, ErrNotFound},
		{"agent action is not an owner decision", "", ActDeliver, ErrInvalidRequest},
		{"flag is not an owner decision", "", ActFlag, ErrInvalidRequest},
		{"progress is not an owner decision", "", ActProgress, ErrInvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ta, _, o := orderAt(t, InProgress)
			id := tc.id
			if id == "" {
				id = o.ID
			}
			before := encodeOrder(t, o)
			v, changes, err := ta.decide(&OwnerDecision{OrderID: id, Action: tc.act}, t0)
			wantErr(t, err, tc.want)
			if v != nil || changes != nil || encodeOrder(t, o) != before {
				t.Errorf("changed something")
			}
		})
	}
}

func TestRevokeKey(t *testing.T) {
	te := newTestEnv(journalSync)
	s := defaultSettings()
	s.KeyTTLSeconds = 3600
	ta := newTestAgent(te, s)
	steps := []struct {
		name    string
		do      func() (any, []Change, error)
		want    error
		wantReg int64
	}{
		{"revoke without key", func() (any, []Change, error) { return ta.revokeKey(t0) },
			ErrInvalidState, 0},
		{"register", func() (any, []Change, error) {
			return ta.register(&Register{Bootstrap: HashSecret(ta.bootstrap)}, t0)
		}, nil, 1},
		{"revoke live key", func() (any, []Change, error) {
			return ta.revokeKey(t0.Add(time.Minute))
		}, nil, 0},
		{"revoke twice", func() (any, []Change, error) {
			return ta.revokeKey(t0.Add(2 * time.Minute))
		}, ErrInvalidState, 0},
		{"register with a new token", func() (any, []Change, error) {
			v, _, _ := ta.mintBootstrap(&MintBootstrap{TTL: time.Hour}, t0.Add(3*time.Minute))
			_, secret, _ := ParseCredential(BootstrapPrefix, v.(*BootstrapResult).BootstrapToken)
			return ta.register(&Register{Bootstrap: HashSecret(secret)}, t0.Add(3*time.Minute))
		}, nil, 1},
		{"revoke expired key", func() (any, []Change, error) {
			return ta.revokeKey(t0.Add(3*time.Minute + time.Hour))
		}, nil, 0},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			v, changes, err := st.do()
			wantErr(t, err, st.want)
			if got := te.Registered.Load(); got != st.wantReg {
				t.Errorf("Registered = %d, want %d", got, st.wantReg)
			}
			if st.want != nil {
				if changes != nil {
					t.Errorf("changes = %s", kinds(changes))
				}
				return
			}
			if kinds(changes) != "PutAgent" {
				t.Errorf("changes = %s", kinds(changes))
			}
			if res, ok := v.(*RevokeKeyResult); ok {
				if res.AgentID != ta.state.ID || !ta.state.Key.Revoked ||
					!changes[0].(PutAgent).State.Key.Revoked {
					t.Errorf("revoke result %+v, key %+v", res, ta.state.Key)
				}
			}
		})
	}
	_, _, err := ta.revokeKey(t0)
	if err == nil || !strings.Contains(err.Error(), string(KeyRevoked)) {
		t.Errorf("revoke error %v does not name the key state", err)
	}
}

func TestRevokeDoesNotAliasStoredState(t *testing.T) {
	ta := newTestAgent(newTestEnv(journalSync), defaultSettings())
	_, _, err := ta.register(&Register{Bootstrap: HashSecret(ta.bootstrap)}, t0)
	wantErr(t, err, nil)
	// A PutAgent handed to the journal earlier must not see the revocation.
	earlier := PutAgent{State: ta.state}
	if _, _, err := ta.revokeKey(t0); err != nil {
		t.Fatal(err)
	}
	if earlier.State.Key.Revoked {
		t.Error("revokeKey modified a key shared with an earlier change")
	}
}

func TestMintBootstrap(t *testing.T) {
	te := newTestEnv(journalSync)
	ta := newTestAgent(te, defaultSettings())
	old := ta.bootstrap
	now := t0.Add(time.Minute)
	v, changes, err := ta.mintBootstrap(&MintBootstrap{TTL: 2 * time.Hour}, now)
	wantErr(t, err, nil)
	res := v.(*BootstrapResult)
	id, secret, ok := ParseCredential(BootstrapPrefix, res.BootstrapToken)
	if !ok || id != ta.state.ID || res.AgentID != ta.state.ID {
		t.Fatalf("token %q does not parse", res.BootstrapToken)
	}
	if !res.BootstrapExpires.Equal(now.Add(2*time.Hour)) || kinds(changes) != "PutAgent" {
		t.Errorf("expires %v, changes %s", res.BootstrapExpires, kinds(changes))
	}
	if secret == old {
		t.Fatal("same secret minted twice")
	}
	_, _, err = ta.register(&Register{Bootstrap: HashSecret(old)}, now)
	wantErr(t, err, ErrBootstrapUnknown)

	// The old token stays unknown after a second mint, and so does the first new one.
	v, _, _ = ta.mintBootstrap(&MintBootstrap{TTL: time.Hour}, now)
	_, secret2, _ := ParseCredential(BootstrapPrefix, v.(*BootstrapResult).BootstrapToken)
	for _, s := range []string{old, secret} {
		_, _, err = ta.register(&Register{Bootstrap: HashSecret(s)}, now)
		wantErr(t, err, ErrBootstrapUnknown)
	}
	_, _, err = ta.register(&Register{Bootstrap: HashSecret(secret2)}, now)
	wantErr(t, err, nil)
}

func TestGetOrderIsDeepCopy(t *testing.T) {
	_, ta, h, o := orderAt(t, InProgress)
	if _, _, err := ta.deliver(&Deliver{Key: h, OrderID: o.ID, Text: "t",
		URLs:  []string{"https://a.example"},
		Files: []File{{FileMeta{Name: "f", Size: 1, SHA256: "s"}, []byte("x")}}},
		t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	o.Progress = &Progress{Percent: 5, At: t0}
	o.Decline = &Note{Reason: "d"}
	o.Flag = &Note{Reason: "f"}
	o.Refund = &Note{Reason: "r"}
	before := encodeOrder(t, o)

	v, changes, err := ta.getOrder(&GetOrder{OrderID: o.ID})
	wantErr(t, err, nil)
	c := v.(*Order)
	if c == o || encodeOrder(t, c) != before || changes != nil {
		t.Fatalf("copy differs or is the same pointer")
	}
	c.State = Released
	c.Deliveries[0].URLs[0] = "https://evil.example"
	c.Deliveries[0].Files[0].Name = "evil"
	c.Deliveries[0].Text = "evil"
	c.Deliveries = append(c.Deliveries, Delivery{N: 9})
	c.History[0].By = "evil"
	c.History = append(c.History, Transition{By: "evil"})
	c.Progress.Percent = 99
	c.Decline.Reason, c.Flag.Reason, c.Refund.Reason = "evil", "evil", "evil"
	if after := encodeOrder(t, o); after != before {
		t.Errorf("mutating the copy changed the order:\nbefore %s\nafter  %s", before, after)
	}

	_, _, err = ta.getOrder(&GetOrder{OrderID: "ord_unknown"})
	wantErr(t, err, ErrNotFound)
}

func TestHistoryRecordsEveryTransition(t *testing.T) {
	type step struct {
		at  time.Duration // after t0
		run func(ta *testAgent, h SecretHash, id string, now time.Time) error
	}
	owner := func(act Action) func(*testAgent, SecretHash, string, time.Time) error {
		return func(ta *testAgent, _ SecretHash, id string, now time.Time) error {
			_, _, err := ta.decide(&OwnerDecision{OrderID: id, Action: act,
				Reason: "r-" + string(act)}, now)
			return err
		}
	}
	agentDo := func(act Action) func(*testAgent, SecretHash, string, time.Time) error {
		i := slices.IndexFunc(agentActions, func(aa agentAction) bool { return aa.act == act })
		return func(ta *testAgent, h SecretHash, id string, now time.Time) error {
			_, _, err := agentActions[i].run(ta, h, id, now)
			return err
		}
	}
	// tr builds an expected transition at t0 + sec seconds.
	tr := func(sec int, from, to OrderState, by, reason string) Transition {
		return Transition{At: t0.Add(time.Duration(sec) * time.Second), From: from, To: to,
			By: by, Reason: reason}
	}
	tests := []struct {
		name   string
		manual bool
		steps  []step
		want   []Transition
	}{
		{"approve, deliver, release", true,
			[]step{{10, owner(ActApprove)}, {20, agentDo(ActDeliver)}, {30, owner(ActRelease)}},
			[]Transition{
				tr(0, "", AwaitingApproval, ByCustomer, "placed"),
				tr(10, AwaitingApproval, InProgress, ByOwner, "r-approve"),
				tr(20, InProgress, Delivered, ByAgent, ""),
				tr(30, Delivered, Released, ByOwner, "r-release"),
			}},
		{"progress, flag, refund", false,
			[]step{{10, agentDo(ActProgress)}, {20, agentDo(ActFlag)}, {30, owner(ActRefund)}},
			[]Transition{
				tr(0, "", InProgress, ByCustomer, "placed"),
				tr(20, InProgress, Flagged, ByAgent, "illegal"),
				tr(30, Flagged, Refunded, ByOwner, "r-refund"),
			}},
		{"deny", true, []step{{10, owner(ActDeny)}},
			[]Transition{
				tr(0, "", AwaitingApproval, ByCustomer, "placed"),
				tr(10, AwaitingApproval, Denied, ByOwner, "r-deny"),
			}},
		{"decline", false, []step{{10, agentDo(ActDecline)}},
			[]Transition{
				tr(0, "", InProgress, ByCustomer, "placed"),
				tr(10, InProgress, Declined, ByAgent, "capacity"),
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := defaultSettings()
			s.ManualAcceptance = tc.manual
			ta := newTestAgent(newTestEnv(journalSync), s)
			_, h := ta.mustRegister(t, t0)
			id := ta.mustPlace(t, t0)
			for _, st := range tc.steps {
				if err := st.run(ta, h, id, t0.Add(st.at*time.Second)); err != nil {
					t.Fatalf("step at +%ds: %v", st.at, err)
				}
			}
			o := ta.orders[id]
			if !slices.Equal(o.History, tc.want) {
				t.Errorf("history:\n got %+v\nwant %+v", o.History, tc.want)
			}
			last := tc.want[len(tc.want)-1]
			if o.State != last.To || !o.UpdatedAt.Equal(last.At) || !o.State.Final() {
				t.Errorf("state %s updated %v, last transition %+v", o.State, o.UpdatedAt, last)
			}
		})
	}
}

func TestInfo(t *testing.T) {
	te := newTestEnv(journalSync)
	s := defaultSettings()
	s.KeyTTLSeconds = 7200
	ta := newTestAgent(te, s)
	v, _, _ := ta.info(t0)
	info := v.(*AgentInfo)
	if info.KeyState != KeyNone || info.Online || !info.LastPoll.IsZero() ||
		len(info.Orders) != len(OrderStates) || !info.KeyExpires.IsZero() {
		t.Errorf("fresh info = %+v", info)
	}
	_, h := ta.mustRegister(t, t0)
	ta.mustPlace(t, t0)
	ta.mustPlace(t, t0)
	pollAt := t0.Add(time.Minute)
	if _, _, err := ta.poll(&Poll{Key: h}, pollAt); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ta.drain(&Drain{Key: h, UpTo: 2}, pollAt); err != nil {
		t.Fatal(err)
	}
	ta.mustPlace(t, pollAt)
	tests := []struct {
		name       string
		now        time.Time
		wantOnline bool
		wantKey    KeyState
	}{
		{"just polled", pollAt, true, KeyActive},
		{"1ns before the window ends", pollAt.Add(testWindow - 1), true, KeyActive},
		{"window ended", pollAt.Add(testWindow), false, KeyActive},
		{"key expired", t0.Add(2 * time.Hour), false, KeyExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, changes, err := ta.info(tc.now)
			wantErr(t, err, nil)
			info := v.(*AgentInfo)
			if info.Online != tc.wantOnline || info.KeyState != tc.wantKey ||
				info.EventsQueued != 1 || info.Orders[InProgress] != 3 ||
				info.Orders[Delivered] != 0 || !info.LastPoll.Equal(pollAt) ||
				!info.KeyExpires.Equal(t0.Add(2*time.Hour)) || changes != nil {
				t.Errorf("info = %+v", info)
			}
		})
	}
}

func TestSkillOverridesAreNeverModified(t *testing.T) {
	ta := newTestAgent(newTestEnv(journalSync), defaultSettings())
	_, h := ta.mustRegister(t, t0)
	v, _, err := ta.getSkill(&GetSkill{Key: h}, t0)
	wantErr(t, err, nil)
	first := v.(*SkillSource)
	_, changes, err := ta.putSkill(&PutSkill{File: "RULES.md", Content: "one"})
	wantErr(t, err, nil)
	if kinds(changes) != "PutSkillFile" {
		t.Errorf("changes = %s", kinds(changes))
	}
	v, _, _ = ta.getSkill(&GetSkill{Owner: true}, t0)
	second := v.(*SkillSource)
	ta.putSkill(&PutSkill{File: "RULES.md", Content: "two"})
	if first.Overrides != nil || second.Overrides["RULES.md"] != "one" {
		t.Errorf("handed-out overrides changed: %v, %v", first.Overrides, second.Overrides)
	}
	if second.AgentID != ta.state.ID || second.Name != "Test Bot" || second.PollMinutes != 20 {
		t.Errorf("source = %+v", second)
	}
	_, _, err = ta.getSkill(&GetSkill{Key: HashSecret("x")}, t0)
	wantErr(t, err, ErrKeyUnknown)
}
