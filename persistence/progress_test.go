package persistence

import (
	"errors"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/heepr/heeprd/actors"
)

func TestProgressCodecRoundTrip(t *testing.T) {
	for _, p := range []actors.Progress{
		{},
		{Percent: 100, At: time.Unix(1700000000, 123).UTC()},
		{Percent: 42, Message: "drafting the second page ✍", At: time.Unix(5, 0).UTC()},
	} {
		got, err := decodeProgress(encodeProgress(&p))
		if err != nil || got != p {
			t.Errorf("round trip of %+v = %+v, %v", p, got, err)
		}
	}
}

func TestProgressCodecRefusesDamage(t *testing.T) {
	good := encodeProgress(&actors.Progress{Percent: 7, Message: "m", At: time.Unix(9, 0)})
	cases := map[string][]byte{
		"empty":            nil,
		"other version":    append([]byte{codecVersion}, good[1:]...),
		"truncated":        good[:len(good)-1],
		"trailing bytes":   append(append([]byte(nil), good...), 0),
		"percent over 100": {progressVersion, 101, 0, 0},
	}
	for name, b := range cases {
		if _, err := decodeProgress(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

// TestProgressSurvivesRestartUntilTheOrderIsRewritten follows an order's records through a
// stream of progress reports and a later full write, reopening the store after each step.
func TestProgressSurvivesRestartUntilTheOrderIsRewritten(t *testing.T) {
	dir := t.TempDir()
	placed := time.Unix(1000, 0).UTC()
	order := sampleOrder()
	order.State, order.Deliveries, order.UpdatedAt = actors.InProgress, nil, placed
	report := func(percent int, at time.Time) actors.Change {
		return actors.PutProgress{AgentID: testAgent, OrderID: order.ID,
			Progress: actors.Progress{Percent: percent, Message: "step", At: at}}
	}
	reload := func(steps ...actors.Change) *actors.Order {
		t.Helper()
		s := openTest(t, dir)
		defer s.Close()
		if len(steps) > 0 {
			appendWait(t, s, steps...)
		}
		snaps, err := s.Load()
		if err != nil || len(snaps) != 1 || len(snaps[0].Orders) != 1 {
			t.Fatalf("load: %v, %+v", err, snaps)
		}
		return snaps[0].Orders[0]
	}

	got := reload(actors.PutAgent{State: sampleState()}, actors.PutOrder{Order: order})
	if got.Progress != nil || !got.UpdatedAt.Equal(placed) {
		t.Fatalf("placed order: progress %+v, updated %v", got.Progress, got.UpdatedAt)
	}

	last := placed.Add(2 * time.Minute)
	got = reload(report(10, placed.Add(time.Minute)), report(60, last))
	want := actors.Progress{Percent: 60, Message: "step", At: last}
	if got.Progress == nil || *got.Progress != want || !got.UpdatedAt.Equal(last) {
		t.Fatalf("after reports: progress %+v, updated %v; want %+v at %v",
			got.Progress, got.UpdatedAt, want, last)
	}

	delivered := *order
	delivered.State, delivered.UpdatedAt = actors.Delivered, last.Add(time.Minute)
	got = reload(actors.PutOrder{Order: &delivered})
	if got.Progress != nil || got.State != actors.Delivered ||
		!got.UpdatedAt.Equal(delivered.UpdatedAt) {
		t.Fatalf("rewritten order: progress %+v, state %s, updated %v",
			got.Progress, got.State, got.UpdatedAt)
	}

	s := openTest(t, dir)
	defer s.Close()
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(progressKey(testAgent, order.ID))
		return err
	})
	if !errors.Is(err, badger.ErrKeyNotFound) {
		t.Errorf("progress record after the order was rewritten: err = %v", err)
	}
}

// TestLoadSkipsProgressOlderThanItsOrder plays a build from before progress records: it wrote
// the whole order after a progress record and left the record behind.
func TestLoadSkipsProgressOlderThanItsOrder(t *testing.T) {
	reported := time.Unix(2000, 0).UTC()
	later := reported.Add(time.Minute)
	cases := []struct {
		name  string
		state actors.OrderState
		prog  *actors.Progress
	}{
		{"progress reported again", actors.InProgress, &actors.Progress{Percent: 30, At: later}},
		{"delivered", actors.Delivered, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openTest(t, t.TempDir())
			defer s.Close()
			order := sampleOrder()
			order.State, order.UpdatedAt = actors.InProgress, reported.Add(-time.Hour)
			appendWait(t, s, actors.PutAgent{State: sampleState()}, actors.PutOrder{Order: order},
				actors.PutProgress{AgentID: testAgent, OrderID: order.ID,
					Progress: actors.Progress{Percent: 20, At: reported}})
			order.State, order.Progress, order.UpdatedAt = tc.state, tc.prog, later
			rewritten, err := encode(order)
			if err != nil {
				t.Fatal(err)
			}
			err = s.db.Update(func(txn *badger.Txn) error {
				return txn.Set(orderKey(testAgent, order.ID), rewritten)
			})
			if err != nil {
				t.Fatal(err)
			}

			snaps, err := s.Load()
			if err != nil {
				t.Fatal(err)
			}
			got := snaps[0].Orders[0]
			if got.State != tc.state || !got.UpdatedAt.Equal(later) ||
				(got.Progress == nil) != (tc.prog == nil) ||
				(got.Progress != nil && *got.Progress != *tc.prog) {
				t.Errorf("order = %s, progress %+v, updated %v; want %s, %+v, %v",
					got.State, got.Progress, got.UpdatedAt, tc.state, tc.prog, later)
			}
		})
	}
}

func TestLoadRefusesProgressOfUnknownOrder(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	appendWait(t, s, actors.PutAgent{State: sampleState()}, actors.PutOrder{Order: sampleOrder()},
		actors.PutProgress{AgentID: testAgent, OrderID: "ord_abcdefghijklmnop_2",
			Progress: actors.Progress{Percent: 1}})

	_, err := s.Load()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("load err = %v, want ErrCorrupt", err)
	}
}

// FuzzDecodeProgress: no input may panic the decoder, and what decodes survives another round
// trip unchanged. (Varints may be written longer than needed, so the bytes themselves may differ.)
func FuzzDecodeProgress(f *testing.F) {
	f.Add(encodeProgress(&actors.Progress{Percent: 50, Message: "half", At: time.Unix(3, 4)}))
	f.Add([]byte{progressVersion, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeProgress(b)
		if err != nil {
			return
		}
		again, err := decodeProgress(encodeProgress(&p))
		if err != nil || again != p {
			t.Fatalf("%x decodes to %+v, which comes back as %+v, %v", b, p, again, err)
		}
	})
}
