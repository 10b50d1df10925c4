package main

import (
	"os"
	"testing"
)

// TestMain lets the test binary stand in for the harness binary: --pin starts the ceiling
// server as os.Executable() in the ceiling-server mode, which under go test is this binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == ceilingServerMode {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}
