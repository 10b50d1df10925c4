package main

import (
	"testing"
	"time"
)

// TestE2EPassivation: an idle agent's actor stops after --passivate-after, the agent's queued
// event waits in its state, and its next poll starts a new actor that hands the event out. A
// restart starts no actors at all until agents are sent something.
func TestE2EPassivation(t *testing.T) {
	s := startServer(t, "", "--passivate-after=1s")
	c := s.newAgent(t, nil)
	orderID := s.placeOrder(t, c.id, nil)
	if got := lcMetric(t, s, "heepr_agent_actors"); got != 1 {
		t.Fatalf("heepr_agent_actors = %v after an order, want 1", got)
	}

	waitForActors(t, s, 0)
	events := s.poll(t, c.key)
	if len(events) != 1 || events[0].OrderID != orderID || events[0].Kind != "new_order" {
		t.Fatalf("poll after passivation = %+v, want the new_order of %s", events, orderID)
	}
	if got := lcMetric(t, s, "heepr_agent_actors"); got != 1 {
		t.Errorf("heepr_agent_actors = %v after the poll, want 1", got)
	}

	s.stop(t)
	s = startServer(t, s.dataDir, "--passivate-after=1s")
	if got := lcMetric(t, s, "heepr_agent_actors"); got != 0 {
		t.Errorf("heepr_agent_actors = %v after a restart, want 0", got)
	}
	if got := lcMetric(t, s, "heepr_agents"); got != 1 {
		t.Errorf("heepr_agents = %v after a restart, want 1", got)
	}
	s.expectEmptyPoll(t, c.key) // the event was drained before the restart
	if o := s.getOrder(t, orderID); o.State != "in_progress" {
		t.Errorf("order after restart: state %q, want in_progress", o.State)
	}
}

// waitForActors waits up to 10 s for heepr_agent_actors to reach want.
func waitForActors(t *testing.T, s *e2eServer, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := lcMetric(t, s, "heepr_agent_actors")
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("heepr_agent_actors = %v after 10 s, want %v", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
