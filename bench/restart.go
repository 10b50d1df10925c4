package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Bounds and settings of a restart run.
const (
	maxSettle = time.Minute
	// restartReadyEvery is how often a timed start polls /readyz: the resolution of the
	// restart time, fine enough for starts of a few tens of milliseconds.
	restartReadyEvery = 5 * time.Millisecond
	// maxNoteLen shortens error texts quoted in notes (badger's can be long).
	maxNoteLen = 300
)

func (o *options) restartFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.spawn, "spawn", "", "the heeprd binary to start and kill (required)")
	fs.StringVar(&o.dataDir, "data", "", "data directory that already holds agents, made for "+
		"example by provision --spawn BIN --data DIR (required; killed heeprds leave it as "+
		"after a crash)")
	fs.BoolVar(&o.fsync, "fsync", true, "passed to heeprd --fsync")
	fs.Func("server-args", "more heeprd flags, space-separated (repeatable)", o.addServerArgs)
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "timeout of one request")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds of kill, timed restart and timed iteration")
	fs.DurationVar(&o.settle, "settle", 3*time.Second,
		"after ready, wait this long before reading the server's RSS")
}

// validateRestart checks the restart mode's flags.
func (o *options) validateRestart() error {
	var problems flagProblems
	check := problems.check
	check(o.spawn != "", "restart needs --spawn: it starts and kills a heeprd of its own")
	check(o.dataDir != "", "restart needs --data: a data directory that holds agents")
	check(!setsReserved(o.serverArgs), "--server-args must not set --addr, --ops-addr, "+
		"--data, --in-memory or --admin-token: the harness chooses them")
	check(o.timeout > 0 && o.timeout <= 10*time.Minute, "--timeout must be 1ns to 10m")
	check(o.rounds >= 1 && o.rounds <= maxRounds, "--rounds must be 1 to 100")
	check(o.settle >= 0 && o.settle <= maxSettle, "--settle must be 0 to 1m")
	return problems.err()
}

// restartRun is one run of the restart mode, on one server whose data directory is --data.
type restartRun struct {
	o        *options
	srv      *server
	dbDir    string
	log      io.Writer
	verbose  bool
	readOnly bool // open badger read-only; false once badger refused that
	notes    []string
}

// runRestart is the restart mode: the RSS of an empty server, then --rounds rounds of start,
// SIGKILL, (a) a timed start with its RSS and (b) a timed iteration over the database.
func runRestart(ctx context.Context, o *options, stdout, stderr io.Writer) (err error) {
	dbDir := filepath.Join(o.dataDir, "db")
	if err := checkDir(dbDir); err != nil {
		return fmt.Errorf("restart: no database at %s (make one with provision --spawn BIN "+
			"--data DIR): %w", dbDir, err)
	}
	empty, err := emptyServerRSS(ctx, o, stderr)
	if err != nil {
		return err
	}
	srv, err := newServer(o.spawn, o.dataDir, o.fsync, o.serverArgs)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, srv.Close()) }()
	srv.readyEvery = restartReadyEvery
	r := &restartRun{o: o, srv: srv, dbDir: dbDir, log: stderr, readOnly: true,
		verbose: o.progress || isTerminal(stderr)}
	rep := newRestartReport(o)
	for n := 1; n <= o.rounds; n++ {
		rd, err := r.round(ctx, n)
		if err != nil {
			return err
		}
		rep.Rounds = append(rep.Rounds, rd)
	}
	rep.finish(empty)
	rep.Notes = append(rep.Notes, r.notes...)
	if p := srv.logProblems(); p.warnings+p.errors > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("heeprd logged %d warnings and %d errors "+
			"(log kept: %s); first: %s", p.warnings, p.errors, srv.logPath, p.first))
	}
	return rep.write(stdout, o.asJSON)
}

