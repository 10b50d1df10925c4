package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

const askTimeout = 5 * time.Second

// newTestFleet returns a fleet in a real actor system with quiet logs. It is stopped at the end.
func newTestFleet(t testing.TB, mode journalMode) (*Fleet, *testEnv) {
	t.Helper()
	te := newTestEnv(mode)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	f := NewFleet(system, te.Env)
	t.Cleanup(func() {
		te.journal.release(nil)
		if err := f.StopAll(askTimeout); err != nil {
			t.Errorf("cleanup StopAll: %v", err)
		}
		system.Shutdown()
	})
	return f, te
}

// spawnAgent spawns an agent with a fresh bootstrap token and returns its id and token secret.
func spawnAgent(t testing.TB, f *Fleet) (string, string) {
	t.Helper()
	id, secret := NewAgentID(), NewSecret()
	err := f.Add(&Snapshot{State: AgentState{
		ID: id, Settings: defaultSettings(), Status: Active, CreatedAt: t0,
		Bootstrap: &BootstrapToken{Hash: HashSecret(secret), ExpiresAt: t0.Add(time.Hour)},
	}})
	if err != nil {
		t.Fatalf("spawn: %v", err)
	}
	return id, secret
}

// spawnRegistered spawns an agent and registers it through Ask; it returns the key's hash.
func spawnRegistered(t testing.TB, f *Fleet) (string, SecretHash) {
	t.Helper()
	id, secret := spawnAgent(t, f)
	v, err := f.Ask(id, &Register{Bootstrap: HashSecret(secret)}, askTimeout)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	_, keySecret, ok := ParseCredential(KeyPrefix, v.(*RegisterResult).APIKey)
	if !ok {
		t.Fatalf("bad key %q", v.(*RegisterResult).APIKey)
	}
	return id, HashSecret(keySecret)
}

func TestFleetAskRoundTrip(t *testing.T) {
	f, te := newTestFleet(t, journalAsync)
	id, h := spawnRegistered(t, f)
	if f.Size() != 1 || f.Env() != te.Env {
		t.Fatalf("size %d", f.Size())
	}
	steps := []struct {
		name    string
		msg     any
		check   func(t *testing.T, v any)
		batches int // journal batches after the step
	}{
		{"info", &GetAgent{}, func(t *testing.T, v any) {
			if info := v.(*AgentInfo); info.AgentID != id || info.KeyState != KeyActive {
				t.Errorf("info = %+v", info)
			}
		}, 1},
		{"empty poll", &Poll{Key: h}, func(t *testing.T, v any) {
			if res := v.(*PollResult); len(res.Events) != 0 {
				t.Errorf("poll = %+v", res)
			}
		}, 1},
		{"place order", &PlaceOrder{Gig: "g", Price: 1, Deadline: t0.Add(time.Hour)},
			func(t *testing.T, v any) {
				if res := v.(*OrderResult); res.OrderID != idWithSeq(OrderPrefix, id, 1) {
					t.Errorf("order = %+v", res)
				}
			}, 2},
		{"poll with the event", &Poll{Key: h}, func(t *testing.T, v any) {
			if res := v.(*PollResult); len(res.Events) != 1 || res.Rules != testRules {
				t.Errorf("poll = %+v", res)
			}
		}, 3},
		{"drain", &Drain{Key: h, UpTo: 1}, func(t *testing.T, v any) {}, 4},
		{"poll after the drain", &Poll{Key: h}, func(t *testing.T, v any) {
			if res := v.(*PollResult); len(res.Events) != 0 {
				t.Errorf("poll = %+v", res)
			}
		}, 4},
		{"deliver", &Deliver{Key: h, OrderID: idWithSeq(OrderPrefix, id, 1), Text: "x"},
			func(t *testing.T, v any) {
				if res := v.(*DeliverResult); res.State != Delivered {
					t.Errorf("deliver = %+v", res)
				}
			}, 5},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			v, err := f.Ask(id, st.msg, askTimeout)
			if err != nil {
				t.Fatalf("ask: %v", err)
			}
			st.check(t, v)
			if got := len(te.journal.recorded()); got != st.batches {
				t.Errorf("journal batches = %d, want %d", got, st.batches)
			}
		})
	}
	var got []string
	for _, b := range te.journal.recorded() {
		got = append(got, kinds(b))
	}
	want := []string{"PutAgent", "PutOrder PutEvent PutAgent", "Barrier", "DeleteEvent",
		"PutOrder"}
	if !slices.Equal(got, want) {
		t.Errorf("journal = %q, want %q", got, want)
	}
}

