package actors

import (
	"fmt"
	"slices"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// recordingInvoker records what the mailbox hands it; a message "boom" panics.
type recordingInvoker struct {
	got       []string
	escalated []any
}

func (r *recordingInvoker) InvokeSystemMessage(m any) { r.got = append(r.got, fmt.Sprint("sys:", m)) }

func (r *recordingInvoker) InvokeUserMessage(m any) {
	if m == "boom" {
		panic("boom")
	}
	r.got = append(r.got, fmt.Sprint(m))
}

func (r *recordingInvoker) EscalateFailure(reason, m any) { r.escalated = append(r.escalated, m) }

// manualDispatcher keeps what is scheduled until the test runs it.
type manualDispatcher struct {
	scheduled  []func()
	throughput int
}

func (d *manualDispatcher) Schedule(fn func()) { d.scheduled = append(d.scheduled, fn) }
func (d *manualDispatcher) Throughput() int    { return d.throughput }

func (d *manualDispatcher) runAll() (turns int) {
	for len(d.scheduled) > 0 {
		fn := d.scheduled[0]
		d.scheduled = d.scheduled[1:]
		fn()
		turns++
	}
	return turns
}

func TestMailbox(t *testing.T) {
	cases := []struct {
		name       string
		throughput int
		post       func(m *mailbox)
		want       []string
		turns      int
		escalated  int
	}{
		{"user messages in order", 10, func(m *mailbox) {
			m.PostUserMessage(1)
			m.PostUserMessage(2)
			m.PostUserMessage(3)
		}, []string{"1", "2", "3"}, 1, 0},
		{"system messages first", 10, func(m *mailbox) {
			m.PostUserMessage("u")
			m.PostSystemMessage("s")
		}, []string{"sys:s", "u"}, 1, 0},
		{"suspended holds user messages", 10, func(m *mailbox) {
			m.PostSystemMessage(&actor.SuspendMailbox{})
			m.PostUserMessage("held")
		}, nil, 1, 0},
		{"resume releases them", 10, func(m *mailbox) {
			m.PostSystemMessage(&actor.SuspendMailbox{})
			m.PostUserMessage("held")
			m.PostSystemMessage(&actor.ResumeMailbox{})
		}, []string{"held"}, 1, 0},
		{"throughput yields to other mailboxes", 2, func(m *mailbox) {
			for i := range 5 {
				m.PostUserMessage(i)
			}
		}, []string{"0", "1", "2", "3", "4"}, 3, 0},
		{"a panic is escalated and the next message still runs", 10, func(m *mailbox) {
			m.PostUserMessage("boom")
			m.PostUserMessage("after")
		}, []string{"after"}, 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inv, disp := &recordingInvoker{}, &manualDispatcher{throughput: tc.throughput}
			m := &mailbox{}
			m.RegisterHandlers(inv, disp)
			tc.post(m)
			if n := len(disp.scheduled); n != 1 {
				t.Fatalf("scheduled %d times before running, want once", n)
			}
			turns := disp.runAll()
			if !slices.Equal(inv.got, tc.want) || turns != tc.turns ||
				len(inv.escalated) != tc.escalated {
				t.Errorf("got %v in %d turns, %d escalated; want %v in %d, %d", inv.got, turns,
					len(inv.escalated), tc.want, tc.turns, tc.escalated)
			}
			if m.running && len(disp.scheduled) == 0 && m.user.len() == 0 {
				t.Error("mailbox left running with nothing to do")
			}
		})
	}
}

func TestMailboxIdleAgainAfterDraining(t *testing.T) {
	inv, disp := &recordingInvoker{}, &manualDispatcher{throughput: 10}
	m := &mailbox{}
	m.RegisterHandlers(inv, disp)
	m.PostUserMessage(1)
	disp.runAll()
	m.PostUserMessage(2)
	if len(disp.scheduled) != 1 {
		t.Fatalf("an idle mailbox was not scheduled for a new message")
	}
	disp.runAll()
	if !slices.Equal(inv.got, []string{"1", "2"}) || m.UserMessageCount() != 0 {
		t.Errorf("got %v, %d waiting", inv.got, m.UserMessageCount())
	}
}

// TestQueue checks first-in first-out order across the inline slot and the spill slice, and
// that an emptied queue keeps nothing alive.
func TestQueue(t *testing.T) {
	cases := []struct {
		name string
		ops  string // p pushes the next number, o pops and expects the oldest one pushed
	}{
		{"one at a time", "popopo"},
		{"a burst", "pppppooooo"},
		{"interleaved", "ppoppoopoo"},
		{"refill after the spill drained", "pppooopppooo"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var (
				q          queue
				next, want int
			)
			for i, op := range tc.ops {
				if op == 'p' {
					q.push(next)
					next++
					continue
				}
				if got := q.pop(); got != want {
					t.Fatalf("op %d: pop = %v, want %d", i, got, want)
				}
				want++
			}
			if q.len() != next-want {
				t.Errorf("len = %d, want %d", q.len(), next-want)
			}
			if q.len() == 0 && (q.first != nil || q.rest != nil) {
				t.Errorf("an empty queue holds %v and %v", q.first, q.rest)
			}
		})
	}
}
