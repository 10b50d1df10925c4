package main

import (
	"bufio"
	"os"
	"strings"
)

// logProblemsSummary counts what heeprd logged at WARN and ERROR level.
type logProblemsSummary struct {
	warnings, errors int
	first            string // the first such line, shortened
}

// logProblems reads the server's JSON log for WARN and ERROR lines: the sign of something that
// failed under load even when every answer was a success.
func (s *server) logProblems() logProblemsSummary {
	var p logProblemsSummary
	f, err := os.Open(s.logPath)
	if err != nil {
		return p
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, `"level":"WARN"`):
			p.warnings++
		case strings.Contains(line, `"level":"ERROR"`):
			p.errors++
		default:
			continue
		}
		if p.first == "" {
			p.first = line[:min(len(line), 300)]
		}
	}
	return p
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
