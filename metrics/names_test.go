package metrics

import (
	"os"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// exportedNames returns every series name a scrape of New's registry can show: plain names,
// plus _bucket/_sum/_count for histograms and _sum/_count for summaries.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	m := newTestMetrics()
	touchAll(m)
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	names := map[string]bool{}
	for _, f := range families {
		n := f.GetName()
		names[n] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[n+"_sum"], names[n+"_count"] = true, true
		}
	}
	return names
}

var (
	// Parts of a PromQL expression that hold no metric name: strings, label matchers, ranges,
	// grouping clauses and Grafana variables.
	promStrings  = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promMatchers = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(
		`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promVars  = regexp.MustCompile(`\$\{[^}]*\}|\$\w+`)
	promToken = regexp.MustCompile(`[0-9][0-9a-zA-Z_.]*|[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	promWords = map[string]bool{
		"and": true, "or": true, "unless": true, "offset": true, "bool": true,
		"inf": true, "nan": true, "by": true, "without": true, "on": true, "ignoring": true,
		"group_left": true, "group_right": true,
	}
)

// promMetricNames returns the metric names an expression selects: every identifier that is
// not a function, aggregation, keyword, label or number.
func promMetricNames(expr string) []string {
	expr = promVars.ReplaceAllString(promStrings.ReplaceAllString(expr, `""`), "")
	expr = promGrouping.ReplaceAllString(promMatchers.ReplaceAllString(expr, ""), "")
	var names []string
	for _, m := range promToken.FindAllStringSubmatch(expr, -1) {
		tok := m[0]
		if m[1] != "" || tok[0] >= '0' && tok[0] <= '9' || promWords[strings.ToLower(tok)] {
			continue // a call, a number or duration, or a keyword
		}
		names = append(names, tok)
	}
	return names
}

// ruleFile holds what the Go tests need from rules.yml.
type ruleFile struct {
	records []string
	exprs   []string
}

var yamlKey = regexp.MustCompile(`^(\s*)(?:- )?(record|expr):\s*(.*)$`)

// readRules reads record names and expressions from a rules file with a line scanner: the
// module has no YAML parser, and rules.yml only uses plain scalars and `|` blocks for these
// keys. promtool check rules (rules_test.go) validates the file itself.
func readRules(t *testing.T, path string) ruleFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		m := yamlKey.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		value := strings.Trim(strings.TrimSpace(m[3]), `'"`)
		if strings.HasPrefix(value, "|") || strings.HasPrefix(value, ">") {
			var block []string
			for i+1 < len(lines) && indent(lines[i+1]) > len(m[1]) {
				i++
				block = append(block, strings.TrimSpace(lines[i]))
			}
			value = strings.Join(block, " ")
		}
		if m[2] == "record" {
			rf.records = append(rf.records, value)
		} else {
			rf.exprs = append(rf.exprs, value)
		}
	}
	return rf
}

func indent(line string) int {
	if strings.TrimSpace(line) == "" {
		return 1 << 30 // blank lines belong to the block
	}
	return len(line) - len(strings.TrimLeft(line, " "))
}

// TestPromMetricNames pins the extractor on the shapes the dashboard and rules use.
func TestPromMetricNames(t *testing.T) {
	cases := map[string]string{
		`sum by (le) (rate(a_bucket{x=~"$instance",y="}"}[$__rate_interval]))`:  "a_bucket",
		`time() - max(b{instance=~"$instance"} > 0)`:                            "b",
		`c < 0.5 * (c offset 1h) and (c offset 1h) >= 10`:                       "c c c",
		`x:y:rate5m / on (job, instance) group_left z and ignoring(le) up == 0`: "x:y:rate5m z up",
		`histogram_quantile(0.99, d_bucket) > 1e-3`:                             "d_bucket",
	}
	for expr, want := range cases {
		if got := strings.Join(promMetricNames(expr), " "); got != want {
			t.Errorf("%s: got %q, want %q", expr, got, want)
		}
	}
}
