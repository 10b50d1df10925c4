package main

import (
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestPlanPin(t *testing.T) {
	tests := []struct {
		name    string
		allowed []int
		want    pinPlan
		wantErr string // "" for a plan
	}{
		{"two cores", []int{0, 1}, pinPlan{load: 0, server: 1}, ""},
		{"four cores", []int{0, 1, 2, 3}, pinPlan{load: 0, server: 1}, ""},
		{"unsorted", []int{3, 1, 2}, pinPlan{load: 1, server: 2}, ""},
		{"container on 2-3", []int{2, 3}, pinPlan{load: 2, server: 3}, ""},
		{"duplicates", []int{1, 1, 4}, pinPlan{load: 1, server: 4}, ""},
		{"one core", []int{0}, pinPlan{}, "may use only CPU 0: running unpinned"},
		{"one core, duplicated", []int{5, 5}, pinPlan{}, "only CPU 5"},
		{"none", nil, pinPlan{}, "may use none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := planPin(tt.allowed)
			switch {
			case tt.wantErr == "" && (err != nil || got != tt.want):
				t.Fatalf("= %+v, %v; want %+v", got, err, tt.want)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("= %+v, %v; want an error containing %q", got, err, tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), "--pin needs 2 CPUs"):
				t.Errorf("error %q does not say what --pin needs", err)
			}
		})
	}
}

func TestFormatCPUs(t *testing.T) {
	tests := []struct {
		cpus []int
		want string
	}{
		{nil, ""},
		{[]int{0}, "0"},
		{[]int{1}, "1"},
		{[]int{0, 1}, "0-1"},
		{[]int{0, 2, 3}, "0,2-3"},
		{[]int{0, 1, 2, 5, 7, 8}, "0-2,5,7-8"},
	}
	for _, tt := range tests {
		if got := formatCPUs(tt.cpus); got != tt.want {
			t.Errorf("formatCPUs(%v) = %q, want %q", tt.cpus, got, tt.want)
		}
	}
}

func TestCheckServeAddr(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:0", true},
		{"127.0.0.1:8080", true},
		{"[::1]:65535", true},
		{"0.0.0.0:8080", false},
		{"10.1.2.3:80", false},
		{"localhost:80", false}, // no names: nothing is resolved
		{"127.0.0.1", false},
		{"127.0.0.1:65536", false},
		{"127.0.0.1:-1", false},
		{"127.0.0.1:+80", false},
		{"127.0.0.1:http", false},
		{"", false},
	}
	for _, tt := range tests {
		if err := checkServeAddr(tt.addr); (err == nil) != tt.ok {
			t.Errorf("checkServeAddr(%q) = %v, want ok %v", tt.addr, err, tt.ok)
		}
	}
}

func TestCPUReportLine(t *testing.T) {
	tests := []struct {
		c    cpuReport
		want string
	}{
		{cpuReport{Pinned: true, Harness: "0", HarnessProcs: 1, Heeprd: "1", Ceiling: "1",
			CeilingProcess: "own"},
			"cpus  harness 0 (GOMAXPROCS 1)  heeprd 1  ceiling 1 (own process)  pinned"},
		{cpuReport{Harness: "0-1", HarnessProcs: 2, Heeprd: "0-1", Ceiling: "0-1",
			CeilingProcess: "harness"},
			"cpus  harness 0-1 (GOMAXPROCS 2)  heeprd 0-1  ceiling 0-1 (inside the harness)  " +
				"unpinned"},
		{cpuReport{Harness: "0-1", HarnessProcs: 2},
			"cpus  harness 0-1 (GOMAXPROCS 2)  unpinned"},
	}
	for _, tt := range tests {
		if got := tt.c.line(); got != tt.want {
			t.Errorf("line() = %q, want %q", got, tt.want)
		}
	}
	if got := mergeCPUs("1", "1"); got != "1" {
		t.Errorf("mergeCPUs(1, 1) = %q", got)
	}
	if got := mergeCPUs("1", "0-1"); got != "1 then 0-1" {
		t.Errorf("mergeCPUs(1, 0-1) = %q", got)
	}
}

// TestCeilingProc starts the ceiling server as a process of its own (this test binary in the
// ceiling-server mode, see TestMain), on the server CPU when there are two, and checks its
// answer, its CPUs and its clean stop.
func TestCeilingProc(t *testing.T) {
	cpu, wantCPUs := -1, ""
	if allowed, err := allowedCPUs(); err == nil {
		if plan, err := planPin(allowed); err == nil {
			cpu, wantCPUs = plan.server, strconv.Itoa(plan.server)
		} else {
			t.Logf("not pinned: %v", err)
		}
	}
	proc, err := startCeilingProc(t.Context(), cpu)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = proc.kill()
		}
	})
	if proc.pid() == os.Getpid() {
		t.Fatal("the ceiling server runs in the harness process")
	}
	if wantCPUs != "" && runtime.GOOS == "linux" {
		if got, err := processCPUs(proc.pid()); err != nil || got != wantCPUs {
			t.Errorf("ceiling server CPUs %q, %v; want %q", got, err, wantCPUs)
		}
	}
	ep := newEndpoint(proc.addr, 1, 5*time.Second)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(ep.base + "/events")
	if err := ep.hc.Do(req, resp); err != nil {
		t.Fatal(err)
	}
	if string(resp.Body()) != "{}" || string(resp.Header.ContentType()) != "application/json" {
		t.Errorf("answer %q (%s), want {} as application/json", resp.Body(),
			resp.Header.ContentType())
	}
	ep.hc.CloseIdleConnections()
	stopped = true
	if err := proc.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// TestCeilingServerModeRefusesRemote checks the hidden mode's own flag.
func TestCeilingServerModeRefusesRemote(t *testing.T) {
	if _, err := parseOptions(ceilingServerMode, []string{"--addr", "0.0.0.0:80"},
		io.Discard); err == nil {
		t.Fatal("ceiling-server accepted a non-loopback --addr")
	}
}
