package persistence

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/heepr/heeprd/actors"
)

// Load reads every agent, in the order of their ids, with its orders, queued events, skill files
// and last poll time. A record that does not decode, or that belongs to no agent, fails the whole
// load with an error naming its key: starting with part of the data would silently lose the rest.
//
// Agent ids are random, so the id space splits into parts of about equal size that share no
// agent. Each part is read by a goroutine of its own, one per CPU: decoding, not badger, is
// most of the work.
//
// Load reads badger alone. In --in-memory mode it runs at start-up, on an empty store; a
// store that by then keeps records beside badger (memValues) is refused rather than read in
// part.
func (s *Store) Load() ([]*actors.Snapshot, error) {
	if s.hasRecordsBeside() {
		return nil, errors.New("load: this in-memory store keeps records beside badger, " +
			"which Load does not read")
	}
	bounds := idBounds(runtime.GOMAXPROCS(0))
	parts := make([]loadedPart, len(bounds)-1)
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[i], errs[i] = s.loadPart(bounds[i], bounds[i+1])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	var (
		snaps   []*actors.Snapshot
		records []pollRecord
		legacy  bool
	)
	for _, p := range parts {
		snaps = append(snaps, p.snaps...)
		records = append(records, p.polls...)
		legacy = legacy || p.legacy
	}
	s.polls.restored(records, legacy)
	return snaps, nil
}

// loadedPart is what loadPart read.
type loadedPart struct {
	snaps  []*actors.Snapshot
	polls  []pollRecord // the poll log's records
	legacy bool         // per-agent poll time records of an older layout were found
}

// idBounds splits the agent id space into n parts by the first character after the id prefix:
// the bounds of part i are bounds[i] (inclusive) and bounds[i+1] (exclusive), "" meaning open.
// The open ends also catch malformed ids, so that they fail the load.
func idBounds(n int) []string {
	const alphabet = "234567abcdefghijklmnopqrstuvwxyz" // base32 in byte order
	n = min(max(n, 1), 8)
	bounds := []string{""}
	for i := 1; i < n; i++ {
		bounds = append(bounds, actors.AgentPrefix+alphabet[i*len(alphabet)/n:][:1])
	}
	return append(bounds, "")
}

// loadPart reads the agents with ids in [from, to) and every record that belongs to them.
func (s *Store) loadPart(from, to string) (loadedPart, error) {
	var (
		agents agentIndex
		part   loadedPart
		times  []pollTime
	)
	steps := []struct {
		prefix string
		read   func(key string, value []byte) error
	}{
		{prefixAgent, agents.loadAgent},
		{prefixHeartbeat, func(k string, v []byte) error {
			part.legacy = true
			return loadHeartbeat(&agents, k, v)
		}},
		{prefixPollLog, func(k string, v []byte) error {
			r, more, err := readPollRecord(k, v, len(part.polls), times)
			times = more
			part.polls = append(part.polls, r)
			return err
		}},
		{prefixOrder, func(k string, v []byte) error { return loadOrder(&agents, k, v) }},
		{prefixProgress, func(k string, v []byte) error { return loadProgress(&agents, k, v) }},
		{prefixEvent, func(k string, v []byte) error { return loadEvent(&agents, k, v) }},
		{prefixSkill, func(k string, v []byte) error { return loadSkill(&agents, k, v) }},
		{prefixRemember, func(k string, v []byte) error { return loadRemembered(&agents, k, v) }},
	}
	for _, step := range steps {
		agents.next = 0
		if err := s.scan(step.prefix, from, to, step.read); err != nil {
			return loadedPart{}, err
		}
		if step.prefix == prefixAgent {
			// The poll log holds at most about twice one time per agent (polllog.go).
			times = make([]pollTime, 0, 2*len(agents.snaps)+checkpointSlackTimes)
		}
	}
	if err := agents.applyPollTimes(times, part.polls); err != nil {
		return loadedPart{}, err
	}
	part.snaps = agents.snaps
	return part, nil
}

// agentIndex finds the agent a record belongs to without a map: records under every prefix come
// in the order of their agent ids, like the agents themselves, so a cursor that only moves forward
// finds each owner in constant time on average. At a million agents a map cost a third of the
// restore, in hashing, growth and garbage.
type agentIndex struct {
	snaps  []*actors.Snapshot // in id order, as scanned
	next   int                // no later record of the current prefix belongs to an earlier agent
	shared interner           // owners and statuses, one copy each
}

func (x *agentIndex) find(id string) *actors.Snapshot {
	for x.next < len(x.snaps) && x.snaps[x.next].State.ID < id {
		x.next++
	}
	if x.next < len(x.snaps) && x.snaps[x.next].State.ID == id {
		return x.snaps[x.next]
	}
	return nil
}

// scan calls read, in key order, for every record under prefix whose agent id is in
// [from, to) ("" leaves that end open).
func (s *Store) scan(prefix, from, to string, read func(key string, value []byte) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(prefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		end := []byte(prefix + to)
		for it.Seek([]byte(prefix + from)); it.Valid(); it.Next() {
			item := it.Item()
			if to != "" && bytes.Compare(item.Key(), end) >= 0 {
				return nil
			}
			key := string(item.Key())
			err := item.Value(func(v []byte) error { return read(key, v) })
			if err != nil {
				return fmt.Errorf("load %q: %w", key, err)
			}
		}
		return nil
	})
}

