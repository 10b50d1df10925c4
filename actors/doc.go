// Package actors holds all of heeprd's mutable state: one protoactor-go actor per agent, which
// owns the agent's key hash, bootstrap token, event queue, orders, skill overrides and last poll
// time. Nothing else reads or writes that state, so no lock guards it.
//
// # Active and passive agents
//
// The Fleet keeps every agent's state in its routing entry (Ref) and runs an actor only for an
// agent that is being sent messages. The first message to a passive agent spawns its actor under
// the shard's write lock, and Passivate stops actors that were sent nothing for a while and have
// nothing queued. A restart therefore spawns no actors at all, and an idle agent costs its
// state (about 0.5 KB) instead of its state and an actor (about 1 KB). Every incarnation gets a
// fresh mailbox, so a stopping actor and its successor never share one, and the successor waits
// until protoactor has released the agent's name.
//
// # Protocol
//
// Callers reach an agent through Fleet.Ask with a message from messages.go. The message travels in
// an envelope with a pooled one-slot reply channel: a protoactor future costs about three times
// as many allocations per call, and on the poll path that is a third of the throughput. Messages
// stay plain data, and the agent id is the actor's name, so that a cluster mode can route the same
// messages by id later.
//
// An envelope that wakes an idle mailbox is handled on the sender's goroutine once the sender
// let go of the routing lock (envelope.runWoken): the actor still handles one message at a time,
// but an empty poll costs no goroutine switch, and its answer is usually ready before Ask would
// arm its timer. Only a backlog is handed to the dispatcher's workers. The Fleet posts to the
// mailbox it keeps in the Ref rather than through the PID, which saves three pointer hops that
// are cache misses at a million agents.
//
// Receive dispatches each message to a plain handler method that takes the current time and
// returns (reply, changes, error); tests call the handlers directly with a fake clock. When a
// handler returns changes, the actor hands them to the Journal and goes on with its next message;
// the reply is sent only once the journal reports them durable. The actor never blocks.
//
// # Keys
//
// A key is sk_live_<agent id>_<secret>, so the transport can route it before anything is looked
// up; the actor compares the SHA-256 of the secret with its own in constant time. Order and event
// ids embed the agent's id part the same way (ord_<id>_<n>).
//
// # Stopping
//
// Fleet sends under a read lock of its shard, and detaches an actor under the write lock before
// stopping it (StopAll and stop also remove the agent), so a request either reaches a live actor
// (which handles everything queued before the stop) or starts a new one, or gets ErrNoAgent:
// none is dropped silently. Passivate detaches only an actor whose mailbox is empty and idle,
// which no sender can change while the write lock is held. A handler that panics answers
// ErrInternal instead of escaping, which would restart the actor and leave its caller waiting.
//
// # Mailboxes
//
// Mailboxes are unbounded (mailbox.go): a bounded mailbox blocks the sender (an HTTP worker)
// when full. The HTTP listeners bound the work in flight instead (--max-conns), and a request
// waits at most --ask-timeout for its answer.
package actors