// emptyServerRSS starts heeprd once on a fresh empty directory and reads its RSS --settle
// after ready: the baseline that the per-agent memory is measured from.
func emptyServerRSS(ctx context.Context, o *options, log io.Writer) (rss int64, err error) {
	srv, err := newServer(o.spawn, "", o.fsync, o.serverArgs)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, srv.Close()) }()
	if err := srv.Start(ctx); err != nil {
		return 0, fmt.Errorf("restart: empty server: %w", err)
	}
	m, err := settledMetrics(ctx, srv, o.settle, o.timeout, metricRSS)
	if err != nil {
		return 0, fmt.Errorf("restart: empty server: %w", err)
	}
	if o.progress || isTerminal(log) {
		fmt.Fprintf(log, "restart: empty server RSS %s\n", byteSize(int64(m[metricRSS])))
	}
	return int64(m[metricRSS]), nil
}

// settledMetrics waits settle (heeprd returns restore's garbage to the OS once ready) and
// reads the named metrics from the server's /metrics.
func settledMetrics(ctx context.Context, srv *server, settle, timeout time.Duration,
	names ...string) (map[string]float64, error) {
	if !sleepCtx(ctx, settle) {
		return nil, fmt.Errorf("settle: %w", ctx.Err())
	}
	ep := newEndpoint(srv.opsAddr, 1, timeout)
	defer ep.hc.CloseIdleConnections()
	return scrapeMetrics(ep, names...)
}

// round primes the directory (start, ready, SIGKILL), then (a) times a start of heeprd on the
// killed directory and reads its RSS, kills it again, and (b) times an iteration over the
// database with no server running. The priming makes every round begin on a directory left
// by a SIGKILL, even when the previous iteration had to open badger read-write.
func (r *restartRun) round(ctx context.Context, n int) (restartRound, error) {
	rd := restartRound{Round: n}
	if err := r.srv.Start(ctx); err != nil {
		return rd, fmt.Errorf("restart: round %d: first start: %w", n, err)
	}
	if err := r.srv.Kill9(); err != nil {
		return rd, fmt.Errorf("restart: round %d: %w", n, err)
	}

	began := time.Now()
	if err := r.srv.Start(ctx); err != nil {
		return rd, fmt.Errorf("restart: round %d: timed start: %w", n, err)
	}
	rd.RestartSeconds = time.Since(began).Seconds()
	m, err := settledMetrics(ctx, r.srv, r.o.settle, r.o.timeout, metricRSS, metricAgents)
	if kerr := r.srv.Kill9(); kerr != nil || err != nil {
		return rd, fmt.Errorf("restart: round %d: %w", n, errors.Join(err, kerr))
	}
	rd.RSS, rd.Agents = int64(m[metricRSS]), int64(m[metricAgents])

	scan, err := r.scan()
	if err != nil {
		return rd, fmt.Errorf("restart: round %d: %w", n, err)
	}
	rd.IterateSeconds, rd.Keys, rd.ValueBytes = scan.took.Seconds(), scan.keys, scan.valueBytes
	rd.Open = openMode(scan.readOnly)
	rd.Ratio = ratio(rd.RestartSeconds, rd.IterateSeconds)
	if r.verbose {
		fmt.Fprintf(r.log, "restart: round %d/%d: ready in %.3fs, RSS %s; iteration %.3fs "+
			"(%d keys, %s)\n", n, r.o.rounds, rd.RestartSeconds, byteSize(rd.RSS), rd.IterateSeconds,
			rd.Keys, rd.Open)
	}
	return rd, nil
}

// scan times one iteration, read-only while badger allows it on the killed directory. Once
// it refuses, the run says why and opens read-write from then on.
func (r *restartRun) scan() (scanResult, error) {
	if r.readOnly {
		res, err := scanBadger(r.dbDir, true, r.log)
		if err == nil {
			return res, nil
		}
		r.readOnly = false
		r.notes = append(r.notes, "badger refused to open the killed directory read-only ("+
			shorten(err.Error(), maxNoteLen)+"); the iterations open it read-write, which "+
			"replays its write-ahead log; the refused attempt is not timed")
	}
	return scanBadger(r.dbDir, false, r.log)
}

// openMode names how the iteration opened badger.
func openMode(readOnly bool) string {
	if readOnly {
		return "read-only"
	}
	return "read-write"
}

