package actors

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestOrderStateMachine(t *testing.T) {
	// The expected table (wantAllowed, in agent_test.go) must cover every action there is.
	for _, act := range Actions {
		if _, ok := wantAllowed[act]; !ok {
			t.Errorf("action %s has no row in the expected table", act)
		}
		if _, ok := allowedFrom[act]; !ok {
			t.Errorf("action %s has no row in allowedFrom", act)
		}
	}
	if len(wantAllowed) != len(Actions) || len(allowedFrom) != len(Actions) {
		t.Errorf("%d expected rows, %d rows in allowedFrom, %d actions",
			len(wantAllowed), len(allowedFrom), len(Actions))
	}
	for _, act := range []Action{ActDeliver, ActDecline, ActFlag, ActProgress, ActApprove,
		ActDeny, ActRelease, ActRefund} {
		if !slices.Contains(Actions, act) {
			t.Errorf("Actions lacks %s", act)
		}
	}

	for _, s := range OrderStates {
		for _, act := range Actions {
			allowed := slices.Contains(wantAllowed[act], s)
			t.Run(fmt.Sprintf("%s/%s", s, act), func(t *testing.T) {
				o := &Order{ID: "ord_aaaaaaaaaaaaaaaa_1", State: s}
				err := o.check(act)
				if allowed {
					if err != nil {
						t.Fatalf("%s from %s refused: %v", act, s, err)
					}
					return
				}
				if !errors.Is(err, ErrInvalidState) {
					t.Fatalf("%s from %s: err = %v, want ErrInvalidState", act, s, err)
				}
				if msg := err.Error(); !strings.Contains(msg, "is "+string(s)+";") ||
					!strings.Contains(msg, o.ID) || !strings.Contains(msg, string(act)) {
					t.Errorf("message %q does not name order, state %s and action %s", msg, s, act)
				}
			})
		}
	}
}

func TestOrderStateMachineUnknownAction(t *testing.T) {
	o := &Order{ID: "ord_x_1", State: InProgress}
	if err := o.check(Action("teleport")); !errors.Is(err, ErrInvalidState) {
		t.Errorf("unknown action: err = %v, want ErrInvalidState", err)
	}
}

func TestFinalStates(t *testing.T) {
	final := map[OrderState]bool{Released: true, Declined: true, Denied: true, Refunded: true}
	seen := map[OrderState]bool{}
	for _, s := range OrderStates {
		t.Run(string(s), func(t *testing.T) {
			if seen[s] {
				t.Fatalf("%s listed twice in OrderStates", s)
			}
			seen[s] = true
			if s.Final() != final[s] {
				t.Errorf("Final() = %v, want %v", s.Final(), final[s])
			}
			if !s.Final() {
				return
			}
			for _, act := range Actions {
				if err := (&Order{State: s}).check(act); err == nil {
					t.Errorf("final state %s allows %s", s, act)
				}
			}
		})
	}
	if len(OrderStates) != 9 {
		t.Errorf("%d states, want 9", len(OrderStates))
	}
	if OrderState("").Final() {
		t.Error("the zero state is final")
	}
}

func TestMoveToAndView(t *testing.T) {
	o := &Order{ID: "ord_a_1", Gig: "g", Scope: "s", Tier: "t", Price: 7, Brief: "b",
		Deadline: t0.Add(time.Hour), RevisionsAllowed: 2, RevisionsUsed: 1}
	tests := []struct {
		name   string
		to     OrderState
		by     string
		reason string
		at     time.Time
	}{
		{"placed", InProgress, ByCustomer, "placed", t0},
		{"delivered", Delivered, ByAgent, "", t0.Add(time.Minute)},
		{"released", Released, ByOwner, "ok", t0.Add(2 * time.Minute)},
	}
	var from OrderState
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o.moveTo(tc.to, tc.by, tc.reason, tc.at)
			want := Transition{At: tc.at, From: from, To: tc.to, By: tc.by, Reason: tc.reason}
			if len(o.History) != i+1 || o.History[i] != want {
				t.Fatalf("history = %+v, want last %+v", o.History, want)
			}
			if o.State != tc.to || !o.UpdatedAt.Equal(tc.at) {
				t.Errorf("state %s updated %v", o.State, o.UpdatedAt)
			}
			from = tc.to
		})
	}
	v := o.View()
	want := OrderView{ID: "ord_a_1", Gig: "g", Scope: "s", Tier: "t", Price: 7, Brief: "b",
		Deadline: t0.Add(time.Hour), State: Released, RevisionsAllowed: 2, RevisionsUsed: 1}
	if v != want {
		t.Errorf("View() = %+v, want %+v", v, want)
	}
}
