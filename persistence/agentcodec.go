package persistence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/heepr/heeprd/actors"
)

// agentCodecVersion marks an agent record in the binary layout below. Agent records are read by
// the million at start-up, and decoding them as JSON was most of the restore time; the other
// records stay JSON (codecVersion), which decodeAgent also still reads.
//
// Layout after the version byte: the id, settings (name, owner, poll minutes, revision cap,
// manual acceptance, key TTL), status, creation time, the key (a presence byte, then hash,
// issued, expires, revoked), the bootstrap token (presence, hash, expires, used), and the last
// order and event sequences. Strings are a uvarint length and bytes; integers are varints;
// times are varint Unix nanoseconds, 0 for the zero time; booleans are one byte.
const agentCodecVersion byte = 2

// agentCodecPrevious marks the same layout with the keys the agent's key replaced (see
// actors.APIKey.Previous) right after the key: a uvarint count, then each as the key is
// written, newest first. Only a record with such keys uses it, so that every other record
// stays readable by a build from before it.
const agentCodecPrevious byte = 3

var errShortRecord = errors.New("record ends early")

func encodeAgent(st *actors.AgentState) []byte {
	b := make([]byte, 0, 160+len(st.ID)+len(st.Settings.Name)+len(st.Settings.Owner))
	previous := st.Key != nil && st.Key.Previous != nil
	if previous {
		b = append(b, agentCodecPrevious)
	} else {
		b = append(b, agentCodecVersion)
	}
	b = appendString(b, st.ID)
	s := st.Settings
	b = appendString(b, s.Name)
	b = appendString(b, s.Owner)
	b = binary.AppendVarint(b, int64(s.PollMinutes))
	b = binary.AppendVarint(b, int64(s.RevisionCap))
	b = appendBool(b, s.ManualAcceptance)
	b = binary.AppendVarint(b, s.KeyTTLSeconds)
	b = appendString(b, string(st.Status))
	b = appendTime(b, st.CreatedAt)
	b = appendBool(b, st.Key != nil)
	if k := st.Key; k != nil {
		b = appendKey(b, k)
	}
	if previous {
		n := 0
		for p := st.Key.Previous; p != nil; p = p.Previous {
			n++
		}
		b = binary.AppendUvarint(b, uint64(n))
		for p := st.Key.Previous; p != nil; p = p.Previous {
			b = appendKey(b, p)
		}
	}
	b = appendBool(b, st.Bootstrap != nil)
	if t := st.Bootstrap; t != nil {
		b = append(b, t.Hash[:]...)
		b = appendBool(appendTime(b, t.ExpiresAt), t.Used)
	}
	b = binary.AppendUvarint(b, st.LastOrder)
	return binary.AppendUvarint(b, st.LastEvent)
}

// decodeAgent reads an agent record in either encoding. The owner and status come from shared
// when it already holds them; with shared nil every string is a copy of its own.
func decodeAgent(b []byte, st *actors.AgentState, shared *interner) error {
	if len(b) > 0 && b[0] == codecVersion {
		return decode(b, st)
	}
	if len(b) == 0 || (b[0] != agentCodecVersion && b[0] != agentCodecPrevious) {
		return fmt.Errorf("%w: not an agent record", ErrCorrupt)
	}
	r := reader{b: b[1:], shared: shared}
	st.ID = r.string()
	st.Settings = actors.Settings{
		Name: r.string(), Owner: r.sharedString(), PollMinutes: int(r.varint()),
		RevisionCap: int(r.varint()), ManualAcceptance: r.bool(), KeyTTLSeconds: r.varint(),
	}
	st.Status = actors.AgentStatus(r.sharedString())
	st.CreatedAt = r.time()
	if r.bool() {
		st.Key = r.key()
	}
	if b[0] == agentCodecPrevious {
		r.previousKeys(st.Key)
	}
	if r.bool() {
		st.Bootstrap = &actors.BootstrapToken{Hash: r.hash(), ExpiresAt: r.time(), Used: r.bool()}
	}
	st.LastOrder, st.LastEvent = r.uvarint(), r.uvarint()
	switch {
	case r.err != nil:
		return fmt.Errorf("%w: %w", ErrCorrupt, r.err)
	case len(r.b) != 0:
		return fmt.Errorf("%w: %d bytes after the agent record", ErrCorrupt, len(r.b))
	}
	return nil
}

func appendKey(b []byte, k *actors.APIKey) []byte {
	b = append(b, k.Hash[:]...)
	b = appendTime(appendTime(b, k.IssuedAt), k.ExpiresAt)
	return appendBool(b, k.Revoked)
}

func (r *reader) key() *actors.APIKey {
	return &actors.APIKey{Hash: r.hash(), IssuedAt: r.time(), ExpiresAt: r.time(),
		Revoked: r.bool()}
}

// previousKeys reads the keys that key replaced into its Previous chain.
func (r *reader) previousKeys(key *actors.APIKey) {
	n := r.uvarint()
	switch {
	case r.err != nil:
		return
	case key == nil || n == 0 || n > actors.MaxPreviousKeys:
		r.fail(fmt.Errorf("%d previous keys: want 1 to %d, after a key", n, actors.MaxPreviousKeys))
		return
	}
	at := &key.Previous
	for range n {
		k := r.key()
		*at = k
		at = &k.Previous
	}
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(b, 0)
	}
	return binary.AppendVarint(b, t.UnixNano())
}

// reader decodes the binary layout; after the first error every read returns a zero value.
type reader struct {
	b      []byte
	err    error
	shared *interner // nil: every string is a copy of its own
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(errShortRecord)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(errShortRecord)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string { return string(r.bytes()) }

// sharedString is string for values many records repeat.
func (r *reader) sharedString() string { return r.shared.intern(r.bytes()) }

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail(errShortRecord)
		return nil
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}

// interner hands out one copy of each string it has seen, so that agents of one owner, or with
// one status, share it: at a million agents, a copy each was two million objects for the
// collector to walk at every cycle. It remembers at most maxInterned strings.
type interner struct {
	seen map[string]string
}

const maxInterned = 1 << 16

// intern returns b as a string, the one it handed out before if any. A nil interner copies.
func (in *interner) intern(b []byte) string {
	if in == nil {
		return string(b)
	}
	if s, ok := in.seen[string(b)]; ok {
		return s
	}
	s := string(b)
	if in.seen == nil {
		in.seen = make(map[string]string)
	}
	if len(in.seen) < maxInterned {
		in.seen[s] = s
	}
	return s
}

func (r *reader) bool() bool {
	if len(r.b) == 0 {
		r.fail(errShortRecord)
		return false
	}
	v := r.b[0]
	r.b = r.b[1:]
	if v > 1 {
		r.fail(fmt.Errorf("boolean byte %d", v))
	}
	return v == 1
}

func (r *reader) time() time.Time {
	if n := r.varint(); n != 0 {
		return time.Unix(0, n).UTC()
	}
	return time.Time{}
}

func (r *reader) hash() (h actors.SecretHash) {
	if len(r.b) < len(h) {
		r.fail(errShortRecord)
		return h
	}
	copy(h[:], r.b)
	r.b = r.b[len(h):]
	return h
}
