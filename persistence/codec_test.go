package persistence

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/heepr/heeprd/actors"
)

func TestTimeRoundTrip(t *testing.T) {
	for _, tm := range []time.Time{time.Unix(0, 1).UTC(), time.Unix(1700000000, 999).UTC()} {
		got, err := decodeTime(encodeTime(tm))
		if err != nil || !got.Equal(tm) {
			t.Errorf("decodeTime(encodeTime(%v)) = %v, %v", tm, got, err)
		}
	}
}

// FuzzDecodeRecords feeds arbitrary bytes to every record decoder: none may panic, and whatever
// decodes must encode again.
func FuzzDecodeRecords(f *testing.F) {
	state, _ := encode(sampleState())
	order, _ := encode(sampleOrder())
	event, _ := encode(actors.Event{ID: "evt_x_1", Seq: 1, Kind: actors.NewOrder})
	for _, seed := range [][]byte{state, order, event, encodeTime(time.Unix(5, 0)), {}, {1}, {1, '{'}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var st actors.AgentState
		if decode(b, &st) == nil {
			if _, err := encode(st); err != nil {
				t.Fatalf("decoded agent does not encode: %v", err)
			}
		}
		var o actors.Order
		if decode(b, &o) == nil {
			if _, err := encode(&o); err != nil {
				t.Fatalf("decoded order does not encode: %v", err)
			}
		}
		var ev actors.Event
		_ = decode(b, &ev)
		_, _ = decodeTime(b)
	})
}

// encodeTime writes a poll time record of the layout before the poll log, which heeprd still
// reads.
func encodeTime(t time.Time) []byte {
	b := make([]byte, 9)
	b[0] = codecVersion
	binary.BigEndian.PutUint64(b[1:], uint64(t.UnixNano()))
	return b
}
