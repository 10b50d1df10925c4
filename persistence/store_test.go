package persistence

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/heepr/heeprd/actors"
)

const testAgent = "agt_abcdefghijklmnop"

func openTest(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir, Fsync: true})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

// openMemory opens a store with no directory; the caller closes it.
func openMemory(t *testing.T) *Store {
	t.Helper()
	s, err := Open(Options{InMemory: true})
	if err != nil {
		t.Fatalf("open in memory: %v", err)
	}
	return s
}

// appendWait appends changes and waits for them to be durable.
func appendWait(t *testing.T, s *Store, changes ...actors.Change) {
	t.Helper()
	done := make(chan error, 1)
	s.Append(changes, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatalf("append: %v", err)
	}
}

func sampleState() actors.AgentState {
	return actors.AgentState{
		ID: testAgent, Status: actors.Active, LastOrder: 1, LastEvent: 2,
		Settings:  actors.Settings{Name: "writer", PollMinutes: 20, RevisionCap: 2},
		Key:       &actors.APIKey{Hash: actors.HashSecret("s"), IssuedAt: time.Unix(100, 0).UTC()},
		CreatedAt: time.Unix(50, 0).UTC(),
	}
}

func sampleOrder() *actors.Order {
	return &actors.Order{
		ID: "ord_abcdefghijklmnop_1", AgentID: testAgent, Gig: "logo", Price: 5,
		State: actors.Delivered, Deliveries: []actors.Delivery{{N: 1, Files: []actors.FileMeta{
			{Name: "a.bin", Size: 3, SHA256: "x"}}}},
	}
}

func TestReopenRestoresEverything(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ev := func(seq uint64) *actors.Event {
		return &actors.Event{ID: "evt_abcdefghijklmnop_" + string(rune('0'+seq)), Seq: seq,
			Kind: actors.NewOrder, OrderID: "ord_abcdefghijklmnop_1"}
	}
	appendWait(t, s,
		actors.PutAgent{State: sampleState()},
		actors.PutOrder{Order: sampleOrder()},
		actors.PutEvent{AgentID: testAgent, Event: ev(1)},
		actors.PutEvent{AgentID: testAgent, Event: ev(2)},
		actors.PutEvent{AgentID: testAgent, Event: ev(3)},
		actors.PutSkillFile{AgentID: testAgent, File: "RULES.md", Content: "be kind"},
		actors.PutFile{OrderID: "ord_abcdefghijklmnop_1", Delivery: 1, Name: "a.bin",
			Data: []byte{0, 1, 0}},
	)
	appendWait(t, s, actors.DeleteEvent{AgentID: testAgent, Seq: 2})
	beat := time.Unix(1234, 5678).UTC()
	flushWait(t, s, nil, actors.Heartbeat{AgentID: testAgent, LastPoll: beat})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, dir)
	defer s.Close()
	snaps, err := s.Load()
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if len(snaps) != 1 {
		t.Fatalf("got %d agents, want 1", len(snaps))
	}
	snap := snaps[0]
	if snap.State.ID != testAgent || snap.State.LastEvent != 2 || snap.State.Key == nil ||
		snap.State.Key.Hash != actors.HashSecret("s") {
		t.Errorf("agent state not restored: %+v", snap.State)
	}
	if !snap.LastPoll.Equal(beat) {
		t.Errorf("last poll = %v, want %v", snap.LastPoll, beat)
	}
	if len(snap.Orders) != 1 || snap.Orders[0].State != actors.Delivered {
		t.Errorf("orders = %+v", snap.Orders)
	}
	if len(snap.Events) != 2 || snap.Events[0].Seq != 1 || snap.Events[1].Seq != 3 {
		t.Errorf("events = %+v, want seq 1 and 3 in order", snap.Events)
	}
	if snap.Skill["RULES.md"] != "be kind" {
		t.Errorf("skill = %v", snap.Skill)
	}
	data, err := s.ReadFile("ord_abcdefghijklmnop_1", 1, "a.bin")
	if err != nil || !bytes.Equal(data, []byte{0, 1, 0}) {
		t.Errorf("file = %v, %v", data, err)
	}
	if _, err := s.ReadFile("ord_abcdefghijklmnop_1", 1, "b.bin"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing file: err = %v, want ErrNotFound", err)
	}
}

