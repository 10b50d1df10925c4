package main

import (
	"os"
	"runtime"
	"strconv"
	"testing"
)

// TestPinProcess pins this process to one CPU and back, reading every thread's affinity.
func TestPinProcess(t *testing.T) {
	allowed, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	before, err := processCPUs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if before != formatCPUs(allowed) {
		t.Fatalf("threads may use %q, the calling thread %q", before, formatCPUs(allowed))
	}
	plan, err := planPin(allowed)
	if err != nil {
		t.Skipf("pinning skipped, as --pin would: %v", err)
	}
	procs := runtime.GOMAXPROCS(0)
	restore, err := pinProcess(plan.load)
	if err != nil {
		t.Fatal(err)
	}
	// Goroutines locked to threads and blocked make the runtime start threads after the
	// pinning (GOMAXPROCS is 1): those must be pinned too.
	release, locked := make(chan struct{}), make(chan struct{})
	for range 3 {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			locked <- struct{}{}
			<-release
		}()
		<-locked
	}
	tids, _ := threadIDs(os.Getpid())
	got, err := processCPUs(os.Getpid())
	close(release)
	if err != nil || got != strconv.Itoa(plan.load) || runtime.GOMAXPROCS(0) != 1 {
		t.Errorf("pinned, %d threads: CPUs %q (%v), GOMAXPROCS %d; want %d and 1", len(tids),
			got, err, runtime.GOMAXPROCS(0), plan.load)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	if got, err := processCPUs(os.Getpid()); err != nil || got != before {
		t.Errorf("restored: CPUs %q (%v), want %q", got, err, before)
	}
	if os.Getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) != procs {
		t.Errorf("restored GOMAXPROCS %d, want %d", runtime.GOMAXPROCS(0), procs)
	}
}
