package persistence

import (
	"bytes"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/heepr/heeprd/actors"
)

// flushWait flushes poll times and waits for the flush. all answers a checkpoint; nil means the
// flushed times are every agent's.
func flushWait(t *testing.T, s *Store, all PollTimes, beats ...actors.Heartbeat) {
	t.Helper()
	if all == nil {
		all = heartbeatList(beats)
	}
	done := make(chan error, 1)
	s.FlushHeartbeats(beats, all, 0, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatalf("flush: %v", err)
	}
}

// heartbeatList is a list of heartbeats as a checkpoint reads them: in three parts, one of them
// empty when the list is short.
type heartbeatList []actors.Heartbeat

func (l heartbeatList) HeartbeatParts() int { return 3 }

func (l heartbeatList) AppendHeartbeats(part int, into []actors.Heartbeat) ([]actors.Heartbeat,
	int) {
	p := l[part*len(l)/3 : (part+1)*len(l)/3]
	return append(into, p...), len(p)
}

// pollFleet stands in for the fleet: agents in the store and the newest poll time of each.
type pollFleet struct {
	t      *testing.T
	s      *Store
	latest map[string]time.Time
}

func newPollFleet(t *testing.T, s *Store, agents int) *pollFleet {
	f := &pollFleet{t: t, s: s, latest: map[string]time.Time{}}
	var changes []actors.Change
	for i := range agents {
		st := sampleState()
		st.ID = fleetAgent(i)
		changes = append(changes, actors.PutAgent{State: st})
	}
	appendWait(t, s, changes...)
	return f
}

// fleetAgent is the id of the fleet's agent i, in one of eight buckets.
func fleetAgent(i int) string {
	const base32 = "234567abcdefghijklmnopqrstuvwxyz"
	id := []byte("agt_" + string("abcdefgh"[i%8]) + strings.Repeat("2", 15))
	for p := len(id) - 1; i > 0; p, i = p-1, i/32 {
		id[p] = base32[i%32]
	}
	return string(id)
}

// all lists every agent's newest poll time, as the fleet gives them to a checkpoint.
func (f *pollFleet) all() heartbeatList {
	var beats heartbeatList
	for _, id := range slices.Sorted(maps.Keys(f.latest)) {
		beats = append(beats, actors.Heartbeat{AgentID: id, LastPoll: f.latest[id]})
	}
	return beats
}

// poll records a poll of the given agents at unix second at, and flushes it.
func (f *pollFleet) poll(at int64, agents ...int) {
	f.t.Helper()
	var beats []actors.Heartbeat
	for _, i := range agents {
		b := actors.Heartbeat{AgentID: fleetAgent(i), LastPoll: time.Unix(at, 0).UTC()}
		f.latest[b.AgentID] = b.LastPoll
		beats = append(beats, b)
	}
	flushWait(f.t, f.s, f.all(), beats...)
}

// check loads the store and compares every agent's poll time with the newest one polled.
func (f *pollFleet) check(agents int) {
	f.t.Helper()
	snaps, err := f.s.Load()
	if err != nil {
		f.t.Fatalf("load: %v", err)
	}
	if len(snaps) != agents {
		f.t.Fatalf("%d agents loaded, want %d", len(snaps), agents)
	}
	for _, snap := range snaps {
		if want := f.latest[snap.State.ID]; !snap.LastPoll.Equal(want) {
			f.t.Errorf("%s: last poll %v, want %v", snap.State.ID, snap.LastPoll, want)
		}
	}
}

