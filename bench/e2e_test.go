package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestEndToEnd builds heeprd, starts it, and runs provision, poll and mixed against it through
// the command line, polls again after kill -9 and a restart, then polls once more with --spawn.
// Every run must count no error.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts heeprd")
	}
	bin := buildHeeprd(t)
	srv, err := newServer(bin, "", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("stop heeprd: %v", err)
		}
	})
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tokenFile, keys := filepath.Join(dir, "admin-token"), filepath.Join(dir, "keys.tsv")
	if err := os.WriteFile(tokenFile, []byte(srv.adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	to := []string{"--target", "http://" + srv.agentAddr, "--ops", "http://" + srv.opsAddr,
		"--admin-token-file", tokenFile, "--keys", keys}

	rep := runJSON(t, "provision", to, "--agents", "20", "--concurrency", "4")
	if rep.Provision == nil || rep.Provision.Agents != 20 {
		t.Fatalf("provisioned %+v, want 20 agents", rep.Provision)
	}
	// 200 polls/s over 20 agents stays inside heeprd's default per-agent budget.
	rep = runJSON(t, "poll", to, "--connections", "4", "--rate", "200", "--duration", "2s",
		"--warmup", "200ms")
	wantCounts(t, rep, "heeprd")

	rep = runJSON(t, "mixed", to, "--connections", "4", "--cadence", "500ms", "--order-rate", "20",
		"--duration", "3s", "--warmup", "0s", "--rss-every", "1s")
	wantCounts(t, rep, "poll", "order_place", "order_seen", "order_deliver")
	wantRSS(t, rep, 3) // at the start, after 1s and 2s at least, and at the end
	if o := rep.Orders; o == nil || o.Placed == 0 || o.Delivered != o.Placed || o.Unseen != 0 {
		t.Errorf("orders %+v, want all placed orders delivered", rep.Orders)
	}

	// The keys survive kill -9 and a restart on the same ports and data.
	if err := srv.Kill9(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	rep = runJSON(t, "poll", to, "--connections", "2", "--rate", "100", "--duration", "1s",
		"--warmup", "0s")
	wantCounts(t, rep, "heeprd")

	rep = runJSON(t, "poll", []string{"--spawn", bin, "--fsync=false"}, "--agents", "5",
		"--connections", "2", "--rate", "50", "--duration", "1s", "--warmup", "0s")
	wantCounts(t, rep, "heeprd")
	wantRSS(t, rep, 2) // a run shorter than --rss-every: its start and its end

	// Pinned, the ceiling is a process of its own; every side says where it ran.
	procs := runtime.GOMAXPROCS(0)
	rep = runJSON(t, "poll", []string{"--spawn", bin, "--fsync=false",
		"--server-args=--agent-rate=0"}, "--agents", "5", "--connections", "4",
		"--duration", "2s", "--warmup", "0s", "--ceiling", "--pin")
	wantCounts(t, rep, "ceiling-before", "heeprd", "ceiling-after")
	wantPinned(t, rep, procs)
}

// TestEndToEndStatus runs the status mode against a spawned heeprd: two rounds of empty polls
// and synced status changes, each phase counted and compared.
func TestEndToEndStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts heeprd")
	}
	bin := buildHeeprd(t)
	rep := runJSON(t, "status", []string{"--spawn", bin, "--server-args=--agent-rate=0"},
		"--agents", "24", "--connections", "8", "--duration", "400ms", "--warmup", "100ms",
		"--rounds", "2")
	wantCounts(t, rep, "poll-1", "status-1", "poll-2", "status-2")
	st := rep.Status
	if st == nil || len(st.Rounds) != 2 {
		t.Fatalf("status %+v, want 2 rounds", st)
	}
	var sum float64
	for i, rd := range st.Rounds {
		if rd.PollRate <= 0 || rd.StatusRate <= 0 || !near(rd.Ratio, rd.StatusRate/rd.PollRate) {
			t.Errorf("round %d: %+v, want both rates positive and ratio their quotient", i+1, rd)
		}
		sum += rd.Ratio
	}
	if !near(st.MeanRatio, sum/2) || st.Target != statusTarget ||
		st.TargetMet != (st.MeanRatio >= statusTarget) {
		t.Errorf("status %+v: want mean ratio %v and target_met against %v", st, sum/2,
			statusTarget)
	}
	if rep.Settings["rounds"] != "2" || rep.Settings["agents"] != "24" {
		t.Errorf("settings %v", rep.Settings)
	}
}

