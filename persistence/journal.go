package persistence

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/heepr/heeprd/actors"
)

// entry is one encoded write.
type entry struct {
	key    []byte
	value  []byte
	delete bool
	file   bool // a delivered file's bytes, kept apart from badger in --in-memory mode
}

// pending is one Append: its entries commit together, then done is called.
type pending struct {
	entries []entry
	done    func(error)
}

// Append implements actors.Journal: it encodes the changes at once, queues them behind every
// earlier Append and returns without waiting.
func (s *Store) Append(changes []actors.Change, done func(error)) {
	entries, err := encodeChanges(changes)
	if err != nil {
		go done(err)
		return
	}
	s.enqueue(pending{entries: entries, done: done})
}

func (s *Store) enqueue(p pending) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		go p.done(ErrClosed)
		return
	}
	s.queue = append(s.queue, p)
	s.mu.Unlock()
	s.signal()
}

func (s *Store) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func encodeChanges(changes []actors.Change) ([]entry, error) {
	entries := make([]entry, 0, len(changes))
	for _, c := range changes {
		if _, ok := c.(actors.Barrier); ok {
			continue
		}
		e, err := encodeChange(c)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
		if c, ok := c.(actors.PutOrder); ok {
			// The full record holds the progress now; a separate one would be stale.
			o := c.Order
			entries = append(entries, entry{key: progressKey(o.AgentID, o.ID), delete: true})
		}
	}
	return entries, nil
}

func encodeChange(c actors.Change) (entry, error) {
	var (
		key   []byte
		value any
	)
	switch c := c.(type) {
	case actors.PutAgent:
		return entry{key: agentKey(c.State.ID), value: encodeAgent(&c.State)}, nil
	case actors.PutOrder:
		key, value = orderKey(c.Order.AgentID, c.Order.ID), c.Order
	case actors.PutProgress:
		return entry{key: progressKey(c.AgentID, c.OrderID), value: encodeProgress(&c.Progress)},
			nil
	case actors.PutEvent:
		key, value = eventKey(c.AgentID, c.Event.Seq), c.Event
	case actors.DeleteEvent:
		return entry{key: eventKey(c.AgentID, c.Seq), delete: true}, nil
	case actors.PutSkillFile:
		return entry{key: skillKey(c.AgentID, c.File), value: []byte(c.Content)}, nil
	case actors.PutRemembered:
		key, value = rememberKey(c.AgentID, c.Record.Key), c.Record
	case actors.DeleteRemembered:
		return entry{key: rememberKey(c.AgentID, c.Key), delete: true}, nil
	case actors.PutFile:
		return entry{key: fileKey(c.OrderID, c.Delivery, c.Name), value: c.Data, file: true}, nil
	default:
		panic(fmt.Sprintf("BUG: no encoding for change %T", c))
	}
	b, err := encode(value)
	return entry{key: key, value: b}, err
}

// PollTimes is where a checkpoint reads every agent's last poll time: the fleet, one part at a
// time. AppendHeartbeats also reports how many agents it visited, polled or not, for the pace.
type PollTimes interface {
	HeartbeatParts() int
	AppendHeartbeats(part int, into []actors.Heartbeat) (out []actors.Heartbeat, visited int)
}

// FlushHeartbeats writes poll times to the poll log (polllog.go) without waiting for the
// writes: the ones that changed since the last flush or, when the log has grown enough, a
// checkpoint of every agent's, as all gives them. With all nil it never writes a checkpoint: at
// shutdown the fleet has already let its agents go, and a checkpoint of nobody would delete
// every poll time before it. A poll time is the one thing allowed to lag on disk. changed is
// not kept once FlushHeartbeats returns.
//
// A checkpoint reads the fleet at a pace (actors.Pacer), which for a million agents takes about
// a second. The records are then queued one at a time, spread over the duration over: record i
// is queued once the one before it committed and no earlier than i/n of over after the start.
// Other agents' writes go between them, and badger gets the flush as a small steady load rather
// than a burst. done is called once, after the last record (and a checkpoint's clean-up), with
// the first error.
func (s *Store) FlushHeartbeats(changed []actors.Heartbeat, all PollTimes, over time.Duration,
	done func(error)) {
	s.flushes.Add(1)
	checkpoint := all != nil && s.polls.startCheckpoint(len(changed))
	var packer pollPacker
	if checkpoint {
		packAll(&packer, all)
	} else {
		packer.add(changed) // sequential reads of a list: milliseconds for 100,000
	}
	records, from := s.polls.seal(&packer)
	f := &heartbeatFlush{s: s, records: records, start: time.Now(), checkpoint: checkpoint,
		from: from, done: done}
	if len(records) > 0 {
		f.gap = over / time.Duration(len(records))
	}
	f.next()
}