func (x *agentIndex) loadAgent(key string, v []byte) error {
	id, _, err := splitAgentKey(key, prefixAgent)
	if err != nil {
		return err
	}
	var st actors.AgentState
	if err := decodeAgent(v, &st, &x.shared); err != nil {
		return err
	}
	if st.ID != id || !actors.ValidAgentID(id) {
		return fmt.Errorf("%w: record is for agent %q", ErrCorrupt, st.ID)
	}
	x.snaps = append(x.snaps, &actors.Snapshot{State: st})
	return nil
}

// owner finds the snapshot a dependent record belongs to.
func owner(agents *agentIndex, key, prefix string) (*actors.Snapshot, string, error) {
	id, rest, err := splitAgentKey(key, prefix)
	if err != nil {
		return nil, "", err
	}
	snap := agents.find(id)
	if snap == nil {
		return nil, "", fmt.Errorf("%w: no agent record for %q", ErrCorrupt, id)
	}
	return snap, rest, nil
}

// loadHeartbeat reads a poll time record of the layout before the poll log.
func loadHeartbeat(agents *agentIndex, key string, v []byte) error {
	snap, _, err := owner(agents, key, prefixHeartbeat)
	if err != nil {
		return err
	}
	t, err := decodeTime(v)
	if t.After(snap.LastPoll) {
		snap.LastPoll = t
	}
	return err
}

// pollKey is the id of the i-th agent as a poll time holds it.
func (x *agentIndex) pollKey(i int) pollTime {
	id := x.snaps[i].State.ID[len(actors.AgentPrefix):] // 16 characters: ids are validated
	return pollTime{hi: bigEndian(id[:8]), lo: bigEndian(id[8:])}
}

func bigEndian(s string) uint64 {
	var v uint64
	for i := range 8 {
		v = v<<8 | uint64(s[i])
	}
	return v
}

// applyPollTimes gives each agent the latest of its poll times read from the poll log. They are
// sorted by agent first, so that one forward pass of the cursor finds every agent.
func (x *agentIndex) applyPollTimes(times []pollTime, records []pollRecord) error {
	slices.SortFunc(times, comparePollTimes)
	x.next = 0
	for _, pt := range times {
		for x.next < len(x.snaps) && comparePollTimes(x.pollKey(x.next), pt) < 0 {
			x.next++
		}
		if x.next == len(x.snaps) || comparePollTimes(x.pollKey(x.next), pt) != 0 {
			return fmt.Errorf("load %q: %w: poll time of agent %s%s, which has no record",
				records[pt.record].key, ErrCorrupt, actors.AgentPrefix, pt.id())
		}
		if t := time.Unix(0, pt.at).UTC(); t.After(x.snaps[x.next].LastPoll) {
			x.snaps[x.next].LastPoll = t
		}
	}
	return nil
}

func loadOrder(agents *agentIndex, key string, v []byte) error {
	snap, orderID, err := owner(agents, key, prefixOrder)
	if err != nil {
		return err
	}
	o := new(actors.Order)
	if err := decode(v, o); err != nil {
		return err
	}
	if o.ID != orderID || o.AgentID != snap.State.ID || o.State == "" {
		return fmt.Errorf("%w: order record does not match its key", ErrCorrupt)
	}
	snap.Orders = append(snap.Orders, o)
	return nil
}

func loadEvent(agents *agentIndex, key string, v []byte) error {
	snap, rest, err := owner(agents, key, prefixEvent)
	if err != nil {
		return err
	}
	seq, err := parseEventSeq(key, rest)
	if err != nil {
		return err
	}
	var ev actors.Event
	if err := decode(v, &ev); err != nil {
		return err
	}
	if ev.Seq != seq {
		return fmt.Errorf("%w: event record has sequence %d", ErrCorrupt, ev.Seq)
	}
	snap.Events = append(snap.Events, ev) // keys sort by sequence, so this is queue order
	return nil
}

func loadSkill(agents *agentIndex, key string, v []byte) error {
	snap, file, err := owner(agents, key, prefixSkill)
	if err != nil {
		return err
	}
	if file == "" {
		return fmt.Errorf("%w: skill record names no file", ErrCorrupt)
	}
	if snap.Skill == nil {
		snap.Skill = make(map[string]string)
	}
	snap.Skill[file] = string(v)
	return nil
}

func loadRemembered(agents *agentIndex, key string, v []byte) error {
	snap, idemKey, err := owner(agents, key, prefixRemember)
	if err != nil {
		return err
	}
	r := new(actors.Remembered)
	if err := decode(v, r); err != nil {
		return err
	}
	if r.Key != idemKey || (r.Deliver == nil && r.Order == nil && r.Status == nil) {
		return fmt.Errorf("%w: idempotency record does not match its key", ErrCorrupt)
	}
	snap.Remembered = append(snap.Remembered, r)
	return nil
}
