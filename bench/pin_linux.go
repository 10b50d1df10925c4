package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// allowedCPUs lists the CPUs this thread may run on (the whole process unless pinned).
func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	return cpuSetList(&set), nil
}

func cpuSetList(set *unix.CPUSet) []int {
	var cpus []int
	for cpu := range len(set) * 64 {
		if set.IsSet(cpu) {
			cpus = append(cpus, cpu)
		}
	}
	return cpus
}

// pinProcess confines every thread of this process to cpu and sets GOMAXPROCS to 1, so that
// the load generator is one Go scheduler on one CPU. sched_setaffinity acts on one thread, so
// each thread in /proc/self/task is pinned, until a pass finds none new; threads the runtime
// starts later are cloned from pinned ones and inherit the mask. restore puts back the mask
// and GOMAXPROCS from before (tests run several modes in one process).
func pinProcess(cpu int) (restore func() error, err error) {
	var before, pinned unix.CPUSet
	if err := unix.SchedGetaffinity(0, &before); err != nil {
		return nil, fmt.Errorf("pin: sched_getaffinity: %w", err)
	}
	pinned.Set(cpu)
	if err := setProcessAffinity(&pinned); err != nil {
		return nil, errors.Join(err, setProcessAffinity(&before))
	}
	procs := runtime.GOMAXPROCS(1)
	return func() error {
		err := setProcessAffinity(&before)
		if os.Getenv("GOMAXPROCS") == "" {
			runtime.SetDefaultGOMAXPROCS() // and automatic updates again
		} else {
			runtime.GOMAXPROCS(procs)
		}
		return err
	}, nil
}

func setProcessAffinity(set *unix.CPUSet) error {
	done := map[int]bool{}
	for range 100 {
		tids, err := threadIDs(os.Getpid())
		if err != nil {
			return fmt.Errorf("pin: %w", err)
		}
		fresh := false
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			fresh, done[tid] = true, true
			err := unix.SchedSetaffinity(tid, set)
			if err != nil && !errors.Is(err, unix.ESRCH) { // ESRCH: the thread has exited
				return fmt.Errorf("pin: sched_setaffinity thread %d: %w", tid, err)
			}
		}
		if !fresh {
			return nil
		}
	}
	return errors.New("pin: new threads kept appearing")
}

// threadIDs lists the threads of process pid.
func threadIDs(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(entries))
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// processCPUs returns the CPUs the threads of process pid may run on, as read from the kernel:
// the union of every thread's affinity, such as "1" or "0-1".
func processCPUs(pid int) (string, error) {
	tids, err := threadIDs(pid)
	if err != nil {
		return "", fmt.Errorf("cpus of pid %d: %w", pid, err)
	}
	var union unix.CPUSet
	for _, tid := range tids {
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &set); err != nil {
			if errors.Is(err, unix.ESRCH) {
				continue
			}
			return "", fmt.Errorf("cpus of pid %d thread %d: %w", pid, tid, err)
		}
		for i := range union {
			union[i] |= set[i]
		}
	}
	return formatCPUs(cpuSetList(&union)), nil
}

// childAttrs makes a child the harness starts get SIGTERM if the harness dies without stopping
// it, so that no ceiling server outlives a killed run.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
