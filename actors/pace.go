package actors

import "time"

// Pacer spaces out a walk over many agents, such as a passivation sweep or a checkpoint of
// poll times, so that it never holds a core for long: once PaceChunk agents were counted since
// its last pause, it sleeps for PacePause. A count of several chunks at once still earns one
// pause, since their work was done in one piece already. The zero value is ready to use; a
// Pacer is not safe for concurrent use.
//
// A walk over a million agents costs a few hundred milliseconds of CPU, mostly cache misses.
// Run in one go on a busy core, it left polls queued behind it for as long, and the backlog
// took as long again to drain. The pause must be a sleep: a goroutine that only yields
// (runtime.Gosched) goes back on the run queue, and while anything is queued the scheduler does
// not look for sockets that became readable, so the polls would still wait.
type Pacer struct {
	walked int                 // agents since the last pause
	sleep  func(time.Duration) // time.Sleep when nil; tests count the pauses instead
}

const (
	// PaceChunk is how many agents a walk visits between two pauses: about a millisecond of
	// work at a million agents, when nearly every agent is a cache miss.
	PaceChunk = 4096

	// PacePause is the pause: as long as a chunk's work, so a walk takes at most half of a
	// core while it lasts.
	PacePause = time.Millisecond
)

// Walked counts n more agents visited, and pauses once a chunk's worth has been.
func (p *Pacer) Walked(n int) {
	p.walked += n
	if p.walked >= PaceChunk {
		p.walked %= PaceChunk // a whole shard at once still earns one pause
		if p.sleep == nil {
			time.Sleep(PacePause)
			return
		}
		p.sleep(PacePause)
	}
}
