package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// report is the result of one harness invocation, printed as a table or as JSON (--json).
type report struct {
	Mode      string            `json:"mode"`
	Target    string            `json:"target,omitempty"`
	Settings  map[string]string `json:"settings"`
	CPUs      *cpuReport        `json:"cpus,omitempty"`
	Runs      []seriesSummary   `json:"runs"`
	Provision *provisionResult  `json:"provision,omitempty"`
	Ceiling   *ceilingResult    `json:"ceiling,omitempty"`
	Orders    *orderResult      `json:"orders,omitempty"`
	Status    *statusResult     `json:"status,omitempty"`
	RSS       *rssResult        `json:"rss,omitempty"`
	Notes     []string          `json:"notes,omitempty"`
}

// provisionResult counts the agents created and registered.
type provisionResult struct {
	Agents  int     `json:"agents"`
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"agents_per_second"`
}

// ceilingResult compares heeprd with the mean of the bare-server runs before and after it.
type ceilingResult struct {
	MeanRate        float64 `json:"ceiling_rate_per_second"`
	MeanP99         float64 `json:"ceiling_p99_us"`
	ThroughputRatio float64 `json:"throughput_ratio"`
	P99Ratio        float64 `json:"p99_ratio"`
}

// orderResult counts orders in mixed mode: placed (201), seen in a poll, delivered (201).
type orderResult struct {
	Placed    int64 `json:"placed"`
	Seen      int64 `json:"seen"`
	Delivered int64 `json:"delivered"`
	Unseen    int64 `json:"unseen"`
}

// newCeilingResult computes heeprd's ratios against the mean of the ceiling runs.
func newCeilingResult(heeprd seriesSummary, ceilings ...seriesSummary) *ceilingResult {
	c := &ceilingResult{}
	for _, s := range ceilings {
		c.MeanRate += s.Rate / float64(len(ceilings))
		c.MeanP99 += float64(s.Latency.P99) / float64(len(ceilings))
	}
	c.ThroughputRatio = ratio(heeprd.Rate, c.MeanRate)
	c.P99Ratio = ratio(float64(heeprd.Latency.P99), c.MeanP99)
	return c
}

// ratio is a/b, or 0 when b is 0 (JSON has no infinity).
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// writeJSON prints a report as indented JSON, the --json output of every mode.
func writeJSON(w io.Writer, report any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(report); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// write prints the report as JSON or as a table.
func (r *report) write(w io.Writer, asJSON bool) error {
	if asJSON {
		return writeJSON(w, r)
	}
	r.writeTable(w)
	return nil
}

func (r *report) writeTable(w io.Writer) {
	fmt.Fprintf(w, "mode %s", r.Mode)
	if r.Target != "" {
		fmt.Fprintf(w, "  target %s", r.Target)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, settingsLine(r.Settings))
	if r.CPUs != nil {
		fmt.Fprintln(w, r.CPUs.line())
	}
	if p := r.Provision; p != nil {
		fmt.Fprintf(w, "provisioned %d agents in %.2fs (%.0f agents/s)\n",
			p.Agents, p.Seconds, p.Rate)
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\trequests\tper s\terrors\tp50\tp90\tp99\tp99.9\tmax\t")
	for _, s := range r.Runs {
		l := s.Latency
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%d\t%s\t%s\t%s\t%s\t%s\t\n", s.Name, s.Requests, s.Rate,
			s.Errors, us(l.P50), us(l.P90), us(l.P99), us(l.P999), us(l.Max))
	}
	tw.Flush()

	if c := r.Ceiling; c != nil {
		fmt.Fprintf(w, "\nheeprd / mean ceiling: throughput %.2f (%.0f req/s), p99 %.2f (%s)\n",
			c.ThroughputRatio, c.MeanRate, c.P99Ratio, us(int64(c.MeanP99)))
	}
	if o := r.Orders; o != nil {
		fmt.Fprintf(w, "\norders: placed %d, seen %d, delivered %d, unseen at end %d\n",
			o.Placed, o.Seen, o.Delivered, o.Unseen)
	}
	if st := r.Status; st != nil {
		fmt.Fprintln(w)
		st.writeTable(w)
	}
	if r.RSS != nil {
		fmt.Fprintln(w, "\n"+r.RSS.line())
	}
	r.writeErrors(w)
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

// noteRateLimits explains 429s: a flat-out load exceeds heeprd's per-agent request budget.
func (r *report) noteRateLimits(s seriesSummary, agents int) {
	if n := s.ErrorsBy["429 rate_limited"]; n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%s: %d requests exceeded heeprd's per-agent "+
			"budget (%.0f req/s over %d agents); to measure the request path instead, use more "+
			"--agents or --server-args=--agent-rate=0", s.Name, n, s.Rate, agents))
	}
}

func (r *report) writeErrors(w io.Writer) {
	var lines []string
	for _, s := range r.Runs {
		classes := make([]string, 0, len(s.ErrorsBy))
		for class := range s.ErrorsBy {
			classes = append(classes, class)
		}
		sort.Strings(classes)
		for _, class := range classes {
			n := s.ErrorsBy[class]
			lines = append(lines, fmt.Sprintf("  %-14s %-28s %d", s.Name, class, n))
		}
	}
	if len(lines) == 0 {
		fmt.Fprintln(w, "\nerrors: none")
		return
	}
	fmt.Fprintln(w, "\nerrors (run, class, count):")
	fmt.Fprintln(w, strings.Join(lines, "\n"))
}

func settingsLine(s map[string]string) string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + s[k]
	}
	return strings.Join(parts, "  ")
}

// us formats microseconds for the table: "850µs", "1.24ms", "2.5s".
func us(v int64) string {
	d := time.Duration(v) * time.Microsecond
	switch {
	case v == 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", v)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(v)/1e3)
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}
