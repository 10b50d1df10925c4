package main

// An end-to-end test of the metrics as an operator sees them: the real heeprd binary scraped by
// a real Prometheus (Debian package prometheus) that also loads metrics/rules.yml. Both run on
// loopback ports of this machine only, every wait is bounded, and both are stopped by PID.
// Helper names start with prom so that they cannot collide with the other e2e helpers here.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	promWait        = 30 * time.Second // longest wait for a process or a scrape
	promStopTimeout = 10 * time.Second
)

// TestPromScrapeReflectsTraffic drives known traffic through heeprd and checks that the values
// Prometheus scraped are exactly what the traffic implies, and that every rule of rules.yml
// evaluates without error against real heeprd series.
func TestPromScrapeReflectsTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	promBin := promFindBinary(t, "prometheus")
	heeprd := promStartHeeprd(t, heeprdBinary(t))
	prom := promStartPrometheus(t, promBin, heeprd.ops)

	// Three agents: a and b poll 5 times each with nothing queued; c gets one order, then
	// polls once and receives its new_order event.
	var ids, keys []string
	for i := range 3 {
		id, key := heeprd.newAgent(t, fmt.Sprintf("prom-e2e-%d", i))
		ids, keys = append(ids, id), append(keys, key)
	}
	for _, key := range keys[:2] {
		for range 5 {
			if body := heeprd.poll(t, key); body != "{}" {
				t.Fatalf("empty poll answered %s", body)
			}
		}
	}
	heeprd.placeOrder(t, ids[2])
	if body := heeprd.poll(t, keys[2]); !strings.Contains(body, `"kind":"new_order"`) {
		t.Fatalf("poll after an order answered %s", body)
	}
	trafficDone := float64(time.Now().UnixMilli())/1000 + 0.001

	prom.waitScrapeAfter(t, trafficDone)
	want := map[string]float64{
		`heepr_polls_total{outcome="empty"}`:                            10,
		`heepr_polls_total{outcome="events"}`:                           1,
		`heepr_polls_total{outcome="unauthorized"}`:                     0,
		`heepr_polls_total{outcome="rate_limited"}`:                     0,
		`heepr_polls_total{outcome="unavailable"}`:                      0,
		`heepr_agents_online`:                                           3,
		`heepr_agents_registered`:                                       3,
		`heepr_agents`:                                                  3,
		`heepr_events_queued_total{kind="new_order"}`:                   1,
		`heepr_events_delivered_total{kind="new_order"}`:                1,
		`heepr_orders{state="in_progress"}`:                             1,
		`heepr_http_requests_total{route="/events",code="200"}`:         11,
		`heepr_http_requests_total{route="/agent/register",code="201"}`: 3,
		`heepr_poll_duration_seconds_count`:                             11,
		`count(heepr_build_info)`:                                       1,
		`up{job="heeprd"}`:                                              1,
	}
	for q, v := range want {
		if got := prom.scalar(t, q); got != v {
			t.Errorf("%s = %v, want %v", q, got, v)
		}
	}
	prom.checkRulesHealthy(t)
}

// promFindBinary returns the path of a Prometheus binary, or skips when it is missing outside
// CI; in CI (CI set) a missing binary fails, as .ci/run installs it.
func promFindBinary(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found in CI (install the Debian package prometheus): %v", name, err)
	}
	t.Skipf("%s not installed (apt-get install prometheus); set CI=1 to make this fail", name)
	return ""
}

// promProc is a child process the test started and alone stops, by its PID.
type promProc struct {
	name   string
	cmd    *exec.Cmd
	log    lockedBuffer
	exited chan struct{}
}

// promStart starts bin and registers a cleanup that stops it: SIGTERM, then SIGKILL.
func promStart(t *testing.T, name, bin string, args ...string) *promProc {
	t.Helper()
	p := &promProc{name: name, cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HEEPR_") { // they would set server flags
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Stdout, p.cmd.Stderr = &p.log, &p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(promStopTimeout):
			p.cmd.Process.Kill()
			<-p.exited
			t.Errorf("%s (pid %d) ignored SIGTERM for %s; killed", name, p.cmd.Process.Pid,
				promStopTimeout)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.log.String())
		}
	})
	return p
}

// waitOK polls url until it answers 200, failing if the process exits or promWait passes.
func (p *promProc) waitOK(t *testing.T, url string) {
	t.Helper()
	for deadline := time.Now().Add(promWait); time.Now().Before(deadline); {
		select {
		case <-p.exited:
			t.Fatalf("%s exited early:\n%s", p.name, p.log.String())
		default:
		}
		if resp, err := promHTTP.Get(url); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %s not 200 within %s:\n%s", p.name, url, promWait, p.log.String())
}

var promHTTP = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}

// promFreeAddr returns a loopback address whose port was free a moment ago.
func promFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// promHeeprd is a running heeprd and what the test needs to talk to it.
type promHeeprd struct {
	agent, ops, token string
}