// packAll packs every agent's poll time, part by part, pausing after every actors.PaceChunk
// agents visited.
func packAll(p *pollPacker, all PollTimes) {
	var (
		pace    actors.Pacer
		beats   []actors.Heartbeat
		visited int
	)
	for part := range all.HeartbeatParts() {
		beats, visited = all.AppendHeartbeats(part, beats[:0])
		p.add(beats)
		pace.Walked(visited)
	}
}

// heartbeatFlush is one FlushHeartbeats in progress.
type heartbeatFlush struct {
	s          *Store
	records    []pollRecord
	start      time.Time
	gap        time.Duration // between the planned starts of two records
	sent       int           // records queued so far
	checkpoint bool
	from       uint64 // sequence of the first record
	done       func(error)
}

// next queues the next record, or ends the flush.
func (f *heartbeatFlush) next() {
	if f.sent == len(f.records) {
		if f.checkpoint {
			go f.s.dropSuperseded(f.from, f.end) // not on the committer: it may scan
			return
		}
		f.end(nil)
		return
	}
	r := f.records[f.sent]
	f.sent++
	f.s.enqueue(pending{entries: []entry{{key: r.key, value: r.value}}, done: func(err error) {
		if err != nil {
			f.end(err)
			return
		}
		f.s.polls.committed(r)
		f.plan()
	}})
}

// plan queues the next record at its planned time.
func (f *heartbeatFlush) plan() {
	wait := time.Until(f.start.Add(time.Duration(f.sent) * f.gap))
	if wait <= 0 || f.sent == len(f.records) {
		f.next()
		return
	}
	f.s.later(wait, f.next)
}

func (f *heartbeatFlush) end(err error) {
	if f.checkpoint {
		f.s.polls.checkpointDone(err == nil)
	}
	f.done(err)
	f.s.flushes.Done()
}

// dropSuperseded deletes the poll log records older than a checkpoint that starts at sequence
// from, and the per-agent poll time records of an older layout, then calls done.
func (s *Store) dropSuperseded(from uint64, done func(error)) {
	keys := s.polls.supersede(from)
	if s.polls.hasLegacy() {
		err := s.scan(prefixHeartbeat, "", "", func(key string, _ []byte) error {
			keys = append(keys, []byte(key))
			return nil
		})
		if err != nil {
			done(err)
			return
		}
	}
	s.deleteKeys(keys, done)
}

// deleteKeys deletes keys in commits of at most maxBatchRecords, one after the other.
func (s *Store) deleteKeys(keys [][]byte, done func(error)) {
	if len(keys) == 0 {
		done(nil)
		return
	}
	batch := keys[:min(len(keys), maxBatchRecords)]
	entries := make([]entry, len(batch))
	for i, k := range batch {
		entries[i] = entry{key: k, delete: true}
	}
	s.enqueue(pending{entries: entries, done: func(err error) {
		if err != nil {
			done(err)
			return
		}
		s.deleteKeys(keys[len(batch):], done)
	}})
}

// commitLoop commits whatever has queued, in order, until Close.
func (s *Store) commitLoop() {
	defer close(s.done)
	for {
		<-s.wake
		s.mu.Lock()
		batch, closed := s.takeBatch(), s.closed
		if len(s.queue) > 0 {
			s.signal() // more than one batch was queued: come back for the rest
		}
		s.mu.Unlock()

		if len(batch) > 0 {
			s.commit(batch)
		}
		if closed {
			s.commitRest()
			return
		}
	}
}

// commitRest commits whatever is still queued once the store is closed, in bounded batches.
func (s *Store) commitRest() {
	for {
		s.mu.Lock()
		batch := s.takeBatch()
		s.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		s.commit(batch)
	}
}

