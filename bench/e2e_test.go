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
		"--duration", "3s", "--warmup", "0s")
	wantCounts(t, rep, "poll", "order_place", "order_seen", "order_deliver")
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

	// Pinned, the ceiling is a process of its own; every side says where it ran.
	procs := runtime.GOMAXPROCS(0)
	rep = runJSON(t, "poll", []string{"--spawn", bin, "--fsync=false",
		"--server-args=--agent-rate=0"}, "--agents", "5", "--connections", "4",
		"--duration", "2s", "--warmup", "0s", "--ceiling", "--pin")
	wantCounts(t, rep, "ceiling-before", "heeprd", "ceiling-after")
	wantPinned(t, rep, procs)
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