// logRecords counts the poll log's records on disk.
func logRecords(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	count := func(string, []byte) error { n++; return nil }
	if err := s.scan(prefixPollLog, "", "", count); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPollLogKeepsNewest: flushes in any order and overlap restore each agent's newest poll time,
// before and after a reopen.
func TestPollLogKeepsNewest(t *testing.T) {
	cases := []struct {
		name   string
		agents int
		polls  [][]int // agents polled in each flush, at increasing times
	}{
		{"one agent once", 1, [][]int{{0}}},
		{"same agent again", 2, [][]int{{0}, {0}, {0, 1}}},
		{"disjoint flushes", 9, [][]int{{0, 1, 2}, {3, 4, 5}, {6, 7}}},
		{"never polled agents", 5, [][]int{{1}, {3}}},
		{"more than one record a bucket", pollRecordPairs + 10,
			[][]int{seq(pollRecordPairs + 10), seq(20)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir)
			f := newPollFleet(t, s, tc.agents)
			for i, agents := range tc.polls {
				f.poll(int64(100+i), agents...)
			}
			f.check(tc.agents)

			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			f.s = openTest(t, dir)
			defer f.s.Close()
			f.check(tc.agents)
		})
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// TestPollLogOlderTimeLoses: a record with an older time, read after a newer one, changes
// nothing: the log is read as the newest time per agent, not in write order.
func TestPollLogOlderTimeLoses(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	f := newPollFleet(t, s, 1)
	f.poll(200, 0)
	flushWait(t, s, f.all(), actors.Heartbeat{AgentID: fleetAgent(0), LastPoll: time.Unix(150, 0)})
	f.check(1)
}

// TestPollLogCheckpoint polls a fleet often enough for checkpoints and expects the log to stay
// bounded, with every poll time intact.
func TestPollLogCheckpoint(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	const agents = 40
	f := newPollFleet(t, s, agents)
	most := 0
	for round := range 200 {
		f.poll(int64(1000+round), round%agents, (round*7)%agents)
		most = max(most, logRecords(t, s))
	}
	// 200 flushes of one or two buckets each; without checkpoints the log would hold hundreds.
	if limit := 3*(8+checkpointSlackRecords) + 8; most > limit {
		t.Errorf("the poll log reached %d records, want at most %d", most, limit)
	}
	if got := logRecords(t, s); got != len(s.polls.live) {
		t.Errorf("%d records on disk, %d accounted for", got, len(s.polls.live))
	}
	f.check(agents)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f.s = openTest(t, dir)
	defer f.s.Close()
	f.check(agents)
}

// TestPollLogTakesOverLegacyRecords: per-agent poll time records of the layout before the log
// are read, and the first checkpoint replaces them.
func TestPollLogTakesOverLegacyRecords(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	f := newPollFleet(t, s, 3)
	for i, at := range []int64{10, 20} {
		err := s.db.Update(func(txn *badger.Txn) error {
			return txn.Set([]byte(prefixHeartbeat+fleetAgent(i)), encodeTime(time.Unix(at, 0)))
		})
		if err != nil {
			t.Fatal(err)
		}
		f.latest[fleetAgent(i)] = time.Unix(at, 0).UTC()
	}
	f.check(3) // Load also notes the legacy records

	f.poll(30, 2)
	legacy := 0
	if err := s.scan(prefixHeartbeat, "", "", func(string, []byte) error {
		legacy++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if legacy != 0 {
		t.Errorf("%d legacy records left after a checkpoint", legacy)
	}
	f.check(3)
	s.Close()
}

// TestFlushHeartbeatsSpread checks that a flush queues its records one planned gap apart rather
// than all at once, and still writes every poll time.
func TestFlushHeartbeatsSpread(t *testing.T) {
	s := openMemory(t)
	defer s.Close()
	planned := make(chan time.Duration, 4)
	next := make(chan func(), 4)
	s.later = func(d time.Duration, f func()) { planned <- d; next <- f }

	const records = 3
	beats := make([]actors.Heartbeat, records*pollRecordPairs) // all in one bucket
	for i := range beats {
		beats[i] = actors.Heartbeat{AgentID: fleetAgent(i * 8), LastPoll: time.Unix(7, 0)}
	}
	done := make(chan error, 1)
	const over = 3 * time.Hour // a gap of an hour: no test run comes near it
	s.FlushHeartbeats(beats, heartbeatList(beats), over, func(err error) { done <- err })

	for i := 1; i < records; i++ {
		wait := <-planned
		if want := time.Duration(i) * over / records; wait > want || wait < want-time.Minute {
			t.Errorf("record %d planned after %v, want just under %v", i+1, wait, want)
		}
		if got := logRecords(t, s); got != i {
			t.Errorf("before record %d: %d records stored, want %d", i+1, got, i)
		}
		(<-next)()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := logRecords(t, s); got != records {
		t.Errorf("%d records stored, want %d", got, records)
	}
}

// TestCloseHurriesFlush: a flush spread over an hour is written at once when the store closes,
// and nothing of it is lost.
func TestCloseHurriesFlush(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	const agents = 3 * pollRecordPairs
	f := newPollFleet(t, s, agents)
	beats := make([]actors.Heartbeat, 0, agents)
	for i := range agents {
		b := actors.Heartbeat{AgentID: fleetAgent(i), LastPoll: time.Unix(int64(i), 0).UTC()}
		f.latest[b.AgentID] = b.LastPoll
		beats = append(beats, b)
	}
	done := make(chan error, 1)
	s.FlushHeartbeats(beats, f.all(), time.Hour, func(err error) { done <- err })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("flush: %v", err)
	}
	f.s = openTest(t, dir)
	defer f.s.Close()
	f.check(agents)
}

// FuzzReadPollRecord: no key or value makes the poll log reader panic, and what it accepts has
// as many pairs as times, all in the bucket its key names.
func FuzzReadPollRecord(f *testing.F) {
	var (
		l pollLog
		p pollPacker
	)
	p.add([]actors.Heartbeat{
		{AgentID: "agt_aaaaaaaaaaaaaaaa", LastPoll: time.Unix(1, 0)},
		{AgentID: "agt_abbbbbbbbbbbbbbb", LastPoll: time.Unix(2, 5)},
	})
	records, _ := l.seal(&p)
	for _, r := range records {
		f.Add(string(r.key), r.value)
	}
	f.Add("l/agt_a/0000000000000001", v3Record(actors.Heartbeat{
		AgentID: "agt_aaaaaaaaaaaaaaaa", LastPoll: time.Unix(1, 0)}))
	f.Add("l/agt_b/0000000000000001", records[0].value) // a's times, in b's bucket
	f.Add("l/agt_a/0000000000000001", []byte{pollLogVersion})
	f.Add("l/agt_a/zz", []byte{pollLogV3, 'b'})
	earlier := pollTime{hi: 1, lo: 2, at: 3} // read from an earlier record
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		r, times, err := readPollRecord(key, value, 0, []pollTime{earlier})
		if len(times) == 0 || times[0] != earlier {
			t.Fatalf("the earlier record's time was lost or changed: %v", times)
		}
		times = times[1:]
		if err != nil {
			if len(times) != 0 {
				t.Fatalf("%d times kept from a record refused with %v", len(times), err)
			}
			return
		}
		if r.pairs != len(times) {
			t.Fatalf("%d pairs counted, %d times read from %d bytes", r.pairs, len(times),
				len(value))
		}
		for _, pt := range times {
			if pt.id()[0] != key[len(prefixPollLog)+pollBucketLen-1] {
				t.Fatalf("time of %s read from a record of another bucket", pt.id())
			}
		}
	})
}

// v3Record is a version 3 poll log value, as builds before the packed ids wrote them.
func v3Record(beats ...actors.Heartbeat) []byte {
	v := []byte{pollLogV3}
	for _, b := range beats {
		v = append(v, b.AgentID[len(actors.AgentPrefix):]...)
		v = binary.BigEndian.AppendUint64(v, uint64(b.LastPoll.UnixNano()))
	}
	return v
}

// packedRecord is the poll log value the packer makes of a poll of each agent at a second.
func packedRecord(agentIDs ...string) []byte {
	var (
		l pollLog
		p pollPacker
	)
	for _, id := range agentIDs {
		p.add([]actors.Heartbeat{{AgentID: id, LastPoll: time.Unix(1, 0)}})
	}
	records, _ := l.seal(&p)
	return records[0].value
}

// TestPollPackRoundTrip: what the packer packs, the reader reads back exactly, to the
// nanosecond, however far apart or out of order the times of one record are.
func TestPollPackRoundTrip(t *testing.T) {
	now := time.Date(2026, 12, 5, 3, 0, 0, 123_456_789, time.UTC)
	cases := []struct {
		name  string
		beats func() []actors.Heartbeat
	}{
		{"one", func() []actors.Heartbeat {
			return []actors.Heartbeat{{AgentID: "agt_7zz2a7qq3kkm55xy", LastPoll: now}}
		}},
		{"earlier and far later times in one record", func() []actors.Heartbeat {
			return []actors.Heartbeat{
				{AgentID: "agt_a234567abcdefghi", LastPoll: now},
				{AgentID: "agt_aaaaaaaaaaaaaaaa", LastPoll: now.Add(-time.Nanosecond)},
				{AgentID: "agt_a777777777777777", LastPoll: now.Add(-400 * 24 * time.Hour)},
				{AgentID: "agt_azzzzzzzzzzzzzzz", LastPoll: now.Add(50 * 365 * 24 * time.Hour)},
				{AgentID: "agt_a222222222222222", LastPoll: time.Unix(0, 1)},
			}
		}},
		{"eight buckets, each past a full record", func() []actors.Heartbeat {
			var beats []actors.Heartbeat
			for i := range 8 * (pollRecordPairs + 300) {
				beats = append(beats, actors.Heartbeat{AgentID: fleetAgent(i),
					LastPoll: now.Add(time.Duration(i%977*7919) * time.Microsecond)})
			}
			return beats
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var (
				l pollLog
				p pollPacker
			)
			beats := tc.beats()
			p.add(beats)
			records, _ := l.seal(&p)

			got := map[string]int64{}
			var times []pollTime
			for i, r := range records {
				read, more, err := readPollRecord(string(r.key), r.value, i, times[:0])
				if err != nil {
					t.Fatalf("record %s: %v", r.key, err)
				}
				if read.pairs != r.pairs || r.pairs > pollRecordPairs {
					t.Fatalf("record %s: %d pairs read, %d packed", r.key, read.pairs, r.pairs)
				}
				for _, pt := range more {
					got[actors.AgentPrefix+pt.id()] = pt.at
				}
				times = more
			}
			if len(got) != len(beats) {
				t.Fatalf("%d times read back, %d packed", len(got), len(beats))
			}
			for _, b := range beats {
				if at := got[b.AgentID]; at != b.LastPoll.UnixNano() {
					t.Errorf("%s: read %d, packed %d", b.AgentID, at, b.LastPoll.UnixNano())
				}
			}
		})
	}
}

// FuzzPollID: packing an id's characters gives the bytes base32 decodes them to, and unpacking
// gives the characters back.
func FuzzPollID(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Add([]byte("0123456789"))
	enc := base32.NewEncoding(actors.IDAlphabet).WithPadding(base32.NoPadding)
	f.Fuzz(func(t *testing.T, raw []byte) {
		raw = append(raw, make([]byte, pollIDBytes)...)[:pollIDBytes]
		chars := enc.EncodeToString(raw)
		packed := appendPollID(nil, chars)
		if !bytes.Equal(packed, raw) {
			t.Fatalf("%s packed to %x, want %x", chars, packed, raw)
		}
		hi, lo := pollIDChars(packed)
		if got := (pollTime{hi: hi, lo: lo}).id(); got != chars {
			t.Fatalf("%x unpacked to %s, want %s", raw, got, chars)
		}
	})
}

// TestPollLogReadsVersion3: records of the previous version are read beside current ones, the
// newest time of an agent winning whichever version holds it, and a checkpoint replaces them.
func TestPollLogReadsVersion3(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	f := newPollFleet(t, s, 3)
	old := []actors.Heartbeat{
		{AgentID: fleetAgent(0), LastPoll: time.Unix(10, 0).UTC()},
		{AgentID: fleetAgent(1), LastPoll: time.Unix(40, 0).UTC()},
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		for i, b := range old {
			key := fmt.Sprintf("%s%s/%016x", prefixPollLog, b.AgentID[:pollBucketLen], 100+i)
			if err := txn.Set([]byte(key), v3Record(b)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range old {
		f.latest[b.AgentID] = b.LastPoll
	}
	s.Close()
	s = openTest(t, dir)
	f.s = s
	f.check(3) // Load also takes the old records into the log's account

	f.poll(20, 0, 2) // agent 0's new time beats its old one; agent 1 keeps its old one
	f.check(3)
	f.s.polls.mu.Lock()
	f.s.polls.pairs += 2 * (pollRecordPairs + checkpointSlackTimes) // make a checkpoint due
	f.s.polls.mu.Unlock()
	f.poll(30, 2)
	f.check(3)
	if n := logRecords(t, s); n > 3 {
		t.Errorf("%d records after a checkpoint of 3 agents in 3 buckets", n)
	}
	s.Close()
}

// TestFlushWithoutAllNeverCheckpoints: a flush given no way to list every agent (as at shutdown,
// when the fleet has let its agents go) writes only what changed, however due a checkpoint is,
// and deletes nothing.
func TestFlushWithoutAllNeverCheckpoints(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	const agents = 8 // one per bucket
	f := newPollFleet(t, s, agents)
	flushes := 2*checkpointSlackRecords/agents + 2
	for round := range flushes {
		var beats []actors.Heartbeat
		for i := range agents {
			b := actors.Heartbeat{AgentID: fleetAgent(i), LastPoll: time.Unix(int64(round), 0).UTC()}
			f.latest[b.AgentID] = b.LastPoll
			beats = append(beats, b)
		}
		done := make(chan error, 1)
		s.FlushHeartbeats(beats, nil, 0, func(err error) { done <- err })
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got, want := logRecords(t, s), flushes*agents; got != want {
		t.Fatalf("%d records after %d flushes without a list of every agent, want %d", got,
			flushes, want)
	}
	f.check(agents)

	f.poll(int64(flushes), 0) // with the list: the checkpoint that was due
	if got := logRecords(t, s); got > 2*agents {
		t.Errorf("%d records after a checkpoint of %d agents", got, agents)
	}
	f.check(agents)
}
