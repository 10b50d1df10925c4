package persistence

import (
	"encoding/base32"
	"encoding/binary"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/dgraph-io/badger/v4"

	"github.com/heepr/heeprd/actors"
)

// BenchmarkRestoreVsIteration stores registered, idle agents, then times a restore (Load and
// every agent added to a fleet, as heeprd does at start-up) against a plain badger iteration
// over the same directory, in the same run, and reports their ratio.
func BenchmarkRestoreVsIteration(b *testing.B) {
	const agents = 100_000
	dir := b.TempDir()
	writeAgents(b, dir, agents)

	for range b.N {
		iterate := timeIt(b, func(s *Store) func() { plainIteration(b, s); return func() {} }, dir)
		restore := timeIt(b, func(s *Store) func() { return restoreAll(b, s) }, dir)
		b.ReportMetric(restore.Seconds()/iterate.Seconds(), "restore/iteration")
		b.ReportMetric(float64(restore.Microseconds())/agents, "µs-restore/agent")
	}
}

func writeAgents(b *testing.B, dir string, n int) {
	s, err := Open(Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	enc := base32.NewEncoding(actors.IDAlphabet).WithPadding(base32.NoPadding)
	const batch = 5_000
	for start := 0; start < n; start += batch {
		changes := make([]actors.Change, 0, batch)
		for i := start; i < min(start+batch, n); i++ {
			buf := make([]byte, 10)
			binary.BigEndian.PutUint64(buf[2:], uint64(i))
			st := sampleState()
			st.ID = actors.AgentPrefix + enc.EncodeToString(buf)
			changes = append(changes, actors.PutAgent{State: st})
		}
		done := make(chan error, 1)
		s.Append(changes, func(err error) { done <- err })
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}

// timeIt times f on a freshly opened store; the cleanup f returns runs after the clock stops.
func timeIt(b *testing.B, f func(*Store) func(), dir string) time.Duration {
	s, err := Open(Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	cleanup := f(s)
	took := time.Since(start)
	cleanup()
	return took
}

func plainIteration(b *testing.B, s *Store) {
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := it.Item().Value(func([]byte) error { return nil }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

func restoreAll(b *testing.B, s *Store) (stop func()) {
	snaps, err := s.Load()
	if err != nil {
		b.Fatal(err)
	}
	system := actor.NewActorSystem(actor.WithLoggerFactory(
		func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	fleet := actors.NewFleet(system, &actors.Env{Now: time.Now,
		Online: actors.NewOnlineTracker(time.Hour, time.Now())})
	fleet.Grow(len(snaps))
	for _, snap := range snaps {
		if err := fleet.Add(snap); err != nil {
			b.Fatal(err)
		}
	}
	return func() {
		_ = fleet.StopAll(time.Minute)
		system.Shutdown()
	}
}
