package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// Shared fakes for the actors tests: a clock, a journal, an observer, an Env and agent builders.

// t0 is the fake clock's start: a whole second, so tests can reason about second boundaries.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const testRules = "RULES: be nice"

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// journalMode says how the fake journal answers an Append.
type journalMode int

const (
	journalSync  journalMode = iota // done(nil) before Append returns
	journalAsync                    // done(nil) on another goroutine, as the real journal does
	journalFail                     // done(errJournal) on another goroutine
	journalHold                     // done kept until release
	journalPanic                    // Append panics, outside any handler's recover
	journalBlock                    // Append blocks until unblock (breaks the contract on purpose)
)

var errJournal = errors.New("fake journal: disk on fire")

// fakeJournal records what was appended. Orders are cloned at Append, as the real journal
// encodes them then, so later changes by the actor do not show in the record.
type fakeJournal struct {
	mu      sync.Mutex
	mode    journalMode
	batches [][]Change
	held    []func(error)
	unblock chan struct{}
}

func newFakeJournal(mode journalMode) *fakeJournal {
	return &fakeJournal{mode: mode, unblock: make(chan struct{})}
}

func (j *fakeJournal) Append(changes []Change, done func(error)) {
	rec := make([]Change, len(changes))
	for i, c := range changes {
		switch c := c.(type) {
		case PutOrder:
			rec[i] = PutOrder{Order: c.Order.clone()}
		case PutEvent:
			ev := *c.Event
			rec[i] = PutEvent{AgentID: c.AgentID, Event: &ev}
		default:
			rec[i] = c
		}
	}
	j.mu.Lock()
	j.batches = append(j.batches, rec)
	mode, unblock := j.mode, j.unblock
	if mode == journalHold {
		j.held = append(j.held, done)
	}
	j.mu.Unlock()

	switch mode {
	case journalPanic:
		panic("journal broke")
	case journalSync:
		done(nil)
	case journalAsync:
		go done(nil)
	case journalFail:
		go done(errJournal)
	case journalBlock:
		<-unblock
		go done(nil)
	}
}

// swapUnblock gives later blocked Appends a new channel and returns the one earlier ones wait on.
func (j *fakeJournal) swapUnblock() chan struct{} {
	j.mu.Lock()
	defer j.mu.Unlock()
	old := j.unblock
	j.unblock = make(chan struct{})
	return old
}

func (j *fakeJournal) setMode(m journalMode) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.mode = m
}

// release answers every held Append with err.
func (j *fakeJournal) release(err error) {
	j.mu.Lock()
	held := j.held
	j.held = nil
	j.mu.Unlock()
	for _, done := range held {
		done(err)
	}
}

func (j *fakeJournal) recorded() [][]Change {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([][]Change(nil), j.batches...)
}

// countingObserver counts what the agents report. Safe for concurrent use.
type countingObserver struct {
	mu        sync.Mutex
	queued    map[EventKind]int
	delivered map[EventKind]int
	moved     map[string]int // "from->to"
}

func newCountingObserver() *countingObserver {
	return &countingObserver{
		queued: map[EventKind]int{}, delivered: map[EventKind]int{}, moved: map[string]int{},
	}
}

func (o *countingObserver) EventQueued(k EventKind) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.queued[k]++
}

func (o *countingObserver) EventDelivered(k EventKind) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.delivered[k]++
}

func (o *countingObserver) OrderMoved(from, to OrderState) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.moved[string(from)+"->"+string(to)]++
}

func (o *countingObserver) counts() (queued, delivered map[EventKind]int, moved map[string]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	cp := func(m map[EventKind]int) map[EventKind]int {
		c := make(map[EventKind]int, len(m))
		for k, v := range m {
			c[k] = v
		}
		return c
	}
	mv := make(map[string]int, len(o.moved))
	for k, v := range o.moved {
		mv[k] = v
	}
	return cp(o.queued), cp(o.delivered), mv
}

const testWindow = time.Hour

// testEnv bundles an Env with the fakes behind it.
type testEnv struct {
	*Env
	clock   *fakeClock
	journal *fakeJournal
	obs     *countingObserver
}