// TestLoadRefusesBadRecords writes raw records behind the store's back and expects Load to fail
// with an error naming the key.
func TestLoadRefusesBadRecords(t *testing.T) {
	good, _ := encode(sampleState())
	cases := []struct {
		name  string
		key   string
		value []byte
	}{
		{"truncated agent", "a/" + testAgent, good[:len(good)/2]},
		{"unknown version", "a/" + testAgent, append([]byte{9}, good[1:]...)},
		{"empty value", "a/" + testAgent, nil},
		{"agent id mismatch", "a/agt_bbbbbbbbbbbbbbbb", good},
		{"order without agent", "o/agt_cccccccccccccccc/ord_cccccccccccccccc_1", good},
		{"bad heartbeat", "h/" + testAgent, []byte{1, 2}},
		{"bad poll log record", "l/agt_a/0000000000000001", []byte{pollLogVersion, 1, 2}},
		{"poll log record cut short", "l/agt_a/0000000000000001",
			packedRecord(testAgent)[:pollHeaderLen+pollIDBytes]},
		{"poll time's offset cut short", "l/agt_a/0000000000000001",
			append(packedRecord(testAgent)[:pollHeaderLen+pollIDBytes], 0x80)},
		{"poll time's offset too long", "l/agt_a/0000000000000001",
			append(packedRecord(testAgent)[:pollHeaderLen+pollIDBytes],
				0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)},
		{"poll log of an unknown agent", "l/agt_a/0000000000000001",
			packedRecord("agt_aqqqqqqqqqqqqqqq")},
		{"poll time in another bucket", "l/agt_b/0000000000000001", packedRecord(testAgent)},
		{"version 3 poll log record cut short", "l/agt_a/0000000000000001",
			v3Record(actors.Heartbeat{AgentID: testAgent, LastPoll: time.Unix(1, 0)})[:20]},
		{"version 3 poll log of an unknown agent", "l/agt_a/0000000000000001",
			v3Record(actors.Heartbeat{AgentID: "agt_aqqqqqqqqqqqqqqq", LastPoll: time.Unix(1, 0)})},
		{"version 3 poll time in another bucket", "l/agt_b/0000000000000001",
			v3Record(actors.Heartbeat{AgentID: testAgent, LastPoll: time.Unix(1, 0)})},
		{"malformed poll log key", "l/agt_a/1", []byte{pollLogVersion}},
		{"bad event key", "e/" + testAgent + "/zz", good},
		{"skill without a file name", "s/" + testAgent, []byte("x")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir)
			if tc.key != "a/"+testAgent {
				appendWait(t, s, actors.PutAgent{State: sampleState()})
			}
			err := s.db.Update(func(txn *badger.Txn) error {
				return txn.Set([]byte(tc.key), tc.value)
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Load()
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("load err = %v, want ErrCorrupt", err)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(tc.key)) {
				t.Errorf("error %q does not name key %q", err, tc.key)
			}
			s.Close()
		})
	}
}

// TestAppendAnswersInOrder appends without waiting, as actors do, and expects every done call,
// in the order of Append, with every record readable afterwards.
func TestAppendAnswersInOrder(t *testing.T) {
	s := openMemory(t)
	defer s.Close()

	const n = 500
	var mu sync.Mutex
	var answered []int
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range n {
		ev := &actors.Event{ID: "evt", Seq: uint64(i + 1), Kind: actors.NewOrder}
		s.Append([]actors.Change{actors.PutEvent{AgentID: testAgent, Event: ev}}, func(err error) {
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			answered = append(answered, i)
			mu.Unlock()
			wg.Done()
		})
	}
	wg.Wait()

	for i, got := range answered {
		if got != i {
			t.Fatalf("answer %d was for append %d: commits out of order", i, got)
		}
	}
	count := 0
	if err := s.scan(prefixEvent, "", "", func(string, []byte) error { count++; return nil }); err != nil {
		t.Fatal(err)
	}
	if count != n {
		t.Errorf("%d events stored, want %d", count, n)
	}
}

func TestClosedStoreRefusesWrites(t *testing.T) {
	s := openMemory(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	s.Append([]actors.Change{actors.PutAgent{State: sampleState()}}, func(err error) { done <- err })
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}

func TestSchemaMismatchRefusesToOpen(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(keySchema), []byte{42})
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open err = %v, want ErrCorrupt", err)
	}
}