func TestFleetAskErrors(t *testing.T) {
	f, te := newTestFleet(t, journalSync)
	id, h := spawnRegistered(t, f)
	tests := []struct {
		name string
		id   string
		msg  any
		mode journalMode
		want error
	}{
		{"unknown agent", NewAgentID(), &GetAgent{}, journalSync, ErrNoAgent},
		{"empty id", "", &GetAgent{}, journalSync, ErrNoAgent},
		{"malformed id", id + "x", &GetAgent{}, journalSync, ErrNoAgent},
		{"id without prefix", id[len(AgentPrefix):], &GetAgent{}, journalSync, ErrNoAgent},
		{"handler error", id, &Poll{Key: HashSecret("x")}, journalSync, ErrKeyUnknown},
		{"journal failure", id, &PutSkill{File: "RULES.md", Content: "x"}, journalFail,
			ErrUnavailable},
		{"journal failure keeps its cause", id, &PutSkill{File: "RULES.md"}, journalFail,
			errJournal},
		{"no answer in time", id, &PutSkill{File: "RULES.md"}, journalHold, ErrUnavailable},
		{"after a timeout the agent answers again", id, &Poll{Key: h}, journalSync, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			te.journal.setMode(tc.mode)
			before := len(te.journal.recorded())
			timeout := askTimeout
			if tc.mode == journalHold {
				timeout = 50 * time.Millisecond
			}
			v, err := f.Ask(tc.id, tc.msg, timeout)
			wantErr(t, err, tc.want)
			if tc.want != nil && v != nil {
				t.Errorf("value %v with error", v)
			}
			if errors.Is(tc.want, ErrKeyUnknown) && len(te.journal.recorded()) != before {
				t.Errorf("a refused request reached the journal")
			}
		})
	}
}

// TestFleetLateAnswerIsNotReused: an Ask that timed out leaves its channel to the late answer;
// later Asks must each get their own answer, never that one.
func TestFleetLateAnswerIsNotReused(t *testing.T) {
	f, te := newTestFleet(t, journalHold)
	id, _ := spawnAgent(t, f)
	if _, err := f.Ask(id, &PutSkill{File: "RULES.md", Content: "x"},
		20*time.Millisecond); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("held ask: %v", err)
	}
	te.journal.setMode(journalSync)
	te.journal.release(nil) // the late answer: (nil, nil)
	for i := range 200 {
		v, err := f.Ask(id, &GetAgent{}, askTimeout)
		if err != nil || v == nil {
			t.Fatalf("ask %d got (%v, %v): a stale answer", i, v, err)
		}
	}
}

