// Command bench is heeprd's load harness:
//
//	go run ./bench <mode> [flags]
//
// It loads only servers on this machine: either one it starts itself (--spawn) or a running one
// given by loopback URLs (--target); any other host is refused. Every run stops by itself after
// its --warmup plus --duration (at most an hour each) or --requests requests, whichever comes
// first (a status run after --rounds, at most 100, of two such phases; a crash run after its
// --kills or --time-limit; a restart run after its --rounds, each start given at most 2
// minutes to become ready); Ctrl-C ends it early and still stops a spawned server.
//
// # Target
//
//	--spawn bin/heeprd     start heeprd on two free 127.0.0.1 ports, with a fresh temporary data
//	                       directory (or --data DIR), an admin token of the harness's choosing
//	                       (passed as HEEPR_ADMIN_TOKEN) and --fsync passed through; wait for
//	                       /readyz; stop it with SIGTERM, by PID, at the end. Its log is kept in
//	                       the temporary directory while it runs and shown if it fails to start.
//	--server-args "..."    with --spawn: more heeprd flags, such as --agent-rate=0 (the flags
//	                       that choose listeners, data or admin token are refused).
//	--target http://127.0.0.1:8080 --ops http://127.0.0.1:9464 --admin-token-file FILE
//	                       a running heeprd; the token file is needed only for modes that call
//	                       the admin API (provisioning, placing orders).
//	--timeout 10s          timeout of one request.
//
// # Modes
//
// provision creates --agents agents through POST /admin/agents and registers each with its
// bootstrap token (POST /agent/register), --concurrency at a time, and writes
// "agent_id<TAB>api_key" lines to --keys (mode 0600) for later runs against the same server.
//
// poll sends GET /events with keys rotated over every agent. Keys come from --keys when that
// file exists and the server is not a freshly spawned one; otherwise --agents agents are
// provisioned first. Closed loop by default: --connections workers, each with its own
// keep-alive connection, sending back to back. With --rate R it is an open loop: request i is
// scheduled at start+i/R and its latency is measured from that scheduled time, so a stalled
// server shows as latency instead of as fewer requests (coordinated omission corrected).
// --warmup traffic is not counted. With --ceiling the same load is also run against a bare
// fasthttp server answering {}, right before and right after heeprd, and the report gives
// heeprd's throughput and p99 as ratios to the mean of the two ceiling runs. Without --pin the
// ceiling server runs inside the harness while heeprd is a process of its own, so on 2 cores
// the ratio also measures how the OS splits them; use --pin for figures to compare.
//
// --pin (poll and ceiling) measures as the reference method does (wrk on one core, the server
// on the other): the harness pins every thread of itself, the load generator, to the first CPU
// it may use (CPU 0) with GOMAXPROCS 1, and starts the server under test on the second (CPU 1)
// under taskset: the spawned heeprd and, with --ceiling, the ceiling server as a process of its
// own (the internal ceiling-server mode below, started for each ceiling run and stopped with
// SIGTERM after it). A Go server started on one CPU runs with GOMAXPROCS 1. --pin needs --spawn
// (a running server is not the harness's to pin: start it under taskset -c 1 and the harness
// under taskset -c 0 instead) and 2 CPUs; with fewer it runs unpinned and says so on stderr and
// in the report's notes. Only Linux can pin.
//
// mixed is a day in the life: every agent polls every --cadence, varied by ±--jitter, measured
// from its planned poll time; orders are placed through POST /admin/orders at --order-rate for
// random agents (--order-connections at a time, open loop); an agent that receives a new_order
// delivers it (POST /orders/{id}/deliver with a JSON text). It reports poll latency, order
// placement latency, placed→seen (the placing time travels in the order's brief) and
// seen→delivered (201). After --duration, placing stops and agents keep polling until every
// placed order is delivered or --drain passes (default: one cadence plus jitter plus 1s);
// orders never seen count as "not_seen_by_end" errors.
//
// poll and mixed sample the server's resident memory (process_resident_memory_bytes from the
// ops listener's /metrics, known with --spawn and with --target plus --ops) when the measured
// run starts, every --rss-every (10s; 0: off) during it, and when it ends, and report the
// first, last, minimum and maximum and the sample count ("rss" in JSON), so that a long run
// shows whether memory stays flat. A failed scrape is counted, not fatal.
//
// heeprd limits each agent's requests (--agent-rate, 20/s by default). A flat-out poll over few
// agents exceeds that budget and then mostly measures the 429 path; the report says so. Spread
// the load over more agents, or spawn with --server-args=--agent-rate=0 to measure the poll path.
//
// status answers whether synced state changes from many agents reach at least 0.5x the
// empty-poll throughput of the same run. Keys as in poll; closed loop over --connections
// (default 256) keep-alive connections, shared by every phase. Each of --rounds (2) rounds is
// an empty-poll phase (GET /events, rows poll-1, poll-2, ...) and then a status phase (rows
// status-1, ...), each --warmup plus --duration long, so both kinds see the same machine.
// Before the first round the harness places one order for each agent through the admin API;
// every status request is then a progress update on that order (POST /status with order_id,
// progress and message), a durable write that heeprd syncs to disk (group commit) before
// answering. The report adds, per round, the successful requests per second of
// both phases and their ratio, the mean of those ratios, and whether it reaches 0.5 ("status"
// in JSON). Use at least as many --agents as --connections, and --server-args=--agent-rate=0
// (else the per-agent budget answers 429); the report notes either. An interrupted run reports
// only its complete rounds.
//
// restart measures a restart after a crash against a plain read of the same data. It needs
// --spawn and --data DIR, a data directory that already holds agents (for example made by
// provision --spawn BIN --data DIR), and takes --rounds (3), --settle (3s), --fsync,
// --server-args and --timeout. First it starts heeprd once on a fresh empty directory and
// reads its RSS --settle after /readyz answers 200: the empty-server baseline. Then each round
// starts heeprd on DIR, waits for ready and kills it with SIGKILL; (a) times a fresh start to
// /readyz 200 (polled every 5ms), reads process_resident_memory_bytes and heepr_agents from
// its /metrics --settle after ready, and kills it with SIGKILL again; (b) with no server
// running, opens the badger database in DIR/db with heeprd's badger options and times a read
// of every key and value (open included, close not). Badger refuses a read-only open of a
// directory whose write-ahead log needs truncating, as after a SIGKILL; the iteration then
// opens it read-write (which replays the log as heeprd does; the refused attempt is not timed)
// and a note says so. The first start of every round leaves DIR as a SIGKILL does, whatever
// the previous iteration did. It reports per round the restart and iteration seconds, their
// ratio, keys, value bytes, how badger was opened and the RSS; the median ratio; the median
// RSS after restart, the empty server's RSS, and their difference divided by heepr_agents as
// bytes per agent. DIR changes as it would under any heeprd start (and read-write badger open)
// and stays a valid data directory with the same agents.
//
// ceiling runs only the bare server, with the poll load flags and --pin: inside the harness, or
// with --pin as a ceiling-server process on the second CPU.
//
// ceiling-server (internal, started by --pin; not in the usage) runs only the bare fasthttp
// server answering {} as application/json on --addr (a loopback IP literal and port; the
// default 127.0.0.1:0 takes a free port), prints "listening ADDR" on stdout once it accepts
// connections, and serves until SIGTERM or SIGINT. It dies with the harness (parent-death
// signal).
//
// crash checks heeprd's durability promise: a 2xx answer to a write means the write survives
// kill -9. It needs --spawn (it kills and restarts its own heeprd, with fsync on unless --fsync
// says otherwise, on a fresh data directory) and takes --agents (default 32; every fourth
// approves orders by hand, revision caps cycle 0, 1, 2), --workers (4), --kills N (10),
// --min-uptime (300ms), --max-uptime (2s), --seed (0: from the clock) and --time-limit (30m).
// After provisioning, the workers run a mixed workload: placing orders, polling, progress
// reports, deliveries as JSON and as multipart with binary files holding NUL bytes, declines,
// flags, the owner's release, refund, approve, deny, revision, scope change and unflag, pausing
// and resuming agents, and replacing an agent's key (revoke-key, a new bootstrap token,
// register). Each agent belongs to one worker, so its writes are sequential. Meanwhile heeprd
// is killed with SIGKILL N times, each at a uniformly random moment between --min-uptime and
// --max-uptime after it became ready, and restarted on the same data; the workload resumes.
// Then the workers stop, one agent's key is revoked for good, heeprd is restarted cleanly, and
// everything is verified through the admin API and GET /events.
//
// Every write goes into a ledger once its outcome is known: acknowledged (2xx, with what the
// answer said), refused (4xx: nothing done) or in doubt (the connection broke, or 5xx: it may
// have happened). Writes that never reached heeprd are not recorded. Deliver, decline, flag
// and status carry an Idempotency-Key, so after a broken attempt they are retried until their
// outcome is known; admin writes and registrations are not retried blindly and stay in doubt.
// The verifier replays the ledger through heeprd's order state machine (README, "Orders and
// events") and key model, keeping for each order and agent the set of states the ledger
// allows, and requires: every acknowledged agent and order exists; each order's state,
// revisions, progress, terms and delivery count are what the ledger allows; every
// acknowledged delivery is there with its text, URLs and files, each downloaded and compared
// byte for byte and by SHA-256; an acknowledged answer or a refusal mid-run fits the writes
// before it; every agent's status and key_state fit; its latest key authenticates (the one
// agent whose key is revoked gets key_revoked, and so do the last three keys each agent's key
// replaced; older ones get key_unknown); and every event an acknowledged write queued
// (new_order, owner_approved_order, owner_denied_order, revision_request, scope_change) was
// returned by some poll or by the final ones, with no id reused for another event. It prints
// kills survived, writes by kind (acknowledged, in doubt, refused, resolved by retry), what
// was checked and each violation; --json prints the same as JSON. Exit status 1 on any
// violation.
//
// # Output
//
// A table on stdout: per run requests, rate, errors and latency p50/p90/p99/p99.9/max from an
// HDR histogram with microsecond resolution, then errors by class: the HTTP status with the
// envelope's code ("503 unavailable") or a network class ("net timeout"). Failed requests are
// in the latency figures too. In poll and ceiling mode the header says which CPUs each side
// could run on, read back from the kernel for every thread of each process during the run:
// "cpus  harness 0 (GOMAXPROCS 1)  heeprd 1  ceiling 1 (own process)  pinned" (the "cpus"
// object in JSON, with pinned, harness, harness_gomaxprocs, heeprd, ceiling and
// ceiling_process "own" or "harness"). --json prints the same as JSON instead. A progress line goes to
// stderr about twice a second when stderr is a terminal, or always with --progress. Exit status
// is 0 after a run even if it counted errors, 1 when the harness failed, 2 for bad flags.
//
// Workers record into histograms of their own, merged once the run is over; the poll hot path
// reuses one fasthttp request and response per worker.
//
// # Examples
//
//	go build -o bin/heeprd ./cmd/heeprd
//	go run ./bench poll --spawn bin/heeprd --agents 1000 --connections 64 --duration 10s \
//		--ceiling --pin --server-args=--agent-rate=0
//	go run ./bench poll --spawn bin/heeprd --agents 1000 --rate 20000 --duration 10s
//	go run ./bench mixed --spawn bin/heeprd --agents 5000 --cadence 5s --order-rate 50 \
//		--duration 30s
//	go run ./bench provision --target http://127.0.0.1:8080 --ops http://127.0.0.1:9464 \
//		--admin-token-file data/admin-token --agents 10000 --keys /tmp/keys.tsv
//	go run ./bench poll --target http://127.0.0.1:8080 --ops http://127.0.0.1:9464 \
//		--keys /tmp/keys.tsv --connections 256 --duration 20s --json
//	go run ./bench crash --spawn bin/heeprd --kills 50
//	go run ./bench status --spawn bin/heeprd --server-args=--agent-rate=0 --agents 1000 \
//		--duration 10s --rounds 3
//	go run ./bench provision --spawn bin/heeprd --data /tmp/heeprd-data --agents 20000
//	go run ./bench restart --spawn bin/heeprd --data /tmp/heeprd-data --rounds 5
//	go run ./bench mixed --spawn bin/heeprd --agents 20000 --cadence 1m --duration 30m
//
// The server type (Start, Stop, Kill9, Restart) and the adminClient and agentClient helpers are
// meant to be reused by further modes; the crash and restart modes use server.
package main
