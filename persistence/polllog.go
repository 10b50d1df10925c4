package persistence

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/heepr/heeprd/actors"
)

// The poll log holds agents' last poll times, the one state allowed to lag on disk.
//
// A fleet of a million agents polling once a minute changes 16,700 poll times a second. Kept as
// one record per agent, they were most of what heeprd wrote: each time a key, a version and a
// skiplist node of its own, and the memtable flushes, compactions and garbage they caused
// stalled polls for seconds. The log packs the times of many agents into one record instead.
//
// Each flush writes the times that changed since the one before. A reader keeps the latest time
// it meets for an agent, so records may be read in any order, may repeat an agent, and may
// outlive the flush that replaced them. When the log holds about twice what a full copy of
// every agent's time would, a flush writes that full copy (a checkpoint) and, once it committed,
// deletes the records before it: the log stays within a few times the fleet's size.
//
// Keys are l/<bucket>/<sequence, 16 hex>, where the bucket is the agent id prefix and the id's
// first character, so a record sorts beside the agents it covers and each part of a restore
// reads only its own. A value is a version byte, a base time (Unix nanoseconds, 8 bytes
// big-endian: the record's first poll time), then pairs of the id's characters after the prefix
// packed into 10 bytes (appendPollID) and the poll time's distance from the base as a signed
// varint. A flush's times lie within seconds of each other, so its pairs take 15 bytes; a
// checkpoint's spread over the fleet's poll cadence, so its take 16 or 17.
//
// Version 3 records, written by older builds, hold pairs of the id's 16 characters and the time
// in 8 bytes: 24 bytes a pair. Restore reads both, and they stay until a checkpoint replaces them.
// Every byte the log writes, badger writes again as it flushes memtables and compacts tables, and
// the buffers it allocates for that are most of what the server allocates under steady polling.
const (
	prefixPollLog        = "l/"
	pollLogVersion  byte = 5
	pollLogV3       byte = 3
	pollBucketLen        = len(actors.AgentPrefix) + 1
	pollIDLen            = 16 // an agent id's characters after the prefix
	pollHeaderLen        = 1 + 8
	pollPairMaxLen       = pollIDBytes + binary.MaxVarintLen64
	pollV3PairLen        = pollIDLen + 8
	pollRecordPairs      = 2_000

	// pollValueCap is the largest value of 2,000 pairs: 40 KB, under the value threshold, so the
	// record stays in the tables and compaction reclaims it.
	pollValueCap = pollHeaderLen + pollRecordPairs*pollPairMaxLen

	// A checkpoint is due when the log outgrows twice the last one by more than these, which
	// keep a small fleet from writing one on every flush.
	checkpointSlackRecords = 64
	checkpointSlackTimes   = pollRecordPairs
)

// pollLog is the store's account of the poll log's committed records.
type pollLog struct {
	mu          sync.Mutex
	next        uint64       // sequence of the next record
	live        []pollRecord // committed and not yet deleted
	pairs       int          // poll times in live
	base        int          // poll times in the newest checkpoint
	baseRecords int          // its records
	legacy      bool         // per-agent poll time records of an older layout remain
	writing     bool         // a checkpoint is being written
}

// pollRecord is one record of the poll log.
type pollRecord struct {
	seq   uint64
	key   []byte
	pairs int
	value []byte // until it is committed
}

// startCheckpoint reports whether a flush of changed poll times should write a checkpoint
// instead, and if so marks one as being written.
func (l *pollLog) startCheckpoint(changed int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.writing {
		return false
	}
	l.writing = l.legacy ||
		len(l.live) > 2*l.baseRecords+checkpointSlackRecords ||
		l.pairs+changed > 2*l.base+checkpointSlackTimes
	return l.writing
}

// pollPacker packs poll times into poll log values, one value being filled per bucket.
type pollPacker struct {
	open [256]packedValue // by the first character of the id after its prefix
	full []packedValue    // values that reached pollRecordPairs, in the order they filled
}

// packedValue is a poll log value being packed.
type packedValue struct {
	value  []byte
	bucket byte // the first character of its ids after their prefix
	pairs  int
}

// add packs the poll times of beats.
func (p *pollPacker) add(beats []actors.Heartbeat) {
	for _, b := range beats {
		rest := b.AgentID[len(actors.AgentPrefix):]
		at := b.LastPoll.UnixNano()
		v := &p.open[rest[0]]
		if v.value == nil {
			v.value = append(make([]byte, 0, pollValueCap), pollLogVersion)
			v.value = binary.BigEndian.AppendUint64(v.value, uint64(at))
			v.bucket = rest[0]
		}
		base := int64(binary.BigEndian.Uint64(v.value[1:]))
		v.value = appendPollID(v.value, rest)
		v.value = binary.AppendVarint(v.value, at-base)
		if v.pairs++; v.pairs == pollRecordPairs {
			p.full = append(p.full, *v)
			*v = packedValue{}
		}
	}
}

// seal turns what p packed into records, by bucket, with the next sequences from from on. The
// packing, for a checkpoint a million times, happens before: the committer takes the log's
// lock for every record it commits.
func (l *pollLog) seal(p *pollPacker) (records []pollRecord, from uint64) {
	values := p.full
	for _, v := range p.open {
		if v.value != nil {
			values = append(values, v)
		}
	}

	l.mu.Lock()
	from = l.next
	l.next += uint64(len(values))
	l.mu.Unlock()
	records = make([]pollRecord, len(values))
	for i, v := range values {
		seq := from + uint64(i)
		records[i] = pollRecord{seq: seq, value: v.value, pairs: v.pairs,
			key: fmt.Appendf(nil, "%s%s%c/%016x", prefixPollLog, actors.AgentPrefix, v.bucket, seq)}
	}
	return records, from
}