// TestEndToEndRestart provisions agents into a data directory, then runs the restart mode on
// it: kills, timed restarts with their RSS, and timed iterations over the killed database.
func TestEndToEndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts heeprd")
	}
	bin := buildHeeprd(t)
	data := filepath.Join(t.TempDir(), "data")
	rep := runJSON(t, "provision", []string{"--spawn", bin, "--data", data, "--fsync=false"},
		"--agents", "30", "--concurrency", "4")
	if rep.Provision == nil || rep.Provision.Agents != 30 {
		t.Fatalf("provisioned %+v, want 30 agents", rep.Provision)
	}

	var stdout, stderr bytes.Buffer
	argv := []string{"restart", "--json", "--spawn", bin, "--data", data, "--rounds", "2",
		"--settle", "200ms"}
	if err := run(t.Context(), argv, &stdout, &stderr); err != nil {
		t.Fatalf("%v: %v\n%s", argv, err, stderr.String())
	}
	var rr restartReport
	if err := json.Unmarshal(stdout.Bytes(), &rr); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, stdout.String())
	}
	if len(rr.Rounds) != 2 {
		t.Fatalf("%d rounds, want 2: %+v", len(rr.Rounds), rr)
	}
	readWrite := false
	for _, rd := range rr.Rounds {
		if rd.RestartSeconds <= 0 || rd.IterateSeconds <= 0 || rd.RSS <= 0 || rd.Agents != 30 ||
			rd.Keys < 30 || !near(rd.Ratio, rd.RestartSeconds/rd.IterateSeconds) {
			t.Errorf("round %+v: want positive times and RSS, 30 agents, at least 30 keys and "+
				"the ratio of the times", rd)
		}
		if rd.Open != "read-only" && rd.Open != "read-write" {
			t.Errorf("round %d opened badger %q", rd.Round, rd.Open)
		}
		readWrite = readWrite || rd.Open == "read-write"
	}
	if rr.MedianRatio <= 0 || rr.RSSRestart <= 0 || rr.RSSEmpty <= 0 || rr.Agents != 30 ||
		!near(rr.BytesPerAgent, float64(rr.RSSRestart-rr.RSSEmpty)/30) {
		t.Errorf("summary %+v: want positive median ratio and RSS, 30 agents, bytes per agent "+
			"from the RSS difference", rr)
	}
	// A read-write iteration must say why badger would not open the directory read-only.
	if notes := strings.Join(rr.Notes, "\n"); readWrite && !strings.Contains(notes, "read-only") {
		t.Errorf("read-write iterations without a note: %q", notes)
	}
}

// wantRSS checks the RSS samples of a run: at least atLeast of them, none failed, and first,
// last, minimum and maximum consistent.
func wantRSS(t *testing.T, rep *report, atLeast int) {
	t.Helper()
	r := rep.RSS
	switch {
	case r == nil:
		t.Errorf("%s: no RSS samples", rep.Mode)
	case r.Samples < atLeast || r.Failed != 0:
		t.Errorf("%s: RSS %+v, want at least %d samples and no failure", rep.Mode, *r, atLeast)
	case r.Min <= 0 || r.Min > min(r.First, r.Last) || r.Max < max(r.First, r.Last):
		t.Errorf("%s: RSS %+v, want 0 < min <= first, last <= max", rep.Mode, *r)
	}
}

// wantPinned checks the CPUs a --pin --ceiling report gives: the harness on the first CPU it
// may use, heeprd and the ceiling server on the second, or, with fewer than 2 CPUs, no pinning
// and a note saying so.
// It also checks that the test process got its CPUs and GOMAXPROCS (procsBefore) back.
func wantPinned(t *testing.T, rep *report, procsBefore int) {
	t.Helper()
	c := rep.CPUs
	if c == nil || rep.Ceiling == nil || rep.Ceiling.ThroughputRatio == 0 {
		t.Fatalf("cpus %+v, ceiling %+v: want both", c, rep.Ceiling)
	}
	allowed, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	plan, err := planPin(allowed)
	if err != nil {
		t.Logf("not pinned: %v", err)
		if c.Pinned || len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "--pin skipped") {
			t.Errorf("cpus %+v, notes %q: want unpinned with a note", c, rep.Notes)
		}
		return
	}
	load, server := strconv.Itoa(plan.load), strconv.Itoa(plan.server)
	want := cpuReport{Pinned: true, Harness: load, HarnessProcs: 1, Heeprd: server,
		Ceiling: server, CeilingProcess: "own"}
	if *c != want {
		t.Errorf("cpus %+v, want %+v", *c, want)
	}
	if runtime.GOMAXPROCS(0) != procsBefore {
		t.Errorf("GOMAXPROCS %d after the pinned run, want %d back", runtime.GOMAXPROCS(0),
			procsBefore)
	}
	if got, _ := processCPUs(os.Getpid()); got != formatCPUs(allowed) {
		t.Errorf("test process still on CPUs %q after the pinned run, want %q", got,
			formatCPUs(allowed))
	}
}

func buildHeeprd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "heeprd")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/heepr/heeprd/cmd/heeprd")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build heeprd: %v\n%s", err, out)
	}
	return bin
}

// runJSON runs one mode with --json and decodes its report.
func runJSON(t *testing.T, mode string, target []string, args ...string) *report {
	t.Helper()
	var stdout, stderr bytes.Buffer
	argv := append(append([]string{mode, "--json"}, target...), args...)
	if err := run(t.Context(), argv, &stdout, &stderr); err != nil {
		t.Fatalf("%v: %v\n%s", argv, err, stderr.String())
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v: report is not JSON: %v\n%s", argv, err, stdout.String())
	}
	for _, s := range rep.Runs {
		if s.Errors != 0 {
			t.Errorf("%s %s: %d errors %v", mode, s.Name, s.Errors, s.ErrorsBy)
		}
	}
	return &rep
}

// wantCounts checks that each named run finished some requests.
func wantCounts(t *testing.T, rep *report, names ...string) {
	t.Helper()
	for _, name := range names {
		found := false
		for _, s := range rep.Runs {
			if s.Name == name {
				found = true
				if s.Requests == 0 || s.Latency.Max == 0 {
					t.Errorf("%s %s: %d requests, max latency %dµs", rep.Mode, name, s.Requests,
						s.Latency.Max)
				}
			}
		}
		if !found {
			t.Errorf("%s: no run %q in %+v", rep.Mode, name, rep.Runs)
		}
	}
}