func promStartHeeprd(t *testing.T, bin string) *promHeeprd {
	t.Helper()
	h := &promHeeprd{agent: promFreeAddr(t), ops: promFreeAddr(t), token: "adm_prom_e2e_token"}
	p := promStart(t, "heeprd", bin, "--addr", h.agent, "--ops-addr", h.ops,
		"--data", t.TempDir(), "--admin-token", h.token, "--log-format", "json")
	p.waitOK(t, "http://"+h.ops+"/readyz")
	return h
}

// promCall sends a JSON request and decodes a JSON answer, failing unless the status is want.
func promCall(t *testing.T, method, url, auth string, body any, want int, out any) []byte {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := promHTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, url, resp.StatusCode, data, want)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, data, err)
		}
	}
	return data
}

// newAgent creates an agent through the admin API, registers it and returns its id and key.
func (h *promHeeprd) newAgent(t *testing.T, name string) (id, key string) {
	t.Helper()
	var created struct {
		AgentID        string `json:"agent_id"`
		BootstrapToken string `json:"bootstrap_token"`
	}
	promCall(t, "POST", "http://"+h.ops+"/admin/agents", "Bearer "+h.token,
		map[string]any{"name": name}, http.StatusCreated, &created)
	var reg struct {
		APIKey string `json:"api_key"`
	}
	promCall(t, "POST", "http://"+h.agent+"/agent/register", "Bootstrap "+created.BootstrapToken,
		nil, http.StatusCreated, &reg)
	return created.AgentID, reg.APIKey
}

func (h *promHeeprd) poll(t *testing.T, key string) string {
	t.Helper()
	return string(promCall(t, "GET", "http://"+h.agent+"/events", "Bearer "+key, nil,
		http.StatusOK, nil))
}

// placeOrder places an order with the agent, which it gets as a new_order event.
func (h *promHeeprd) placeOrder(t *testing.T, agentID string) {
	t.Helper()
	promCall(t, "POST", "http://"+h.ops+"/admin/orders", "Bearer "+h.token, map[string]any{
		"agent_id": agentID, "gig": "prom e2e", "price": 100,
		"deadline": time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339),
	}, http.StatusCreated, nil)
}

// promServer is a running Prometheus scraping heeprd's ops listener every second.
type promServer struct{ base string }

func promStartPrometheus(t *testing.T, bin, target string) *promServer {
	t.Helper()
	rules, err := filepath.Abs(filepath.Join("..", "..", "metrics", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	config := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: heeprd
    static_configs: [{targets: [%q]}]
`, rules, target)
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := promFreeAddr(t)
	p := promStart(t, "prometheus", bin, "--config.file="+configFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	p.waitOK(t, "http://"+addr+"/-/ready")
	return &promServer{base: "http://" + addr}
}

// query runs an instant query and returns its vector.
func (s *promServer) query(t *testing.T, q string) []promSample {
	t.Helper()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []promSample `json:"result"`
		} `json:"data"`
	}
	promCall(t, "GET", s.base+"/api/v1/query?query="+url.QueryEscape(q), "", nil,
		http.StatusOK, &r)
	if r.Status != "success" {
		t.Fatalf("query %s: status %q", q, r.Status)
	}
	return r.Data.Result
}

// promSample is one element of an instant vector: its labels and [time, "value"].
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (p promSample) float(t *testing.T) (at, v float64) {
	t.Helper()
	at, _ = p.Value[0].(float64)
	str, _ := p.Value[1].(string)
	v, err := strconv.ParseFloat(str, 64)
	if err != nil {
		t.Fatalf("sample %v: %v", p, err)
	}
	return at, v
}

// scalar returns the value of a query that must yield exactly one series.
func (s *promServer) scalar(t *testing.T, q string) float64 {
	t.Helper()
	res := s.query(t, q)
	if len(res) != 1 {
		t.Errorf("%s: %d series, want 1: %v", q, len(res), res)
		return -1
	}
	_, v := res[0].float(t)
	return v
}

// waitScrapeAfter waits until Prometheus holds a heeprd scrape taken after the Unix time at, so
// that the latest samples reflect everything done before it.
func (s *promServer) waitScrapeAfter(t *testing.T, at float64) {
	t.Helper()
	for deadline := time.Now().Add(promWait); time.Now().Before(deadline); {
		if res := s.query(t, `heepr_agents_registered`); len(res) == 1 {
			if scraped, _ := res[0].float(t); scraped >= at {
				return
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("no scrape of heeprd after %.3f within %s", at, promWait)
}

// checkRulesHealthy waits until every rule of rules.yml has been evaluated and checks that
// none failed against the real series.
func (s *promServer) checkRulesHealthy(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(promWait); ; {
		var r struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name, Health, LastError string
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		promCall(t, "GET", s.base+"/api/v1/rules", "", nil, http.StatusOK, &r)
		var pending, total int
		var bad []string
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				total++
				switch rule.Health {
				case "ok":
				case "unknown":
					pending++
				default:
					bad = append(bad, rule.Name+": "+rule.Health+" "+rule.LastError)
				}
			}
		}
		if len(bad) > 0 {
			t.Fatalf("rules failed to evaluate: %v", bad)
		}
		if total >= 15 && pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d rules still unevaluated after %s", pending, total, promWait)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
