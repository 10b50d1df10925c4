// Package actors holds all of heeprd's mutable state: one protoactor-go actor per agent, which
// owns the agent's key hash, bootstrap token, event queue, orders, skill overrides and last poll
// time. Nothing else reads or writes that state, so no lock guards it.
//
// # Protocol
//
// Callers reach an agent through Fleet.Ask with a message from messages.go. The message travels in
// an envelope with a pooled one-slot reply channel: a protoactor future costs about three times
// as many allocations per call, and on the poll path that is a third of the throughput. Messages
// stay plain data, and the agent id is the actor's name, so that a cluster mode can route the same
// messages by id later.
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
// Fleet sends under a read lock of its shard and removes an agent under the write lock before
// poisoning it, so a request either reaches a live actor (which handles everything queued before
// the poison) or gets ErrNoAgent: none is dropped silently. A handler that panics answers
// ErrInternal instead of escaping, which would restart the actor and leave its caller waiting.
//
// # Mailboxes
//
// Mailboxes are unbounded (mailbox.go): a bounded mailbox blocks the sender (an HTTP worker)
// when full. The HTTP listeners bound the work in flight instead (--max-conns), and a request
// waits at most --ask-timeout for its answer.
package actors
