package persistence

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// codecVersion is the first byte of every encoded record. A reader that meets a version it does
// not know refuses it instead of guessing.
const codecVersion byte = 1

// encode writes a record as its version byte followed by JSON.
func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return append([]byte{codecVersion}, b...), nil
}

// decode reads a record written by encode into v.
func decode(b []byte, v any) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty record", ErrCorrupt)
	}
	if b[0] != codecVersion {
		return fmt.Errorf("%w: unknown encoding version %d", ErrCorrupt, b[0])
	}
	if err := json.Unmarshal(b[1:], v); err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return nil
}

// decodeTime reads a poll time record of the layout before the poll log (polllog.go).
func decodeTime(b []byte) (time.Time, error) {
	if len(b) != 9 || b[0] != codecVersion {
		return time.Time{}, fmt.Errorf("%w: bad timestamp record", ErrCorrupt)
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[1:]))).UTC(), nil
}
