//go:build !linux

package main

import (
	"errors"
	"os"
	"runtime"
	"syscall"
)

var errPinLinux = errors.New("CPU affinity is read and set only on Linux")

// allowedCPUs cannot read the affinity here: --pin then runs unpinned, saying why.
func allowedCPUs() ([]int, error) { return nil, errPinLinux }

func pinProcess(int) (func() error, error) { return nil, errPinLinux }

// processCPUs reports every CPU for this process and "unknown" for others.
func processCPUs(pid int) (string, error) {
	if pid != os.Getpid() {
		return "unknown", nil
	}
	cpus := make([]int, runtime.NumCPU())
	for i := range cpus {
		cpus[i] = i
	}
	return formatCPUs(cpus), nil
}

func childAttrs() *syscall.SysProcAttr { return nil }
