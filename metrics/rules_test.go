package metrics

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// promtool returns the path of promtool, or skips the test when it is missing outside CI. In
// CI (CI set) a missing promtool fails: .ci/run installs it.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("promtool not found in CI (install the Debian package prometheus): %v", err)
	}
	t.Skip("promtool not installed (apt-get install prometheus); set CI=1 to make this fail")
	return ""
}

// TestRulesPromtool proves that rules.yml is valid (promtool check rules) and that every alert
// fires and stays quiet where rules_test.yml says (promtool test rules).
func TestRulesPromtool(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{
		{"check", "rules", "rules.yml"},
		{"test", "rules", "rules_test.yml"},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestRulesNameExportedMetrics proves that rules only select metrics heeprd exports, series
// recorded earlier in the file, or Prometheus's own up.
func TestRulesNameExportedMetrics(t *testing.T) {
	rf := readRules(t, "rules.yml")
	known := exportedNames(t)
	known["up"] = true
	for _, r := range rf.records {
		known[r] = true
	}
	if len(rf.exprs) < 10 {
		t.Fatalf("found only %d expressions in rules.yml", len(rf.exprs))
	}
	for _, e := range rf.exprs {
		for _, n := range promMetricNames(e) {
			if !known[n] {
				t.Errorf("%s: heeprd exports no %q", e, n)
			}
		}
	}
}

// TestRulesTestCoversEveryAlert proves that rules_test.yml has a case for each alert.
func TestRulesTestCoversEveryAlert(t *testing.T) {
	rules, err := os.ReadFile("rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("rules_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(rules), "\n") {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), "- alert: ")
		if ok && !strings.Contains(string(tests), "alertname: "+name) {
			t.Errorf("rules_test.yml never evaluates alert %s", name)
		}
	}
}