func TestFleetAdd(t *testing.T) {
	t.Run("malformed id", func(t *testing.T) {
		f, _ := newTestFleet(t, journalSync)
		for _, id := range []string{"", "agt_", "agt_short", "AGT_ABCDEFGHIJKLMNOP", "agent-1"} {
			if err := f.Add(&Snapshot{State: AgentState{ID: id, Status: Active}}); err == nil {
				t.Errorf("Add(%q) succeeded", id)
			}
		}
		if f.Size() != 0 {
			t.Errorf("size = %d, want 0", f.Size())
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		f, _ := newTestFleet(t, journalSync)
		id, _ := spawnAgent(t, f)
		err := f.Add(&Snapshot{State: AgentState{ID: id, Status: Active}})
		if err == nil {
			t.Fatal("second spawn with the same id succeeded")
		}
		if f.Size() != 1 {
			t.Errorf("size = %d, want 1", f.Size())
		}
		if _, err := f.Ask(id, &GetAgent{}, askTimeout); err != nil {
			t.Errorf("first agent lost: %v", err)
		}
	})
	keyTests := []struct {
		name string
		key  *APIKey
		want int64
	}{
		{"no key", nil, 0},
		{"live key", &APIKey{Hash: HashSecret("a")}, 1},
		{"expired key", &APIKey{Hash: HashSecret("a"), ExpiresAt: t0.Add(-time.Hour)}, 1},
		{"revoked key", &APIKey{Hash: HashSecret("a"), Revoked: true}, 0},
	}
	for _, tc := range keyTests {
		t.Run("Registered with "+tc.name, func(t *testing.T) {
			f, te := newTestFleet(t, journalSync)
			lastPoll := t0.Add(-time.Minute)
			id := NewAgentID()
			if err := f.Add(&Snapshot{State: AgentState{ID: id, Status: Active, Key: tc.key},
				LastPoll: lastPoll}); err != nil {
				t.Fatal(err)
			}
			if got := te.Registered.Load(); got != tc.want {
				t.Errorf("Registered = %d, want %d", got, tc.want)
			}
			v, err := f.Ask(id, &GetAgent{}, askTimeout)
			if err != nil || !v.(*AgentInfo).LastPoll.Equal(lastPoll) {
				t.Errorf("info = %+v, %v", v, err)
			}
			if beats := f.TakeHeartbeats(nil); len(beats) != 0 {
				t.Errorf("a restored poll time is not a new heartbeat: %v", beats)
			}
		})
	}
}

func TestCreateAgent(t *testing.T) {
	tests := []struct {
		name string
		mode journalMode
		want error
	}{
		{"stored", journalAsync, nil},
		{"journal fails", journalFail, ErrUnavailable},
		{"journal does not answer in time", journalHold, ErrUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, te := newTestFleet(t, tc.mode)
			res, err := f.CreateAgent(defaultSettings(), time.Hour, 100*time.Millisecond)
			wantErr(t, err, tc.want)
			batches := te.journal.recorded()
			if len(batches) != 1 || kinds(batches[0]) != "PutAgent" {
				t.Fatalf("journal = %v", batches)
			}
			stored := batches[0][0].(PutAgent).State
			id := stored.ID
			if tc.want != nil {
				if res != nil || f.Size() != 0 {
					t.Errorf("failed create left %v, size %d", res, f.Size())
				}
				if _, err := f.Ask(id, &GetAgent{}, askTimeout); !errors.Is(err, ErrNoAgent) {
					t.Errorf("Ask after failed create: %v, want ErrNoAgent", err)
				}
				return
			}
			agentID, secret, ok := ParseCredential(BootstrapPrefix, res.BootstrapToken)
			if !ok || agentID != id || res.AgentID != id || !ValidAgentID(id) {
				t.Fatalf("result = %+v", res)
			}
			if stored.Bootstrap.Hash != HashSecret(secret) || stored.Status != Active ||
				!res.BootstrapExpires.Equal(t0.Add(time.Hour)) || !stored.CreatedAt.Equal(t0) {
				t.Errorf("stored = %+v, result %+v", stored, res)
			}
			if _, err := f.Ask(id, &Register{Bootstrap: HashSecret(secret)},
				askTimeout); err != nil {
				t.Errorf("register with the new token: %v", err)
			}
		})
	}
}

func TestFleetStopAll(t *testing.T) {
	f, _ := newTestFleet(t, journalSync)
	var ids []string
	for range 10 {
		id, _ := spawnAgent(t, f)
		ids = append(ids, id)
	}
	if err := f.StopAll(askTimeout); err != nil {
		t.Fatalf("StopAll: %v", err)
	}
	if f.Size() != 0 {
		t.Errorf("size = %d", f.Size())
	}
	for _, id := range ids {
		if _, err := f.Ask(id, &GetAgent{}, askTimeout); !errors.Is(err, ErrNoAgent) {
			t.Errorf("Ask(%s) after StopAll: %v, want ErrNoAgent", id, err)
		}
		if f.Tell(id, &GetAgent{}) {
			t.Errorf("Tell(%s) after StopAll reported a live agent", id)
		}
	}
	if err := f.StopAll(askTimeout); err != nil {
		t.Errorf("second StopAll: %v", err)
	}
}

