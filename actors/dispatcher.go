package actors

import (
	"runtime"

	"github.com/asynkron/protoactor-go/actor"
)

// workerDispatcher runs actor mailboxes on a fixed set of long-lived goroutines. protoactor's
// default dispatcher starts a goroutine each time an idle mailbox gets a message; for agents,
// which are idle between polls, that is one goroutine per poll, and its small initial stack must
// grow (a stack copy) to hold the mailbox's call chain: about a third of the poll path's CPU in
// BenchmarkEmptyPoll. Workers keep their grown stacks.
//
// Handlers never block, so a few workers per core suffice. When every worker is busy and the
// queue is full, Schedule falls back to a goroutine of its own rather than block the sender.
type workerDispatcher struct {
	work       chan func()
	throughput int
}

// NewWorkerDispatcher starts workers goroutines (a few per core when workers is 0) that live as
// long as the process. throughput is how many messages a mailbox handles before it yields.
func NewWorkerDispatcher(workers, throughput int) actor.Dispatcher {
	if workers <= 0 {
		workers = 4 * runtime.GOMAXPROCS(0)
	}
	d := &workerDispatcher{work: make(chan func(), 64*workers), throughput: throughput}
	for range workers {
		go d.run()
	}
	return d
}

func (d *workerDispatcher) run() {
	for fn := range d.work {
		fn()
	}
}

// Schedule runs fn on a worker, or on a new goroutine if none can take it now.
func (d *workerDispatcher) Schedule(fn func()) {
	select {
	case d.work <- fn:
	default:
		go fn()
	}
}

// Throughput is how many messages a mailbox handles per turn.
func (d *workerDispatcher) Throughput() int { return d.throughput }
