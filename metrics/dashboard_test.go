package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"
)

// dashboardQueries walks the dashboard JSON and returns every panel's "expr", and the metric
// selector of every label_values() variable query.
func dashboardQueries(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			if s, ok := child.(string); ok && (k == "expr" || k == "definition") {
				*out = append(*out, variableSelector(s))
				continue
			}
			dashboardQueries(child, out)
		}
	case []any:
		for _, child := range v {
			dashboardQueries(child, out)
		}
	}
}

var labelValues = regexp.MustCompile(`^\s*label_values\(\s*([^,)]*)`)

// variableSelector reduces label_values(selector, label) to its selector; the label is no
// metric.
func variableSelector(q string) string {
	if m := labelValues.FindStringSubmatch(q); m != nil {
		return m[1]
	}
	return q
}

func readDashboard(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile("dashboards/heeprd.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboards/heeprd.json: %v", err)
	}
	return dash
}

// TestDashboardNamesExportedMetrics proves that every query of the dashboard selects only
// metrics heeprd exports (histogram series included) or series recorded by rules.yml, so a
// renamed metric cannot leave a silently empty panel.
func TestDashboardNamesExportedMetrics(t *testing.T) {
	known := exportedNames(t)
	for _, r := range readRules(t, "rules.yml").records {
		known[r] = true
	}
	var queries []string
	dashboardQueries(readDashboard(t), &queries)
	if len(queries) < 20 {
		t.Fatalf("found only %d queries; is the dashboard complete?", len(queries))
	}
	for _, q := range queries {
		names := promMetricNames(q)
		if len(names) == 0 {
			t.Errorf("query names no metric: %s", q)
		}
		for _, n := range names {
			if !known[n] {
				t.Errorf("%s: heeprd exports no %q", q, n)
			}
		}
	}
}

// TestDashboardShape checks what Grafana needs to import the dashboard anywhere: a schema
// version, a Prometheus datasource variable every panel uses, and unique panel ids.
func TestDashboardShape(t *testing.T) {
	dash := readDashboard(t)
	if v, _ := dash["schemaVersion"].(float64); v < 36 {
		t.Errorf("schemaVersion %v, want >= 36", dash["schemaVersion"])
	}
	vars := dash["templating"].(map[string]any)["list"].([]any)
	ds := vars[0].(map[string]any)
	if ds["name"] != "datasource" || ds["type"] != "datasource" || ds["query"] != "prometheus" {
		t.Errorf("first variable %v, want the prometheus datasource variable", ds)
	}
	ids := map[float64]bool{}
	for _, p := range dash["panels"].([]any) {
		p := p.(map[string]any)
		id := p["id"].(float64)
		if ids[id] {
			t.Errorf("panel id %v used twice", id)
		}
		ids[id] = true
		if p["type"] == "row" {
			continue
		}
		uid := p["datasource"].(map[string]any)["uid"]
		if uid != "${datasource}" {
			t.Errorf("panel %q uses datasource %v, want ${datasource}", p["title"], uid)
		}
	}
}
