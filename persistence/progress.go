package persistence

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/heepr/heeprd/actors"
)

// progressVersion marks a progress record. Agents report progress on an order in a stream, and
// rewriting the whole order as JSON for each report took 11% of the server's CPU under such a
// stream, the largest part after socket I/O. So a report is stored on its own under p/ in a few
// bytes, and the order's next full record deletes it in the same commit. A progress record thus
// holds news the order record lacks.
//
// Layout after the version byte: the percent as a uvarint, the time as varint Unix nanoseconds,
// then the message as a uvarint length and bytes.
const progressVersion byte = 4

func encodeProgress(p *actors.Progress) []byte {
	b := make([]byte, 0, 1+2+binary.MaxVarintLen64+1+len(p.Message))
	b = append(b, progressVersion)
	b = binary.AppendUvarint(b, uint64(p.Percent))
	b = appendTime(b, p.At)
	return appendString(b, p.Message)
}

func decodeProgress(b []byte) (actors.Progress, error) {
	if len(b) == 0 || b[0] != progressVersion {
		return actors.Progress{}, fmt.Errorf("%w: not a progress record", ErrCorrupt)
	}
	r := reader{b: b[1:]}
	percent := r.uvarint()
	p := actors.Progress{At: r.time(), Message: r.string()}
	switch {
	case r.err != nil:
		return actors.Progress{}, fmt.Errorf("%w: progress record: %w", ErrCorrupt, r.err)
	case len(r.b) != 0:
		return actors.Progress{}, fmt.Errorf("%w: %d bytes after the progress record",
			ErrCorrupt, len(r.b))
	case percent > 100:
		return actors.Progress{}, fmt.Errorf("%w: progress of %d percent", ErrCorrupt, percent)
	}
	p.Percent = int(percent)
	return p, nil
}

// loadProgress applies a progress record to its order, read before it; the report's time was
// also the order's update time. A record older than the order's own, or on an order no longer in
// progress, is left out: a build from before progress records kept its progress in the order
// and left such a record behind, and it must not bring an old report back.
func loadProgress(agents *agentIndex, key string, v []byte) error {
	snap, orderID, err := owner(agents, key, prefixProgress)
	if err != nil {
		return err
	}
	p, err := decodeProgress(v)
	if err != nil {
		return fmt.Errorf("key %q: %w", key, err)
	}

	// Orders were scanned in key order, so an agent's orders are sorted by id.
	i, found := slices.BinarySearchFunc(snap.Orders, orderID, func(o *actors.Order, id string) int {
		return strings.Compare(o.ID, id)
	})
	if !found {
		return fmt.Errorf("%w: progress record %q of an unknown order", ErrCorrupt, key)
	}
	o := snap.Orders[i]
	if o.State != actors.InProgress || p.At.Before(o.UpdatedAt) {
		return nil
	}
	o.Progress, o.UpdatedAt = &p, p.At
	return nil
}