func newTestEnv(mode journalMode) *testEnv {
	clock := newFakeClock(t0)
	te := &testEnv{clock: clock, journal: newFakeJournal(mode), obs: newCountingObserver()}
	te.Env = &Env{
		Now: clock.Now, Journal: te.journal, Online: NewOnlineTracker(testWindow, t0),
		OnlineWindow: testWindow, Observer: te.obs, Log: slog.New(slog.DiscardHandler),
		Rules: func(SkillSource) string { return testRules },
	}
	return te
}

// testAgent is an agent built for direct handler calls, with its bootstrap secret.
type testAgent struct {
	*agent
	fleet     *Fleet // only for the Ref's heartbeat queue; it runs no actors
	bootstrap string
}

func defaultSettings() Settings {
	return Settings{Name: "Test Bot", Owner: "owner@example.com", PollMinutes: 20, RevisionCap: 2}
}

// newTestAgent builds an agent with a bootstrap token valid for a week from t0.
func newTestAgent(te *testEnv, s Settings) *testAgent {
	id := NewAgentID()
	secret := NewSecret()
	state := AgentState{
		ID: id, Settings: s, Status: Active, CreatedAt: t0,
		Bootstrap: &BootstrapToken{Hash: HashSecret(secret),
			ExpiresAt: t0.Add(7 * 24 * time.Hour)},
	}
	f := NewFleet(nil, te.Env)
	return &testAgent{agent: &newRef(f, &Snapshot{State: state}).agent, fleet: f,
		bootstrap: secret}
}

// mustRegister redeems the agent's bootstrap token and returns the key and its secret's hash.
func (ta *testAgent) mustRegister(t testing.TB, now time.Time) (string, SecretHash) {
	t.Helper()
	v, _, err := ta.register(&Register{Bootstrap: HashSecret(ta.bootstrap)}, now)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	key := v.(*RegisterResult).APIKey
	_, secret, ok := ParseCredential(KeyPrefix, key)
	if !ok {
		t.Fatalf("register returned unparsable key %q", key)
	}
	return key, HashSecret(secret)
}

// mustMintBootstrap mints a bootstrap token valid for an hour and makes it the one
// mustRegister uses.
func (ta *testAgent) mustMintBootstrap(t testing.TB, now time.Time) {
	t.Helper()
	v, _, err := ta.mintBootstrap(&MintBootstrap{TTL: time.Hour}, now)
	if err != nil {
		t.Fatalf("mint bootstrap: %v", err)
	}
	_, secret, ok := ParseCredential(BootstrapPrefix, v.(*BootstrapResult).BootstrapToken)
	if !ok {
		t.Fatalf("unparsable bootstrap token %q", v.(*BootstrapResult).BootstrapToken)
	}
	ta.bootstrap = secret
}

// mustPlace places an order due in a day and returns its id.
func (ta *testAgent) mustPlace(t testing.TB, now time.Time) string {
	t.Helper()
	v, _, err := ta.placeOrder(&PlaceOrder{
		Gig: "logo", Scope: "one logo", Tier: "basic", Brief: "a cat", Price: 100,
		Deadline: now.Add(24 * time.Hour),
	}, now)
	if err != nil {
		t.Fatalf("placeOrder: %v", err)
	}
	return v.(*OrderResult).OrderID
}

// forceState puts an order into a state directly, with what that state implies: a flagged order
// was in progress, an order in revision review has a pending revision.
func (ta *testAgent) forceState(t testing.TB, id string, s OrderState) *Order {
	t.Helper()
	o, ok := ta.orders[id]
	if !ok {
		t.Fatalf("no order %s", id)
	}
	o.State = s
	switch s {
	case Flagged:
		o.FlaggedFrom = InProgress
	case RevisionReview:
		o.PendingRevision = &Note{Reason: "revision", Message: "more cats", At: t0}
	}
	return o
}

// kinds names the changes' types, e.g. "PutOrder PutEvent PutAgent".
func kinds(changes []Change) string {
	names := make([]string, len(changes))
	for i, c := range changes {
		names[i] = strings.TrimPrefix(fmt.Sprintf("%T", c), "actors.")
	}
	return strings.Join(names, " ")
}

// wantErr checks err against a sentinel (nil: no error).
func wantErr(t testing.TB, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("error = %v, want %v", err, want)
	}
}
