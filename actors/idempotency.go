package actors

import (
	"encoding/hex"
	"fmt"
	"time"
)

// Idempotency identifies a request an agent may retry: the Idempotency-Key it sent and a
// fingerprint of what it asked for. A zero Key means the request is not idempotent.
type Idempotency struct {
	Key         string
	Fingerprint Fingerprint
}

// Fingerprint is a SHA-256 over the decoded request, computed by the transport.
type Fingerprint [32]byte

// MarshalText encodes the fingerprint as hex.
func (f Fingerprint) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(f[:])), nil }

// UnmarshalText decodes a fingerprint written by MarshalText.
func (f *Fingerprint) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(f) {
		return fmt.Errorf("fingerprint: want %d hex digits, got %d", 2*len(f), len(b))
	}
	_, err := hex.Decode(f[:], b)
	return err
}

// DefaultIdempotencyTTL is how long answers to idempotent requests are kept.
const DefaultIdempotencyTTL = 24 * time.Hour

// Remembered is the first answer to an idempotent request; exactly one result field is set.
type Remembered struct {
	Key         string           `json:"key"`
	Fingerprint Fingerprint      `json:"fingerprint"`
	At          time.Time        `json:"at"`
	Deliver     *DeliverResult   `json:"deliver,omitempty"`
	Order       *OrderResult     `json:"order,omitempty"`
	Status      *SetStatusResult `json:"status,omitempty"`
}

func (r *Remembered) result() any {
	switch {
	case r.Deliver != nil:
		return r.Deliver
	case r.Order != nil:
		return r.Order
	default:
		return r.Status
	}
}

func (r *Remembered) setResult(v any) {
	switch v := v.(type) {
	case *DeliverResult:
		r.Deliver = v
	case *OrderResult:
		r.Order = v
	case *SetStatusResult:
		r.Status = v
	default:
		panic(fmt.Sprintf("BUG: cannot remember a %T", v))
	}
}

// once runs an idempotent request: a repeat of a remembered one gets the first answer and has no
// effect, the same key with another request is refused, and a new one runs and is remembered
// together with its changes. Failed requests are not remembered, so a retry runs again.
func (a *agent) once(idem Idempotency, key SecretHash, now time.Time,
	run func() (any, []Change, error)) (any, []Change, error) {
	if idem.Key == "" {
		return run()
	}
	if err := a.authenticate(key, now); err != nil {
		return nil, nil, err
	}
	if r := a.answers.lookup(idem.Key); r != nil && now.Sub(r.At) <= a.idempotencyTTL() {
		if r.Fingerprint != idem.Fingerprint {
			return nil, nil, fmt.Errorf("%w: key %q", ErrIdempotencyReused, idem.Key)
		}
		return r.result(), []Change{Barrier{}}, nil // not durable until the journal says so
	}

	v, changes, err := run()
	if err != nil {
		return v, changes, err
	}
	r := &Remembered{Key: idem.Key, Fingerprint: idem.Fingerprint, At: now}
	r.setResult(v)
	return v, append(changes, a.remember(r, now)...), nil
}

// remember keeps an answer and forgets those older than the retention.
func (a *agent) remember(r *Remembered, now time.Time) []Change {
	if a.answers == nil {
		a.answers = &answers{byKey: make(map[string]*Remembered)}
	}
	a.answers.byKey[r.Key] = r
	a.answers.oldest = append(a.answers.oldest, r)
	changes := []Change{PutRemembered{AgentID: a.state.ID, Record: r}}

	for _, key := range a.answers.expire(now, a.idempotencyTTL()) {
		changes = append(changes, DeleteRemembered{AgentID: a.state.ID, Key: key})
	}
	return changes
}

// answers are an agent's remembered idempotent answers, by key and oldest first.
type answers struct {
	byKey  map[string]*Remembered
	oldest []*Remembered
}

// lookup finds the answer under a key; a nil set has none.
func (s *answers) lookup(key string) *Remembered {
	if s == nil {
		return nil
	}
	return s.byKey[key]
}

// len is how many answers are kept.
func (s *answers) len() int {
	if s == nil {
		return 0
	}
	return len(s.byKey)
}

// expire forgets the answers older than ttl and returns their keys. An answer replaced under
// its key by a newer one is dropped from the order without forgetting the newer one.
func (s *answers) expire(now time.Time, ttl time.Duration) []string {
	var keys []string
	for len(s.oldest) > 0 && now.Sub(s.oldest[0].At) > ttl {
		old := s.oldest[0]
		s.oldest = s.oldest[1:]
		if s.byKey[old.Key] == old {
			delete(s.byKey, old.Key)
			keys = append(keys, old.Key)
		}
	}
	return keys
}

func (a *agent) idempotencyTTL() time.Duration {
	if a.env.IdempotencyTTL <= 0 {
		return DefaultIdempotencyTTL
	}
	return a.env.IdempotencyTTL
}