// shorten cuts s to at most n bytes, marking the cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// restartReport is the result of a restart run.
type restartReport struct {
	Mode          string            `json:"mode"`
	Data          string            `json:"data"`
	Settings      map[string]string `json:"settings"`
	Rounds        []restartRound    `json:"rounds"`
	MedianRatio   float64           `json:"median_ratio"`
	Agents        int64             `json:"agents"`
	RSSRestart    int64             `json:"rss_after_restart_bytes"`
	RSSEmpty      int64             `json:"rss_empty_server_bytes"`
	BytesPerAgent float64           `json:"rss_bytes_per_agent"`
	Notes         []string          `json:"notes,omitempty"`
}

// restartRound is one round: the timed start and its RSS, the timed iteration, and the ratio
// of the two times.
type restartRound struct {
	Round          int     `json:"round"`
	RestartSeconds float64 `json:"restart_seconds"`
	IterateSeconds float64 `json:"iterate_seconds"`
	Ratio          float64 `json:"ratio"`
	RSS            int64   `json:"rss_bytes"`
	Agents         int64   `json:"agents"`
	Keys           int64   `json:"keys"`
	ValueBytes     int64   `json:"value_bytes"`
	Open           string  `json:"iterate_open"`
}

func newRestartReport(o *options) *restartReport {
	return &restartReport{Mode: "restart", Data: o.dataDir, Rounds: []restartRound{},
		Settings: map[string]string{
			"server": strings.Join(append([]string{"spawned", o.spawn,
				"--fsync=" + strconv.FormatBool(o.fsync)}, o.serverArgs...), " "),
			"rounds": strconv.Itoa(o.rounds), "settle": o.settle.String(),
		}}
}

// finish computes the summary from the rounds and the empty server's RSS: the median ratio,
// the median RSS after restart, and the RSS above the empty server's per agent.
func (rep *restartReport) finish(emptyRSS int64) {
	ratios, rss := make([]float64, len(rep.Rounds)), make([]float64, len(rep.Rounds))
	agents := map[int64]bool{}
	for i, rd := range rep.Rounds {
		ratios[i], rss[i] = rd.Ratio, float64(rd.RSS)
		agents[rd.Agents] = true
		rep.Agents = rd.Agents
	}
	if len(agents) > 1 {
		rep.Notes = append(rep.Notes, "heepr_agents differed between rounds; the last "+
			"round's count is used")
	}
	rep.MedianRatio = median(ratios)
	rep.RSSRestart, rep.RSSEmpty = int64(median(rss)), emptyRSS
	rep.BytesPerAgent = ratio(float64(rep.RSSRestart-emptyRSS), float64(rep.Agents))
	if rep.Agents == 0 {
		rep.Notes = append(rep.Notes, "the server reported no agents: no bytes per agent")
	}
}

// median is the middle value, or the mean of the two middle values; 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// write prints the report as JSON or as a table.
func (rep *restartReport) write(w io.Writer, asJSON bool) error {
	if asJSON {
		return writeJSON(w, rep)
	}
	fmt.Fprintf(w, "mode restart  data %s\n%s\n\n", rep.Data, settingsLine(rep.Settings))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round\trestart\titeration\tratio\tkeys\tvalues\topen\trss after ready\t")
	for _, rd := range rep.Rounds {
		fmt.Fprintf(tw, "%d\t%.3fs\t%.3fs\t%.2f\t%d\t%s\t%s\t%s\t\n", rd.Round,
			rd.RestartSeconds, rd.IterateSeconds, rd.Ratio, rd.Keys, byteSize(rd.ValueBytes), rd.Open,
			byteSize(rd.RSS))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nrestart / iteration: median ratio %.2f over %d rounds\n", rep.MedianRatio,
		len(rep.Rounds))
	fmt.Fprintf(w, "rss: %s after restart (median), %s empty server; %.0f bytes per agent "+
		"over %d agents\n", byteSize(rep.RSSRestart), byteSize(rep.RSSEmpty), rep.BytesPerAgent,
		rep.Agents)
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	return nil
}