// TestFleetStopAllHonoursTimeout: StopAll(timeout) must give up on actors that do not stop
// within timeout, however many there are, and count them. Here they are stuck in Journal.Append.
func TestFleetStopAllHonoursTimeout(t *testing.T) {
	tests := []struct {
		name         string
		stuck, fine  int
		wantInReport string
	}{
		{"one stuck actor", 1, 2, "1 of 3"},
		{"three stuck actors", 3, 2, "3 of 5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, te := newTestFleet(t, journalBlock)
			for range tc.fine { // active, not stuck: their actors stop at once
				id, _ := spawnAgent(t, f)
				if _, err := f.Ask(id, &GetAgent{}, askTimeout); err != nil {
					t.Fatal(err)
				}
			}
			asked := make(chan error, tc.stuck)
			for range tc.stuck {
				id, _ := spawnAgent(t, f)
				go func() {
					_, err := f.Ask(id, &PutSkill{File: "RULES.md", Content: "x"}, 30*time.Second)
					asked <- err
				}()
			}
			for i := 0; len(te.journal.recorded()) < tc.stuck; i++ { // all stuck in Append
				if i > 2000 {
					t.Fatal("the actors never reached the journal")
				}
				time.Sleep(time.Millisecond)
			}
			defer func() {
				close(te.journal.swapUnblock())
				for range tc.stuck {
					<-asked
				}
			}()

			stopped := make(chan error, 1)
			start := time.Now()
			go func() { stopped <- f.StopAll(100 * time.Millisecond) }()
			select {
			case err := <-stopped:
				if err == nil || !strings.Contains(err.Error(), tc.wantInReport) {
					t.Errorf("StopAll = %v, want an error counting %s", err, tc.wantInReport)
				}
			case <-time.After(2 * time.Second):
				t.Errorf("StopAll(100ms) still waiting after %v with %d stuck actors",
					time.Since(start).Round(time.Millisecond), tc.stuck)
				close(te.journal.swapUnblock())
				<-stopped
			}
		})
	}
}

// TestFleetStopAllAgain: a StopAll after one that timed out waits for its own actors; the
// stragglers of the first must not count for the second.
func TestFleetStopAllAgain(t *testing.T) {
	f, te := newTestFleet(t, journalBlock)
	stuck := func() chan error { // spawns an agent and gets it stuck in Append
		id, _ := spawnAgent(t, f)
		n := len(te.journal.recorded())
		asked := make(chan error, 1)
		go func() {
			_, err := f.Ask(id, &PutSkill{File: "RULES.md", Content: "x"}, 30*time.Second)
			asked <- err
		}()
		for i := 0; len(te.journal.recorded()) == n; i++ {
			if i > 2000 {
				t.Fatal("the actor never reached the journal")
			}
			time.Sleep(time.Millisecond)
		}
		return asked
	}
	askedA := stuck()
	if err := f.StopAll(50 * time.Millisecond); err == nil {
		t.Fatal("first StopAll: nil with a stuck actor")
	}
	releaseA := te.journal.swapUnblock() // A waits on this one, B on the next
	askedB := stuck()

	stopped := make(chan error, 1)
	go func() { stopped <- f.StopAll(500 * time.Millisecond) }()
	time.Sleep(50 * time.Millisecond)
	close(releaseA) // A stops now; B is still stuck
	<-askedA
	if err := <-stopped; err == nil {
		t.Errorf("second StopAll returned nil while its actor was still stuck: " +
			"the first call's straggler was counted for it")
	}
	close(te.journal.swapUnblock())
	<-askedB
}

