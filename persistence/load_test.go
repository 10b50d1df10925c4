package persistence

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/heepr/heeprd/actors"
)

// TestLoadFindsEachOwner: with many agents, each dependent record reaches its own agent and no
// other, whichever agents have some and whichever have none.
func TestLoadFindsEachOwner(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	ids := []string{ // stored out of order; Load returns them sorted
		"agt_mmmmmmmmmmmmmmmm", "agt_aaaaaaaaaaaaaaaa", "agt_zzzzzzzzzzzzzzzz",
		"agt_bbbbbbbbbbbbbbbb", "agt_7777777777777777",
	}
	var changes []actors.Change
	for _, id := range ids {
		st := sampleState()
		st.ID = id
		changes = append(changes, actors.PutAgent{State: st})
	}
	withRecords := map[string]int{ // agent -> how many orders and skill files it gets
		"agt_aaaaaaaaaaaaaaaa": 1, "agt_mmmmmmmmmmmmmmmm": 3, "agt_zzzzzzzzzzzzzzzz": 2,
	}
	for id, n := range withRecords {
		part := id[len(actors.AgentPrefix):]
		for i := 1; i <= n; i++ {
			o := sampleOrder()
			o.ID, o.AgentID = fmt.Sprintf("ord_%s_%d", part, i), id
			changes = append(changes, actors.PutOrder{Order: o},
				actors.PutSkillFile{AgentID: id, File: fmt.Sprintf("F%d.md", i), Content: id})
		}
	}
	appendWait(t, s, changes...)
	flushWait(t, s, nil, actors.Heartbeat{AgentID: "agt_zzzzzzzzzzzzzzzz",
		LastPoll: time.Unix(99, 0).UTC()})

	snaps, err := s.Load()
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if len(snaps) != len(ids) {
		t.Fatalf("got %d agents, want %d", len(snaps), len(ids))
	}
	for i, snap := range snaps {
		id := snap.State.ID
		if i > 0 && snaps[i-1].State.ID >= id {
			t.Errorf("agents not in id order: %s after %s", id, snaps[i-1].State.ID)
		}
		want := withRecords[id]
		if len(snap.Orders) != want || len(snap.Skill) != want {
			t.Errorf("%s: %d orders and %d skill files, want %d each", id, len(snap.Orders),
				len(snap.Skill), want)
		}
		for _, o := range snap.Orders {
			if o.AgentID != id {
				t.Errorf("%s got order %s of %s", id, o.ID, o.AgentID)
			}
		}
		for _, content := range snap.Skill {
			if content != id {
				t.Errorf("%s got a skill file of %s", id, content)
			}
		}
		if polled := !snap.LastPoll.IsZero(); polled != (id == "agt_zzzzzzzzzzzzzzzz") {
			t.Errorf("%s: last poll %v", id, snap.LastPoll)
		}
	}
}

// TestLoadRefusesOrphanBetweenAgents: a record whose agent is missing is refused even when
// agents sort on both sides of it.
func TestLoadRefusesOrphanBetweenAgents(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	for _, id := range []string{"agt_aaaaaaaaaaaaaaaa", "agt_cccccccccccccccc"} {
		st := sampleState()
		st.ID = id
		appendWait(t, s, actors.PutAgent{State: st},
			actors.PutSkillFile{AgentID: id, File: "RULES.md", Content: "x"})
	}
	orphan := "s/agt_bbbbbbbbbbbbbbbb/RULES.md"
	err := s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(orphan), []byte("x")) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("load err = %v, want ErrCorrupt for %s", err, orphan)
	}
}

// TestIDBounds: the parts cover the whole id space in order, without overlap, whatever the
// number of CPUs.
func TestIDBounds(t *testing.T) {
	tests := []struct {
		cpus int
		want []string
	}{
		{0, []string{"", ""}},
		{1, []string{"", ""}},
		{2, []string{"", "agt_k", ""}},
		{4, []string{"", "agt_c", "agt_k", "agt_s", ""}},
		{64, []string{"", "agt_6", "agt_c", "agt_g", "agt_k", "agt_o", "agt_s", "agt_w", ""}},
	}
	for _, tc := range tests {
		if got := idBounds(tc.cpus); !slices.Equal(got, tc.want) {
			t.Errorf("idBounds(%d) = %q, want %q", tc.cpus, got, tc.want)
		}
	}
}
