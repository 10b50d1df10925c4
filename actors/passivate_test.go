package actors

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFleetPassivate: an idle agent's actor stops, its state stays, and its next message
// starts a new actor that carries on where the old one left off.
func TestFleetPassivate(t *testing.T) {
	f, _ := newTestFleet(t, journalSync)
	id, key := spawnRegistered(t, f)
	if _, err := f.Ask(id, &PutSkill{File: "RULES.md", Content: "be brief"}, askTimeout); err != nil {
		t.Fatal(err)
	}
	if f.Active() != 1 {
		t.Fatalf("Active = %d after registering, want 1", f.Active())
	}

	base := time.Now()
	steps := []struct {
		name       string
		now        time.Time
		idle       time.Duration
		wantPassed int
		wantActive int64
	}{
		{"used within the idle time", base, time.Hour, 0, 1},
		{"idle long enough", base.Add(2 * time.Hour), time.Hour, 1, 0},
		{"already passive", base.Add(4 * time.Hour), time.Hour, 0, 0},
	}
	for _, s := range steps {
		passivateAll(t, f, s.now, s.idle, s.wantPassed)
		if got := f.Active(); got != s.wantActive {
			t.Errorf("%s: Active = %d, want %d", s.name, got, s.wantActive)
		}
	}

	v, err := f.Ask(id, &Poll{Key: key}, askTimeout)
	if err != nil {
		t.Fatalf("poll after passivation: %v", err)
	}
	if r := v.(*PollResult); len(r.Events) != 0 {
		t.Errorf("poll after passivation: %d events, want 0", len(r.Events))
	}
	v, err = f.Ask(id, &GetSkill{Owner: true}, askTimeout)
	if err != nil || v.(*SkillSource).Overrides["RULES.md"] != "be brief" {
		t.Errorf("skill after passivation = %+v, %v; want the uploaded rules", v, err)
	}
	if f.Active() != 1 || f.Size() != 1 {
		t.Errorf("Active = %d, Size = %d after the new actor started, want 1 and 1",
			f.Active(), f.Size())
	}
}

// TestFleetPassivateSparesBusyActors: an actor with a message in hand (here stuck in the
// journal) is not stopped, however long ago it was last sent one.
func TestFleetPassivateSparesBusyActors(t *testing.T) {
	f, te := newTestFleet(t, journalBlock)
	id, _ := spawnAgent(t, f)
	asked := make(chan error, 1)
	go func() {
		_, err := f.Ask(id, &PutSkill{File: "RULES.md", Content: "x"}, 30*time.Second)
		asked <- err
	}()
	for i := 0; len(te.journal.recorded()) == 0; i++ {
		if i > 2000 {
			t.Fatal("the actor never reached the journal")
		}
		time.Sleep(time.Millisecond)
	}

	if got := f.Passivate(time.Now().Add(time.Hour), time.Minute); got != 0 {
		t.Errorf("Passivate stopped %d busy actors", got)
	}
	close(te.journal.swapUnblock())
	if err := <-asked; err != nil {
		t.Errorf("the busy actor's request: %v", err)
	}
	passivateAll(t, f, time.Now().Add(2*time.Hour), time.Minute, 1)
}