// TestFleetAskWhileStopping: requests racing with stops are answered or refused with ErrNoAgent,
// never dropped (which would show as ErrUnavailable after the timeout).
func TestFleetAskWhileStopping(t *testing.T) {
	const (
		agents  = 200
		workers = 40
		asks    = 20000
	)
	f, _ := newTestFleet(t, journalAsync)
	ids := make([]string, agents)
	keys := make([]SecretHash, agents)
	for i := range ids {
		secret := NewSecret()
		ids[i], keys[i] = NewAgentID(), HashSecret(secret)
		if err := f.Add(&Snapshot{State: AgentState{ID: ids[i], Status: Active,
			Key: &APIKey{Hash: keys[i]}}}); err != nil {
			t.Fatal(err)
		}
	}

	var answered, refused, asked atomic.Int64
	var workersDone atomic.Bool
	errs := make(chan error, workers)
	start := make(chan struct{})
	var wg, stopper sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			<-start
			for i := range asks / workers {
				n := rng.IntN(agents)
				var msg any
				switch i % 3 {
				case 0:
					msg = &GetAgent{}
				case 1:
					msg = &Poll{Key: keys[n]}
				default:
					msg = &PutSkill{File: "RULES.md", Content: fmt.Sprint(i)} // journalled
				}
				_, err := f.Ask(ids[n], msg, askTimeout)
				asked.Add(1)
				switch {
				case err == nil:
					answered.Add(1)
				case errors.Is(err, ErrNoAgent):
					refused.Add(1)
				default:
					errs <- fmt.Errorf("ask %d to agent %d: %w", i, n, err)
					return
				}
			}
		}()
	}
	stopper.Add(1)
	go func() { // stops the k-th agent once k/agents of the asks are done, spread over the run
		defer stopper.Done()
		<-start
		for k, n := range rand.New(rand.NewPCG(7, 7)).Perm(agents) {
			for asked.Load() < int64(k*asks/agents) && !workersDone.Load() {
				runtime.Gosched()
			}
			f.stop(ids[n])
		}
	}()
	close(start)
	wg.Wait()
	workersDone.Store(true)
	stopper.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if f.Size() != 0 {
		t.Errorf("size = %d after stopping every agent", f.Size())
	}
	t.Logf("%d answered, %d refused", answered.Load(), refused.Load())
	if t.Failed() {
		return
	}
	if got := answered.Load() + refused.Load(); got != asks {
		t.Errorf("%d asks accounted for, want %d", got, asks)
	}
}

func TestFleetHandlerPanic(t *testing.T) {
	f, _ := newTestFleet(t, journalSync)
	id, _ := spawnAgent(t, f)
	tests := []struct {
		name string
		msg  any
	}{
		{"unknown message type", struct{ X int }{1}},
		{"string", "hello"},
		{"nil", nil},
		{"nil poll", (*Poll)(nil)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := f.Ask(id, tc.msg, 2*time.Second)
			wantErr(t, err, ErrInternal)
			if d := time.Since(start); d > time.Second {
				t.Errorf("ErrInternal took %v", d)
			}
			if _, err := f.Ask(id, &GetAgent{}, askTimeout); err != nil {
				t.Errorf("agent dead after a panic: %v", err)
			}
		})
	}
}

func TestFleetTell(t *testing.T) {
	f, _ := newTestFleet(t, journalAsync)
	id, _ := spawnAgent(t, f)
	if f.Tell(NewAgentID(), &GetAgent{}) {
		t.Error("Tell to an unknown agent reported true")
	}
	if !f.Tell(id, &PutSkill{File: "RULES.md", Content: "told"}) {
		t.Fatal("Tell to a live agent reported false")
	}
	v, err := f.Ask(id, &GetSkill{Owner: true}, askTimeout) // queued behind the Tell
	if err != nil || v.(*SkillSource).Overrides["RULES.md"] != "told" {
		t.Errorf("skill after Tell = %+v, %v", v, err)
	}
	if !f.Tell(id, "not a message") { // a panic with nobody waiting must not kill the actor
		t.Fatal("Tell reported false")
	}
	if _, err := f.Ask(id, &GetAgent{}, askTimeout); err != nil {
		t.Errorf("agent after a told panic: %v", err)
	}
}