// TestCommitsAreBounded queues more records than one badger transaction holds and expects
// them all committed, in commits of at most maxBatchRecords.
func TestCommitsAreBounded(t *testing.T) {
	obs := &batchObserver{}
	s, err := Open(Options{Dir: t.TempDir(), Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const appends, each = 30, 2_000 // 60k: above badger's ~52k entries at our memtable size
	done := make(chan error, appends)
	for a := range appends {
		changes := make([]actors.Change, each)
		for i := range changes {
			changes[i] = actors.PutSkillFile{AgentID: testAgent, File: fmt.Sprintf("%d-%d", a, i)}
		}
		s.Append(changes, func(err error) { done <- err })
	}
	for range appends {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got, want := obs.total(), appends*each; got != want {
		t.Errorf("%d records committed, want %d", got, want)
	}
	if most := obs.largest(); most > maxBatchRecords {
		t.Errorf("a commit of %d records, want at most %d", most, maxBatchRecords)
	}
}

// TestInMemoryKeepsLargeRecordsAndFiles: without a value log badger keeps values inline, so an
// in-memory store must still take records and files as large as the request limits allow.
func TestInMemoryKeepsLargeRecordsAndFiles(t *testing.T) {
	s := openMemory(t)
	defer s.Close()
	order := sampleOrder()
	order.Brief = strings.Repeat("b", 200<<10)
	file := bytes.Repeat([]byte{0, 1, 2}, 4<<20) // 12 MiB
	appendWait(t, s, actors.PutAgent{State: sampleState()}, actors.PutOrder{Order: order},
		actors.PutFile{OrderID: order.ID, Delivery: 1, Name: "big.bin", Data: file})

	snaps, err := s.Load()
	if err != nil || len(snaps) != 1 || snaps[0].Orders[0].Brief != order.Brief {
		t.Fatalf("load: %v", err)
	}
	data, err := s.ReadFile(order.ID, 1, "big.bin")
	if err != nil || !bytes.Equal(data, file) {
		t.Fatalf("file: %d bytes, %v", len(data), err)
	}
	if !s.Healthy() {
		t.Error("store unhealthy after large writes")
	}
	if err := s.Backup(io.Discard); !errors.Is(err, ErrInMemoryBackup) {
		t.Errorf("backup of an in-memory store: %v", err)
	}
}

// TestInMemoryKeepsValuesOfAnySize: in memory, badger keeps a value inline only below 1 MiB,
// refuses one above and fails on one of exactly 1 MiB. Values of those sizes are kept beside
// it, every write commits, the store stays healthy, and a smaller version later drops the
// large one.
func TestInMemoryKeepsValuesOfAnySize(t *testing.T) {
	s := openMemory(t)
	defer s.Close()
	skill := func(n int) actors.PutSkillFile {
		return actors.PutSkillFile{AgentID: testAgent, File: "SKILL.md",
			Content: strings.Repeat("s", n)}
	}
	order := sampleOrder()
	keys := map[string][]byte{"skill file": skillKey(testAgent, "SKILL.md"),
		"order": orderKey(testAgent, order.ID)}
	for _, n := range []int{memInlineLimit - 1, memInlineLimit, memInlineLimit + 1, 10} {
		order.Brief = strings.Repeat("b", n)
		appendWait(t, s, actors.PutAgent{State: sampleState()}, skill(n),
			actors.PutOrder{Order: order})

		encoded, err := encode(order)
		if err != nil {
			t.Fatal(err)
		}
		sizes := map[string]int{"skill file": n, "order": len(encoded)}
		for what, key := range keys {
			s.memMu.RLock()
			_, beside := s.memValues[string(key)]
			s.memMu.RUnlock()
			inBadger := s.db.View(func(txn *badger.Txn) error {
				_, err := txn.Get(key)
				return err
			}) == nil
			// exactly one place holds it: beside badger if it is 1 MiB or more
			if want := sizes[what] >= memInlineLimit; beside != want || inBadger == beside {
				t.Errorf("%s of %d bytes: beside badger %v, in badger %v",
					what, sizes[what], beside, inBadger)
			}
		}
		if n >= memInlineLimit {
			if _, err := s.Load(); err == nil {
				t.Errorf("Load read an in-memory store with records beside badger")
			}
		}
	}
	if !s.Healthy() {
		t.Fatal("store unhealthy after large values")
	}
	snaps, err := s.Load()
	if err != nil || len(snaps) != 1 || snaps[0].Skill["SKILL.md"] != strings.Repeat("s", 10) {
		t.Fatalf("load after the small version: %v", err)
	}
}

// batchObserver records the size of every commit.
type batchObserver struct {
	mu      sync.Mutex
	batches []int
}

func (o *batchObserver) Committed(records int, _ float64, _ error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.batches = append(o.batches, records)
}

func (o *batchObserver) total() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	sum := 0
	for _, b := range o.batches {
		sum += b
	}
	return sum
}

func (o *batchObserver) largest() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Max(append(o.batches, 0))
}
