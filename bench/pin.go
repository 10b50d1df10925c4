package main

import (
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// pinPlan is where --pin puts each side of a load run: the harness (the load generator) on one
// CPU, the server under test (a spawned heeprd, or the ceiling server as a process of its own)
// on another, as in the reference method of wrk on one core and the server on the other.
type pinPlan struct{ load, server int }

// planPin picks the two lowest CPUs the harness may use: CPU 0 for the load and CPU 1 for the
// server on an ordinary machine. With fewer than two it says why pinning is skipped.
func planPin(allowed []int) (pinPlan, error) {
	cpus := slices.Clone(allowed)
	slices.Sort(cpus)
	cpus = slices.Compact(cpus)
	if len(cpus) < 2 {
		have := "none"
		if len(cpus) > 0 {
			have = "only CPU " + formatCPUs(cpus)
		}
		return pinPlan{}, fmt.Errorf("--pin needs 2 CPUs and the harness may use %s: "+
			"running unpinned, load generator and server sharing the CPU", have)
	}
	return pinPlan{load: cpus[0], server: cpus[1]}, nil
}

// formatCPUs writes a CPU list the way taskset and /proc do: "0", "0-1", "0,2-3". It expects
// a sorted list without duplicates; an empty list is "".
func formatCPUs(cpus []int) string {
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(cpus[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return b.String()
}

// pinnedCommand returns a command running name with args, started under taskset on cpu when
// cpu >= 0: taskset sets its own affinity and then execs name, so every thread of the new
// process (Go runtime threads included) is born on cpu, and its PID is that of the process.
func pinnedCommand(cpu int, name string, args ...string) (*exec.Cmd, error) {
	if cpu < 0 {
		return exec.Command(name, args...), nil
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return nil, fmt.Errorf("--pin starts servers under taskset (util-linux): %w", err)
	}
	return exec.Command(taskset, append([]string{"-c", strconv.Itoa(cpu), name}, args...)...),
		nil
}

// cpuReport says which CPUs each side of a load run could run on, read back from the kernel
// (the affinity of every thread of the process) while the process was still running.
type cpuReport struct {
	Pinned bool `json:"pinned"`
	// Harness is the load generator, this process; HarnessProcs its GOMAXPROCS during the runs.
	Harness      string `json:"harness"`
	HarnessProcs int    `json:"harness_gomaxprocs"`
	// Heeprd is "" when the harness did not spawn it (then its CPUs are unknown).
	Heeprd string `json:"heeprd,omitempty"`
	// Ceiling is set with --ceiling and in ceiling mode; CeilingProcess is "own" (a process
	// of its own, the ceiling-server mode) or "harness" (a server inside the harness).
	Ceiling        string `json:"ceiling,omitempty"`
	CeilingProcess string `json:"ceiling_process,omitempty"`
}

// line is the report header's CPU line.
func (c *cpuReport) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cpus  harness %s (GOMAXPROCS %d)", c.Harness, c.HarnessProcs)
	if c.Heeprd != "" {
		fmt.Fprintf(&b, "  heeprd %s", c.Heeprd)
	}
	switch c.CeilingProcess {
	case "own":
		fmt.Fprintf(&b, "  ceiling %s (own process)", c.Ceiling)
	case "harness":
		fmt.Fprintf(&b, "  ceiling %s (inside the harness)", c.Ceiling)
	}
	if c.Pinned {
		b.WriteString("  pinned")
	} else {
		b.WriteString("  unpinned")
	}
	return b.String()
}

// mergeCPUs joins two CPU lists as read at different times; equal lists stay as they are.
func mergeCPUs(a, b string) string {
	switch {
	case a == "" || a == b:
		return b
	case b == "":
		return a
	}
	return a + " then " + b
}