// maxBatchRecords bounds one commit. badger refuses a transaction of more than about 52k entries
// at heeprd's memtable size, and a huge one holds every agent's writes behind it: at a million
// agents one commit of a whole heartbeat flush kept about a gigabyte of memory busy and
// stretched the poll p99 to seconds. Bounded batches interleave with other agents' writes.
const maxBatchRecords = 10_000

// takeBatch takes the oldest pendings off the queue, up to maxBatchRecords records but at
// least one pending. The caller holds s.mu.
func (s *Store) takeBatch() []pending {
	n, records := 0, 0
	for n < len(s.queue) && (n == 0 || records+len(s.queue[n].entries) <= maxBatchRecords) {
		records += len(s.queue[n].entries)
		n++
	}
	batch := slices.Clone(s.queue[:n])
	s.queue = slices.Delete(s.queue, 0, n)
	return batch
}

// commit writes a batch in one transaction and then answers every pending in it. A batch too big
// for one transaction is split in halves; each pending stays whole.
func (s *Store) commit(batch []pending) {
	if s.broken.Load() {
		answer(batch, ErrBroken)
		return
	}

	start := time.Now()
	err := s.write(batch)
	if errors.Is(err, badger.ErrTxnTooBig) && len(batch) > 1 {
		half := len(batch) / 2
		s.commit(batch[:half])
		s.commit(batch[half:])
		return
	}
	s.obs.Committed(records(batch), time.Since(start).Seconds(), err)
	if err != nil && !errors.Is(err, badger.ErrTxnTooBig) {
		s.broken.Store(true)
		s.log.Error("commit failed; refusing further writes until restart",
			"records", records(batch), "err", clip(err.Error()))
	}
	answer(batch, err)
}

// memInlineLimit is the smallest value badger cannot keep in memory: it keeps a value inline
// only below its value threshold, refuses one above it, and fails on one of exactly that size.
const memInlineLimit = 1 << 20

func (s *Store) write(batch []pending) error {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	inMemory := s.memValues != nil
	var beside []entry // for memValues, once committed
	for _, p := range batch {
		for _, e := range p.entries {
			if inMemory {
				beside = append(beside, e)
			}
			var err error
			switch {
			case inMemory && e.file: // files are kept beside badger only
				continue
			case e.delete, inMemory && e.keptBeside():
				err = txn.Delete(e.key) // a value kept beside leaves no older version here
			default:
				err = txn.Set(e.key, e.value)
			}
			if err != nil {
				return fmt.Errorf("stage %q: %w", e.key, err)
			}
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("commit %d records: %w", records(batch), err)
	}
	s.keepBeside(beside)
	return nil
}

// keptBeside reports whether an in-memory store keeps e in memValues rather than in badger.
func (e entry) keptBeside() bool {
	return e.file || (!e.delete && len(e.value) >= memInlineLimit)
}

// hasRecordsBeside reports whether memValues holds anything but delivered files.
func (s *Store) hasRecordsBeside() bool {
	s.memMu.RLock()
	defer s.memMu.RUnlock()
	for key := range s.memValues {
		if !strings.HasPrefix(key, prefixFile) {
			return true
		}
	}
	return false
}

// keepBeside applies a committed batch's entries to memValues: files and values too large for
// badger in memory are kept there, and any other write of a key drops a version kept before.
func (s *Store) keepBeside(entries []entry) {
	if len(entries) == 0 {
		return
	}
	s.memMu.Lock()
	defer s.memMu.Unlock()
	for _, e := range entries {
		if e.keptBeside() {
			s.memValues[string(e.key)] = e.value
		} else {
			delete(s.memValues, string(e.key))
		}
	}
}

func answer(batch []pending, err error) {
	for _, p := range batch {
		if p.done != nil {
			p.done(err)
		}
	}
}

func records(batch []pending) int {
	n := 0
	for _, p := range batch {
		n += len(p.entries)
	}
	return n
}

// clip shortens an error for the log: badger quotes whole records in some errors, and records
// hold customer briefs and delivered text.
func clip(msg string) string {
	const limit = 160
	if len(msg) <= limit {
		return msg
	}
	return msg[:limit] + "... (clipped)"
}
