package main

import (
	"bytes"
	"io"
	"os"
	"strings"
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

// TestUsageListsModes checks that the usage line names every mode but the internal one.
func TestUsageListsModes(t *testing.T) {
	var stderr bytes.Buffer
	if err := run(t.Context(), []string{"--help"}, io.Discard, &stderr); err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(stderr.String())
	if len(fields) < 5 || fields[0] != "usage:" {
		t.Fatalf("usage %q", stderr.String())
	}
	listed := map[string]bool{}
	for _, m := range strings.Split(fields[4], "|") {
		listed[m] = true
	}
	for mode := range modes {
		if listed[mode] == (mode == ceilingServerMode) {
			t.Errorf("mode %q: listed %v in %q", mode, listed[mode], fields[4])
		}
		delete(listed, mode)
	}
	if len(listed) > 0 {
		t.Errorf("usage lists modes that do not exist: %v", listed)
	}
}
