// Package persistence keeps heeprd's state in badger so that nothing acknowledged is lost.
//
// Agents describe what changed as plain actors.Change values; Append encodes them at once (so the
// actor may go on changing its state) and queues them. One committer goroutine takes everything
// queued since its last commit and writes it in a single transaction, synced to disk when --fsync
// is on, then calls each change's done function. Many agents' writes thus share one sync (group
// commit): syncing costs latency, not throughput. Commits happen in the order of Append, so a
// reply sent after a commit also covers every change appended before it.
//
// The one state allowed to lag is an agent's last poll time. FlushHeartbeats writes the times
// that changed into the poll log (polllog.go), a few thousand agents to a record, and spreads the
// records over its time so that badger gets a steady trickle instead of a burst. Now and then a
// flush writes every agent's time (a checkpoint), reading the fleet a part at a time with a pause
// every few thousand agents (PollTimes, actors.Pacer) so that polls are not held up behind it.
//
// If a commit fails the store refuses every later write (ErrBroken) and reports unhealthy:
// memory may then be ahead of disk, and acknowledging more would be a lie.
//
// Every value starts with a version byte: 1 for JSON, 2 for the binary layout of agent records
// (agentcodec.go), which are read by the million at start-up, 3 for the poll log's older layout
// (still read) and for an agent record that also holds the keys its key replaced, 4 for an
// order's latest progress (progress.go), which agents send in a stream, 5 for the poll log. A
// byte means one layout within a kind of record. Load refuses to start on a record it cannot
// decode and names its key, rather than drop data silently. The key layout is documented in
// keys.go. Every kind of record sorts by agent id, so Load splits the id space into parts read
// side by side, and finds each record's agent with a cursor that only moves forward instead of a
// map.
package persistence
