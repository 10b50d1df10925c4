package persistence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Options configure a Store.
type Options struct {
	Dir      string // badger directory; ignored when InMemory
	InMemory bool   // keep nothing on disk (tests, demos)
	Fsync    bool   // sync every commit to disk before acknowledging it
	Log      *slog.Logger
	Observer Observer
}

// Observer is told about every group commit. It must be safe for concurrent use.
type Observer interface {
	Committed(records int, seconds float64, err error)
}

type nopObserver struct{}

func (nopObserver) Committed(int, float64, error) {}

// Store keeps the agents' state in badger. Writes go through one committer goroutine that
// commits whatever has queued up in one transaction (group commit), so a synced commit is
// shared by every request waiting on it. It is safe for concurrent use.
type Store struct {
	db   *badger.DB
	log  *slog.Logger
	obs  Observer
	sync bool

	mu      sync.Mutex
	queue   []pending
	closed  bool
	wake    chan struct{}
	done    chan struct{}
	broken  atomic.Bool
	closeMu sync.Once

	polls   pollLog        // the poll log's records (polllog.go)
	flushes sync.WaitGroup // heartbeat flushes in progress
	hurry   chan struct{}  // closed by Close: flushes stop spreading their writes

	// later runs f after d, or at once when the store closes; tests replace it to see how a
	// heartbeat flush is spread.
	later func(d time.Duration, f func())

	// memValues holds, in --in-memory mode, the values badger cannot keep there: delivered
	// files, and any other value of memInlineLimit or more (a skill file, an order grown long).
	// Keys are as in badger; only the committer writes it.
	memMu     sync.RWMutex
	memValues map[string][]byte
}

// BadgerOptions are the badger options heeprd opens dir with, before the choices of Options
// (sync, memory only, logging). Memory is sized next to what the agents need rather than to
// badger's defaults (about 670 MiB), and files go to the value log, so a batch stays small.
// Tools that read a data directory, such as the load harness, open it the same way.
//
// Tables are not compressed. Most of what heeprd writes is the poll log, random agent ids and
// times that Snappy barely shrinks, and compressing each flushed memtable took the core from
// polls for most of a second: at a million agents polling on a one-minute cadence, poll p99.9
// fell from 389 ms to 36 ms without it. Tables written compressed by an older build stay
// readable (badger records each table's compression) and are rewritten plain as they compact.
func BadgerOptions(dir string) badger.Options {
	return badger.DefaultOptions(dir).
		WithCompression(options.None).
		WithMemTableSize(32 << 20).
		WithNumMemtables(3).
		WithBlockCacheSize(32 << 20).
		WithIndexCacheSize(16 << 20).
		WithValueThreshold(64 << 10)
}

// Open opens (or creates) the badger directory and starts the committer.
func Open(o Options) (*Store, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	opts := BadgerOptions(o.Dir).
		WithInMemory(o.InMemory).
		WithSyncWrites(o.Fsync).
		WithLogger(badgerLogger{o.Log})
	if o.InMemory {
		// Without a value log every value is kept inline, so records may be up to badger's
		// largest inline size; larger values live in a map of their own (memValues).
		opts = opts.WithValueThreshold(memInlineLimit)
		opts.Dir, opts.ValueDir = "", ""
	}
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open badger at %q: %w", o.Dir, err)
	}
	s := &Store{
		db: db, log: o.Log, obs: o.Observer, sync: o.Fsync,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		hurry: make(chan struct{}),
	}
	s.later = s.after
	if o.InMemory {
		s.memValues = make(map[string][]byte)
	}
	if err := s.checkSchema(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	go s.commitLoop()
	return s, nil
}

// checkSchema stamps a new directory with the layout version and refuses a directory written
// with another one.
func (s *Store) checkSchema() error {
	return s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keySchema))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return txn.Set([]byte(keySchema), []byte{codecVersion})
		}
		if err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		return item.Value(func(v []byte) error {
			if len(v) != 1 || v[0] != codecVersion {
				return fmt.Errorf("%w: key %q: data directory has layout %v, this build reads %d",
					ErrCorrupt, keySchema, v, codecVersion)
			}
			return nil
		})
	})
}

// Healthy reports whether every commit so far succeeded.
func (s *Store) Healthy() bool { return !s.broken.Load() }

// after runs f after d, or as soon as Close hurries the flushes.
func (s *Store) after(d time.Duration, f func()) {
	go func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.hurry:
		}
		f()
	}()
}

// Close lets the heartbeat flushes in progress finish at once, commits everything queued, stops
// the committer and closes badger.
func (s *Store) Close() error {
	var err error
	s.closeMu.Do(func() {
		close(s.hurry)
		s.flushes.Wait()
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.signal()
		<-s.done
		if cerr := s.db.Close(); cerr != nil {
			err = fmt.Errorf("close badger: %w", cerr)
		}
	})
	return err
}

// ReadFile returns the bytes of a delivered file.
func (s *Store) ReadFile(orderID string, delivery int, name string) ([]byte, error) {
	if s.memValues != nil {
		s.memMu.RLock()
		data, ok := s.memValues[string(fileKey(orderID, delivery, name))]
		s.memMu.RUnlock()
		if !ok {
			return nil, fmt.Errorf("read file %q of delivery %d of %s: %w", name, delivery,
				orderID, ErrNotFound)
		}
		return data, nil
	}
	var data []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(fileKey(orderID, delivery, name))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		data, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read file %q of delivery %d of %s: %w", name, delivery, orderID, err)
	}
	return data, nil
}

// badgerLogger routes badger's logging into slog. Badger's info lines are routine (compactions,
// replays), so they go to debug.
type badgerLogger struct{ log *slog.Logger }

func (l badgerLogger) Errorf(f string, a ...any)   { l.at(slog.LevelError, f, a) }
func (l badgerLogger) Warningf(f string, a ...any) { l.at(warnLevel(f), f, a) }
func (l badgerLogger) Infof(f string, a ...any)    { l.at(slog.LevelDebug, f, a) }
func (l badgerLogger) Debugf(f string, a ...any)   { l.at(slog.LevelDebug, f, a) }

// warnLevel lowers badger's cache-sizing advice to debug. heeprd reads badger only at start-up
// and for file downloads, so the block cache always looks too small, and badger says so every
// minute for good.
func warnLevel(format string) slog.Level {
	if strings.Contains(format, "might be too small") ||
		strings.Contains(format, "Cache life expectancy") {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

// at formats and logs a line only if the level is enabled: badger logs every compaction.
func (l badgerLogger) at(level slog.Level, format string, args []any) {
	if ctx := context.Background(); l.log.Enabled(ctx, level) {
		l.log.Log(ctx, level, trim(fmt.Sprintf(format, args...)))
	}
}

func trim(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	return s
}