// TestFleetPassivateUnderLoad: requests racing with passivation sweeps are all answered, and
// every agent's writes add up: no message is dropped and no two actors of one agent run at
// once (the race detector watches the agent's state).
func TestFleetPassivateUnderLoad(t *testing.T) {
	const (
		agents  = 50
		workers = 16
		asks    = 6000
	)
	f, _ := newTestFleet(t, journalAsync)
	ids := make([]string, agents)
	keys := make([]SecretHash, agents)
	for i := range ids {
		ids[i], keys[i] = spawnRegistered(t, f)
	}

	var stop atomic.Bool
	var sweeps, passivated atomic.Int64
	sweeper := make(chan struct{})
	go func() {
		defer close(sweeper)
		clock := time.Now()
		for !stop.Load() { // every sweep finds every agent idle: the clock jumps a minute
			clock = clock.Add(time.Minute)
			passivated.Add(int64(f.Passivate(clock, time.Second)))
			sweeps.Add(1)
		}
	}()

	writes := make([]atomic.Int64, agents)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			for i := range asks / workers {
				n := rng.IntN(agents)
				var msg any = &Poll{Key: keys[n]}
				if i%2 == 0 {
					msg = &PutSkill{File: fmt.Sprintf("w%d-%d.md", w, i), Content: "x"}
				}
				if _, err := f.Ask(ids[n], msg, askTimeout); err != nil {
					errs <- fmt.Errorf("ask %d to agent %d: %w", i, n, err)
					return
				}
				if i%2 == 0 {
					writes[n].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	<-sweeper
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d sweeps stopped %d actors", sweeps.Load(), passivated.Load())
	if passivated.Load() == 0 {
		t.Error("no actor was passivated: the test raced nothing")
	}

	for n, id := range ids {
		v, err := f.Ask(id, &GetSkill{Owner: true}, askTimeout)
		if err != nil {
			t.Fatalf("agent %d: %v", n, err)
		}
		if got := len(v.(*SkillSource).Overrides); int64(got) != writes[n].Load() {
			t.Errorf("agent %d holds %d skill files, want %d", n, got, writes[n].Load())
		}
	}
}

// TestFleetStopAllAfterPassivate: StopAll waits only for running actors; an actor still
// stopping from its passivation is not counted.
func TestFleetStopAllAfterPassivate(t *testing.T) {
	f, _ := newTestFleet(t, journalSync)
	running, _ := spawnRegistered(t, f)
	passive, _ := spawnRegistered(t, f)
	passivateAll(t, f, time.Now().Add(time.Hour), time.Minute, 2)
	if _, err := f.Ask(running, &GetAgent{}, askTimeout); err != nil {
		t.Fatal(err)
	}
	if err := f.StopAll(askTimeout); err != nil {
		t.Fatalf("StopAll: %v", err)
	}
	for _, id := range []string{running, passive} {
		if _, err := f.Ask(id, &GetAgent{}, askTimeout); !errors.Is(err, ErrNoAgent) {
			t.Errorf("Ask after StopAll = %v, want ErrNoAgent", err)
		}
	}
}

// TestFleetActorResumesAfterEscapedPanic: a panic outside the handlers' own recover (here in
// the journal) drops that one request; the actor goes on with the same state, and StopAll still
// hears it stop.
func TestFleetActorResumesAfterEscapedPanic(t *testing.T) {
	f, te := newTestFleet(t, journalSync)
	id, key := spawnRegistered(t, f)

	te.journal.setMode(journalPanic)
	_, err := f.Ask(id, &PutSkill{File: "RULES.md", Content: "x"}, 200*time.Millisecond)
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("request whose journal panicked: %v, want ErrUnavailable", err)
	}
	te.journal.setMode(journalSync)

	if _, err := f.Ask(id, &Poll{Key: key}, askTimeout); err != nil {
		t.Errorf("poll after the panic: %v, want the same actor answering", err)
	}
	if err := f.StopAll(askTimeout); err != nil {
		t.Errorf("StopAll after the panic: %v", err)
	}
}

// TestFleetActivationWaitsWithoutLocks: a request for an agent whose previous actor is still
// stopping waits for that stop, and meanwhile requests to other agents of the same shard are
// answered: the wait holds no lock.
func TestFleetActivationWaitsWithoutLocks(t *testing.T) {
	f, _ := newTestFleet(t, journalSync)
	waiting, _ := spawnRegistered(t, f)
	ws, wk, _ := f.route(waiting)
	var neighbour string
	for neighbour == "" {
		if id, _ := spawnAgent(t, f); func() bool { s, _, _ := f.route(id); return s == ws }() {
			neighbour = id
		}
	}

	stopping := make(chan struct{}) // stands for a previous actor that has not stopped yet
	passivateAll(t, f, time.Now().Add(time.Hour), time.Minute, 1)
	ws.mu.Lock()
	ref := ws.refs[wk]
	<-ref.stopping // the real previous actor has stopped by now, or soon
	ref.stopping = stopping
	ws.mu.Unlock()

	answered := make(chan error, 1)
	go func() {
		_, err := f.Ask(waiting, &GetAgent{}, askTimeout)
		answered <- err
	}()
	// Give the request time to reach its wait. If it has not, the neighbour's answer proves
	// less, but nothing here can pass wrongly.
	time.Sleep(20 * time.Millisecond)
	if _, err := f.Ask(neighbour, &GetAgent{}, askTimeout); err != nil {
		t.Errorf("neighbour while another agent waits to start: %v", err)
	}
	select {
	case err := <-answered:
		t.Fatalf("the waiting request was answered (%v) before its previous actor stopped", err)
	default:
	}
	close(stopping)
	if err := <-answered; err != nil {
		t.Errorf("the waiting request: %v", err)
	}
	if f.Active() != 2 {
		t.Errorf("Active = %d, want 2", f.Active())
	}
}

// passivateAll sweeps until n actors were passivated. A sweep skips an actor whose mailbox is
// still busy, as it may be just after it answered, so one sweep may not find them all idle.
// With n 0 it sweeps once.
func passivateAll(t *testing.T, f *Fleet, now time.Time, idle time.Duration, n int) {
	t.Helper()
	stopped := f.Passivate(now, idle)
	for i := 0; i < 200 && stopped < n; i++ {
		time.Sleep(5 * time.Millisecond)
		stopped += f.Passivate(now, idle)
	}
	if stopped != n {
		t.Fatalf("passivated %d actors, want %d", stopped, n)
	}
}