// TestTakeHeartbeats checks the poll times a flush takes (those changed since the last one) and
// those a checkpoint takes (every agent's that polled).
func TestTakeHeartbeats(t *testing.T) {
	f, te := newTestFleet(t, journalSync)
	a, ha := spawnRegistered(t, f)
	b, hb := spawnRegistered(t, f)
	c, _ := spawnRegistered(t, f)
	poll := func(id string, h SecretHash, at time.Duration) {
		t.Helper()
		te.clock.Set(t0.Add(at))
		_, err := f.Ask(id, &Poll{Key: h}, askTimeout)
		if err != nil && !errors.Is(err, ErrKeyUnknown) {
			t.Fatal(err)
		}
	}
	type beat struct {
		id string
		at time.Duration
	}
	steps := []struct {
		name  string
		polls func()
		want  []beat // changed since the last step
		all   []beat
	}{
		{"nothing polled", func() {}, nil, nil},
		{"two agents, one twice", func() {
			poll(a, ha, time.Second)
			poll(b, hb, 2*time.Second)
			poll(a, ha, 3*time.Second)
			poll(c, HashSecret("wrong"), 4*time.Second) // refused: no heartbeat
		}, []beat{{a, 3 * time.Second}, {b, 2 * time.Second}},
			[]beat{{a, 3 * time.Second}, {b, 2 * time.Second}}},
		{"taken already", func() {}, nil, []beat{{a, 3 * time.Second}, {b, 2 * time.Second}}},
		{"polled again", func() { poll(b, hb, 5*time.Second) }, []beat{{b, 5 * time.Second}},
			[]beat{{a, 3 * time.Second}, {b, 5 * time.Second}}},
		{"taken again", func() {}, nil, []beat{{a, 3 * time.Second}, {b, 5 * time.Second}}},
	}
	check := func(t *testing.T, what string, got []Heartbeat, want []beat) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s = %v, want %v", what, got, want)
		}
		for _, w := range want {
			i := slices.IndexFunc(got, func(h Heartbeat) bool { return h.AgentID == w.id })
			if i < 0 || !got[i].LastPoll.Equal(t0.Add(w.at)) {
				t.Errorf("%s = %v, want %s at t0+%v", what, got, w.id, w.at)
			}
		}
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.polls()
			check(t, "TakeHeartbeats", f.TakeHeartbeats(nil), st.want)
			var (
				all     []Heartbeat
				visited int
			)
			for part := range f.HeartbeatParts() {
				var n int
				all, n = f.AppendHeartbeats(part, all)
				visited += n
			}
			if visited != 3 {
				t.Errorf("AppendHeartbeats visited %d agents, want all 3", visited)
			}
			check(t, "AppendHeartbeats", all, st.all)
		})
	}
}

func BenchmarkAskPoll(b *testing.B) {
	f, te := newTestFleet(b, journalAsync)
	id, h := spawnRegistered(b, f)
	te.Env.Now = time.Now // set before the next message reaches the actor
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		msg := &Poll{Key: h}
		for pb.Next() {
			v, err := f.Ask(id, msg, askTimeout)
			if err != nil || len(v.(*PollResult).Events) != 0 {
				b.Errorf("poll: %v, %v", v, err)
				return
			}
		}
	})
}

// BenchmarkTakeHeartbeats measures one snapshot flush's take of 10,000 changed poll times, with
// the result handed back in as the daemon does: allocations per flush should be none. Its time
// includes the two pauses (Pacer) that a take of 10,000 makes, about 2 ms.
func BenchmarkTakeHeartbeats(b *testing.B) {
	f, _ := newTestFleet(b, journalAsync)
	var refs []*Ref
	for range 10_000 {
		id := NewAgentID()
		if err := f.Add(&Snapshot{State: AgentState{ID: id, Status: Active}}); err != nil {
			b.Fatal(err)
		}
		s, k, _ := f.route(id)
		refs = append(refs, s.refs[k])
	}
	var beats []Heartbeat
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, r := range refs {
			r.heartbeat(now)
		}
		beats = f.TakeHeartbeats(beats[:0])
		if len(beats) != len(refs) {
			b.Fatalf("took %d heartbeats, want %d", len(beats), len(refs))
		}
	}
}

// BenchmarkAskPollFleet polls a fleet of active agents in a shuffled order, one agent per
// poll, as a load over many keys does: once the fleet outgrows the CPU caches, each poll pays
// for every cache line of the agent it touches.
func BenchmarkAskPollFleet(b *testing.B) {
	for _, n := range []int{1_000, 300_000} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			f, te := newTestFleet(b, journalAsync)
			te.Env.Now = time.Now
			ids, keys := make([]string, n), make([]SecretHash, n)
			for i := range n {
				ids[i], keys[i] = NewAgentID(), HashSecret(NewSecret())
				err := f.Add(&Snapshot{State: AgentState{ID: ids[i], Settings: defaultSettings(),
					Status: Active, CreatedAt: t0, Key: &APIKey{Hash: keys[i], IssuedAt: t0}}})
				if err != nil {
					b.Fatal(err)
				}
			}
			order := rand.Perm(n)
			poll := func(i int, msg *Poll) {
				msg.Key = keys[i]
				v, err := f.Ask(ids[i], msg, askTimeout)
				if err != nil || len(v.(*PollResult).Events) != 0 {
					b.Fatalf("poll: %v, %v", v, err)
				}
			}
			var msg Poll
			for _, i := range order { // activate every agent
				poll(i, &msg)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				poll(order[i%n], &msg)
			}
		})
	}
}