// committed accounts for a record once it is on disk.
func (l *pollLog) committed(r pollRecord) {
	r.value = nil
	l.mu.Lock()
	l.live = append(l.live, r)
	l.pairs += r.pairs
	l.mu.Unlock()
}

// supersede takes the committed records older than a checkpoint that starts at sequence from
// off the account and returns their keys, to be deleted.
func (l *pollLog) supersede(from uint64) [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	var keys [][]byte
	l.live = slices.DeleteFunc(l.live, func(r pollRecord) bool {
		if r.seq >= from {
			return false
		}
		keys = append(keys, r.key)
		l.pairs -= r.pairs
		return true
	})
	return keys
}

func (l *pollLog) hasLegacy() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.legacy
}

// checkpointDone ends a checkpoint. If it was written and the records before it deleted (ok),
// it becomes the base the next one is measured against.
func (l *pollLog) checkpointDone(ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writing = false
	if ok {
		l.legacy = false
		l.base, l.baseRecords = l.pairs, len(l.live)
	}
}

// restored takes over the records a load found; legacy says per-agent records were found too.
func (l *pollLog) restored(records []pollRecord, legacy bool) {
	slices.SortFunc(records, func(a, b pollRecord) int { return cmp.Compare(a.seq, b.seq) })
	l.mu.Lock()
	defer l.mu.Unlock()
	l.live, l.pairs, l.legacy = records, 0, legacy
	for _, r := range records {
		l.pairs += r.pairs
		l.next = max(l.next, r.seq+1)
	}
}

// pollTime is one poll time read from the log.
//
// The id's 16 characters are held as two big-endian words, which sort in the same order as the
// characters and compare in two instructions: a restore sorts millions of them.
type pollTime struct {
	hi, lo uint64 // the characters after the agent id prefix
	at     int64  // Unix nanoseconds
	record int32  // index of its record among those read before it
}

func (pt pollTime) id() string {
	return string(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, pt.hi), pt.lo))
}

func comparePollTimes(a, b pollTime) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

// readPollRecord decodes a poll log record of either version, appending its times to into;
// index is the number of records read before it.
func readPollRecord(key string, v []byte, index int, into []pollTime) (pollRecord, []pollTime,
	error) {
	rest, ok := strings.CutPrefix(key, prefixPollLog)
	bucket, seqHex, ok2 := strings.Cut(rest, "/")
	seq, err := strconv.ParseUint(seqHex, 16, 64)
	if !ok || !ok2 || err != nil || len(bucket) != pollBucketLen || len(seqHex) != 16 {
		return pollRecord{}, into, fmt.Errorf("%w: malformed poll log key", ErrCorrupt)
	}

	before := len(into)
	switch {
	case len(v) > 0 && v[0] == pollLogVersion:
		into, err = readPollPairs(v, int32(index), into)
	case len(v) > 0 && v[0] == pollLogV3:
		into, err = readPollPairsV3(v, int32(index), into)
	default:
		err = fmt.Errorf("%w: bad poll log record", ErrCorrupt)
	}
	if err != nil {
		return pollRecord{}, into[:before], err
	}

	for _, pt := range into[before:] {
		if byte(pt.hi>>56) != bucket[len(bucket)-1] {
			return pollRecord{}, into[:before], fmt.Errorf("%w: poll time of %s%s in bucket %s",
				ErrCorrupt, actors.AgentPrefix, pt.id(), bucket)
		}
	}
	return pollRecord{seq: seq, key: []byte(key), pairs: len(into) - before}, into, nil
}

// readPollPairs reads the pairs of a record of the current version.
func readPollPairs(v []byte, record int32, into []pollTime) ([]pollTime, error) {
	if len(v) < pollHeaderLen {
		return into, fmt.Errorf("%w: poll log record without its base time", ErrCorrupt)
	}
	base := int64(binary.BigEndian.Uint64(v[1:]))
	for p := v[pollHeaderLen:]; len(p) > 0; {
		if len(p) <= pollIDBytes {
			return into, fmt.Errorf("%w: poll log record cut short", ErrCorrupt)
		}
		hi, lo := pollIDChars(p)
		delta, n := binary.Varint(p[pollIDBytes:])
		if n <= 0 {
			return into, fmt.Errorf("%w: bad poll time in poll log record", ErrCorrupt)
		}
		into = append(into, pollTime{hi: hi, lo: lo, at: base + delta, record: record})
		p = p[pollIDBytes+n:]
	}
	return into, nil
}

// readPollPairsV3 reads the pairs of a version 3 record: the id's characters and the time.
func readPollPairsV3(v []byte, record int32, into []pollTime) ([]pollTime, error) {
	if (len(v)-1)%pollV3PairLen != 0 {
		return into, fmt.Errorf("%w: bad poll log record", ErrCorrupt)
	}
	for p := v[1:]; len(p) > 0; p = p[pollV3PairLen:] {
		into = append(into, pollTime{
			hi: binary.BigEndian.Uint64(p), lo: binary.BigEndian.Uint64(p[8:]),
			at: int64(binary.BigEndian.Uint64(p[pollIDLen:])), record: record,
		})
	}
	return into, nil
}
