package main

// Helpers of the end-to-end tests: they build the real heeprd binary once per test run, start it
// on free loopback ports with its own data directory, and talk to it over HTTP like an agent and
// an owner would. Nothing here reaches beyond 127.0.0.1, and every wait is bounded.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	buildTimeout    = 3 * time.Minute
	readyTimeout    = 15 * time.Second
	stopTimeout     = 10 * time.Second
	httpTimeout     = 15 * time.Second
	startAttempts   = 3
	readyPollPeriod = 50 * time.Millisecond
)

var (
	reAgentID = regexp.MustCompile(`^agt_[a-z2-7]{16}$`)
	reSecret  = `[a-z2-7]{32}`
	reHash    = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// ---- building the binary ----

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// TestMain removes the binary the e2e tests built, if they built one.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// raceEnabled reports whether this test binary was built with -race; the server is then built
// with -race too, and a race it reports fails the test that started it.
func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// heeprdBinary builds ./cmd/heeprd once per test run and returns the binary's path.
func heeprdBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "heeprd-e2e-bin-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "heeprd")
		args := []string{"build", "-o", buildBin}
		if raceEnabled() {
			args = append(args, "-race")
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("find the go tool: %w", err)
			return
		}
		cmd := exec.Command(goTool, append(args, ".")...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			buildErr = fmt.Errorf("go build: %w", err)
			return
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err = <-done:
		case <-time.After(buildTimeout):
			cmd.Process.Kill()
			err = fmt.Errorf("timed out after %s (%w)", buildTimeout, <-done)
		}
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatalf("build heeprd: %v", buildErr)
	}
	return buildBin
}

// ---- the server process ----

// lockedBuffer collects the server's stderr; the process writes while tests read.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logged reports whether the server's log holds text, waiting a little for it: the log reaches
// the test through a pipe that os/exec copies on a goroutine of its own, so a line the server
// wrote before answering a request may still be on its way.
func (s *e2eServer) logged(text string) bool {
	for range 100 {
		if strings.Contains(s.stderr.String(), text) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// e2eServer is one running heeprd process.
type e2eServer struct {
	dataDir    string
	agentURL   string // http://127.0.0.1:P
	opsURL     string // http://127.0.0.1:Q
	adminToken string
	client     *http.Client

	cmd     *exec.Cmd
	stderr  *lockedBuffer
	exited  chan struct{}
	waitErr error

	mu      sync.Mutex
	secrets []string // tokens and keys this server issued or was given: never in a log or error
	stopped bool     // stopped on purpose (kill9 or stop); cleanup has nothing left to do
	killed  bool     // ended by SIGKILL: the exit status says nothing
}

// startServer builds heeprd once, starts it on free loopback ports with dataDir ("" for a fresh
// temporary one), a random admin token and no request budgets (extraFlags may set them), and
// waits until /readyz answers 200. Cleanup stops
// it with SIGTERM (SIGKILL after 10 s) and fails the test if it did not exit cleanly, raced,
// panicked, or logged a secret.
func startServer(t *testing.T, dataDir string, extraFlags ...string) *e2eServer {
	t.Helper()
	bin := heeprdBinary(t)
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	var lastErr error
	for attempt := 0; attempt < startAttempts; attempt++ {
		s, err := tryStart(t, bin, dataDir, extraFlags)
		if err == nil {
			t.Cleanup(func() { s.cleanup(t) })
			return s
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("start heeprd: %v", lastErr)
	return nil
}

func tryStart(t *testing.T, bin, dataDir string, extraFlags []string) (*e2eServer, error) {
	agentPort, opsPort := freePort(t), freePort(t)
	s := &e2eServer{
		dataDir:    dataDir,
		agentURL:   "http://" + agentPort,
		opsURL:     "http://" + opsPort,
		adminToken: "adm_e2e_" + randomHex(16),
		stderr:     &lockedBuffer{},
		exited:     make(chan struct{}),
		client: &http.Client{
			Timeout: httpTimeout,
			Transport: &http.Transport{
				Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 8,
				DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
	s.secrets = []string{s.adminToken}
	// The tests make many failing and rapid requests on purpose: both request budgets are off
	// unless a test turns them on (a later flag wins).
	args := append([]string{
		"--addr", agentPort, "--ops-addr", opsPort, "--data", dataDir,
		"--admin-token", s.adminToken, "--log-format", "json",
		"--auth-fail-rate", "0", "--agent-rate", "0",
	}, extraFlags...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = cleanEnv()
	s.cmd.Stdout, s.cmd.Stderr = s.stderr, s.stderr
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()

	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("heeprd exited before ready (%v):\n%s", s.waitErr,
				s.stderr.String())
		default:
		}
		resp, err := s.client.Get(s.opsURL + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if !s.logged(`"msg":"ready"`) {
					t.Errorf("/readyz is 200 but no msg=ready log line:\n%s", s.stderr.String())
				}
				return s, nil
			}
		}
		time.Sleep(readyPollPeriod)
	}
	s.signalAndWait(syscall.SIGKILL, stopTimeout)
	return nil, fmt.Errorf("heeprd not ready within %s:\n%s", readyTimeout, s.stderr.String())
}

// cleanEnv is the test's environment without HEEPR_ variables, which would set server flags.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HEEPR_") {
			env = append(env, kv)
		}
	}
	return env
}

// freePort returns a loopback address whose port was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// signalAndWait sends sig and waits up to timeout for the process to exit; it reports whether
// it exited.
func (s *e2eServer) signalAndWait(sig syscall.Signal, timeout time.Duration) bool {
	select {
	case <-s.exited:
		return true
	default:
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
		return true
	case <-time.After(timeout):
		return false
	}
}

// kill9 ends the server with SIGKILL, as a crash would, and waits for it to be gone.
func (s *e2eServer) kill9(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	s.stopped, s.killed = true, true
	s.mu.Unlock()
	if !s.signalAndWait(syscall.SIGKILL, stopTimeout) {
		t.Fatalf("heeprd did not exit %s after SIGKILL", stopTimeout)
	}
	s.client.CloseIdleConnections()
}

// stop shuts the server down with SIGTERM and checks it exits 0 within 10 s (SIGKILL after).
func (s *e2eServer) stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	s.mu.Unlock()
	s.client.CloseIdleConnections()
	if !s.signalAndWait(syscall.SIGTERM, stopTimeout) {
		s.signalAndWait(syscall.SIGKILL, stopTimeout)
		t.Errorf("heeprd did not exit within %s of SIGTERM; killed it", stopTimeout)
		return
	}
	if s.waitErr != nil {
		t.Errorf("heeprd exited with %v after SIGTERM, want exit status 0", s.waitErr)
	}
	if !strings.Contains(s.stderr.String(), `"msg":"shutdown complete"`) {
		t.Errorf("no msg=\"shutdown complete\" log line after SIGTERM")
	}
}

func (s *e2eServer) cleanup(t *testing.T) {
	s.stop(t)
	s.checkLog(t)
	if t.Failed() {
		t.Logf("heeprd log (%s):\n%s", s.agentURL, tail(s.stderr.String(), 60))
	}
}

// checkLog fails the test for a data race, a panic, a line that is not a JSON log record, or a
// secret in the log.
func (s *e2eServer) checkLog(t testing.TB) {
	t.Helper()
	log := s.stderr.String()
	for _, bad := range []string{"DATA RACE", "panic:", "goroutine ", "handler panicked"} {
		if strings.Contains(log, bad) {
			t.Errorf("heeprd log contains %q", bad)
		}
	}
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	bad := 0
	for sc.Scan() {
		line := sc.Bytes()
		var rec map[string]any
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := json.Unmarshal(line, &rec); err != nil || rec["msg"] == nil ||
			rec["level"] == nil {
			if bad++; bad <= 3 {
				t.Errorf("log line is not a JSON record with level and msg: %s", clip(line))
			}
		}
	}
	s.mu.Lock()
	secrets := append([]string(nil), s.secrets...)
	s.mu.Unlock()
	for _, sec := range secrets {
		if _, part := splitSecret(sec); len(part) >= 16 && strings.Contains(log, part) {
			t.Errorf("heeprd log contains the secret of %s", redact(sec))
		}
	}
}

// noteSecret records a token or key: it must never appear in a log or an error body.
func (s *e2eServer) noteSecret(secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets = append(s.secrets, secret)
}

func (s *e2eServer) knownSecrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.secrets...)
}

// splitSecret returns the public prefix and the secret part of a token or key ("" if none).
func splitSecret(cred string) (public, secret string) {
	i := strings.LastIndexByte(cred, '_')
	if i < 0 || len(cred)-i-1 < 16 {
		return "", cred
	}
	return cred[:i], cred[i+1:]
}

func redact(cred string) string {
	pub, _ := splitSecret(cred)
	if pub == "" {
		return "<secret>"
	}
	return pub + "_<secret>"
}

// ---- HTTP ----

// response is one answer, with the request it answers for messages.
type response struct {
	status int
	header http.Header
	body   []byte
	req    string // "METHOD path" of the request
	cred   string // the credential the request carried, which the answer must not echo
}

func (r *response) String() string {
	return fmt.Sprintf("%s -> %d %s", r.req, r.status, clip(r.body))
}

// try sends one request and reads the whole answer.
func (s *e2eServer) try(method, url string, hdr map[string]string,
	body []byte) (*response, error) {
	return s.tryBody(method, url, hdr, body, false)
}

// tryBody is try that can send the body chunked, as a client that streams it does.
func (s *e2eServer) tryBody(method, url string, hdr map[string]string, body []byte,
	chunked bool) (*response, error) {
	var rd io.Reader
	switch {
	case body != nil && chunked:
		rd = io.MultiReader(bytes.NewReader(body)) // no length known: sent chunked
	case body != nil:
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	label := method + " " + strings.TrimPrefix(strings.TrimPrefix(url, s.agentURL), s.opsURL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", clip([]byte(label)), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: read body: %w", clip([]byte(label)), err)
	}
	_, cred, _ := strings.Cut(hdr["Authorization"], " ")
	return &response{status: resp.StatusCode, header: resp.Header, body: data,
		req: clip([]byte(label)), cred: strings.TrimSpace(cred)}, nil
}

// do is try that fails the test on a transport error (a dropped connection, a timeout).
func (s *e2eServer) do(t testing.TB, method, url string, hdr map[string]string,
	body []byte) *response {
	t.Helper()
	r, err := s.try(method, url, hdr, body)
	if err != nil {
		t.Fatalf("request failed: %v", err)
	}
	return r
}

// encodeBody turns a test body into bytes: nil is no body, []byte and string are sent as they
// are, anything else is marshalled to JSON.
func encodeBody(t testing.TB, body any) []byte {
	t.Helper()
	switch b := body.(type) {
	case nil:
		return nil
	case []byte:
		return b
	case string:
		return []byte(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal %v: %v", body, err)
		}
		return data
	}
}

// admin calls the admin API on the ops listener with the admin token.
func (s *e2eServer) admin(t testing.TB, method, path string, body any) *response {
	t.Helper()
	hdr := map[string]string{"Authorization": "Bearer " + s.adminToken}
	data := encodeBody(t, body)
	if data != nil {
		hdr["Content-Type"] = "application/json"
	}
	return s.do(t, method, s.opsURL+path, hdr, data)
}

// agent calls the agent API with an API key (none if key is "").
func (s *e2eServer) agent(t testing.TB, method, path, key string, body any) *response {
	t.Helper()
	hdr := map[string]string{}
	if key != "" {
		hdr["Authorization"] = "Bearer " + key
	}
	data := encodeBody(t, body)
	if data != nil {
		hdr["Content-Type"] = "application/json"
	}
	return s.do(t, method, s.agentURL+path, hdr, data)
}

// ---- checking answers ----

// errorStatus is the status each error code must come with.
var errorStatus = map[string]int{
	"invalid_request": 400, "missing_credentials": 401, "key_unknown": 401, "key_revoked": 401,
	"key_expired": 401, "bootstrap_unknown": 401, "bootstrap_used": 401,
	"bootstrap_expired": 401, "forbidden": 403, "not_found": 404, "method_not_allowed": 405,
	"active_key_exists": 409, "invalid_state": 409, "agent_paused": 409,
	"payload_too_large": 413, "unsupported_media_type": 415, "idempotency_key_reused": 422,
	"rate_limited": 429,
	"unavailable":  503,
}

// checkEnvelope checks that r is exactly {"error":{"code":...,"message":...}} with a non-empty
// message and a code that fits the status, as JSON, without any secret. It returns the code and
// message ("" if the body is not an envelope).
func checkEnvelope(t testing.TB, s *e2eServer, r *response) (code, msg string) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", r, ct)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &top); err != nil || len(top) != 1 || top["error"] == nil {
		t.Errorf("%s: body is not exactly {\"error\": {...}}", r)
		return "", ""
	}
	var inner map[string]any
	if err := json.Unmarshal(top["error"], &inner); err != nil || len(inner) != 2 {
		t.Errorf("%s: error object is not exactly {code, message}", r)
		return "", ""
	}
	code, _ = inner["code"].(string)
	msg, _ = inner["message"].(string)
	if code == "" || msg == "" {
		t.Errorf("%s: error code and message must be non-empty strings", r)
	}
	if want, ok := errorStatus[code]; !ok {
		t.Errorf("%s: unknown error code %q", r, code)
	} else if want != r.status && !(code == "invalid_request" && r.status == 431) {
		t.Errorf("%s: code %q comes with status %d, want %d", r, code, r.status, want)
	}
	secrets := s.knownSecrets()
	if r.cred != "" {
		secrets = append(secrets, r.cred)
	}
	for _, sec := range secrets {
		_, part := splitSecret(sec)
		if len(part) >= 16 && bytes.Contains(r.body, []byte(part)) {
			t.Errorf("%s: error body echoes a secret (%s)", r.req, redact(sec))
		}
	}
	return code, msg
}

// expectError checks status, code and envelope and returns the message.
func expectError(t testing.TB, s *e2eServer, r *response, status int, code string) string {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d (%s)", r, r.status, status, code)
	}
	got, msg := checkEnvelope(t, s, r)
	if got != "" && got != code {
		t.Errorf("%s: code %q, want %q", r, got, code)
	}
	return msg
}

// expect4xx checks that r is a client error with the envelope: never 5xx, never success.
func expect4xx(t testing.TB, s *e2eServer, r *response) string {
	t.Helper()
	if r.status < 400 || r.status > 499 {
		t.Errorf("%s: status %d, want a 4xx", r, r.status)
	}
	code, _ := checkEnvelope(t, s, r)
	return code
}

// expectJSON checks the status and decodes the JSON answer into a value of type T.
func expectJSON[T any](t testing.TB, r *response, status int) T {
	t.Helper()
	var v T
	if r.status != status {
		t.Fatalf("%s: status %d, want %d", r, r.status, status)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", r, ct)
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("%s: decode: %v", r, err)
	}
	return v
}

// jsonKeys returns the sorted keys of a JSON object.
func jsonKeys(t testing.TB, raw []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("not a JSON object: %s", clip(raw))
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ---- wire types ----

type bootstrapJSON struct {
	AgentID            string `json:"agent_id"`
	BootstrapToken     string `json:"bootstrap_token"`
	BootstrapExpiresAt string `json:"bootstrap_expires_at"`
}

type registerJSON struct {
	AgentID string `json:"agent_id"`
	APIKey  string `json:"api_key"`
}

type orderViewJSON struct {
	ID               string `json:"id"`
	Gig              string `json:"gig"`
	Scope            string `json:"scope"`
	Tier             string `json:"tier"`
	Price            int64  `json:"price"`
	Deadline         string `json:"deadline"`
	Brief            string `json:"brief"`
	State            string `json:"state"`
	RevisionsAllowed int    `json:"revisions_allowed"`
	RevisionsUsed    int    `json:"revisions_used"`
}

type eventJSON struct {
	ID        string          `json:"id"`
	Kind      string          `json:"kind"`
	CreatedAt string          `json:"created_at"`
	OrderID   string          `json:"order_id"`
	Order     orderViewJSON   `json:"order"`
	Note      string          `json:"note"`
	Revision  int             `json:"revision"`
	Reason    string          `json:"reason"`
	SF        string          `json:"sf"`
	Raw       json.RawMessage `json:"-"`
}

type fileMetaJSON struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

type deliveryJSON struct {
	N     int            `json:"n"`
	At    string         `json:"at"`
	Text  string         `json:"text"`
	URLs  []string       `json:"urls"`
	Files []fileMetaJSON `json:"files"`
}

type noteJSON struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
	At      string `json:"at"`
}

type transitionJSON struct {
	At     string `json:"at"`
	From   string `json:"from"`
	To     string `json:"to"`
	By     string `json:"by"`
	Reason string `json:"reason"`
}

type orderJSON struct {
	ID               string `json:"id"`
	AgentID          string `json:"agent_id"`
	Gig              string `json:"gig"`
	Scope            string `json:"scope"`
	Tier             string `json:"tier"`
	Price            int64  `json:"price"`
	Deadline         string `json:"deadline"`
	Brief            string `json:"brief"`
	State            string `json:"state"`
	RevisionsAllowed int    `json:"revisions_allowed"`
	RevisionsUsed    int    `json:"revisions_used"`
	Progress         *struct {
		Percent int    `json:"percent"`
		Message string `json:"message"`
	} `json:"progress"`
	Deliveries  []deliveryJSON   `json:"deliveries"`
	Decline     *noteJSON        `json:"decline"`
	Flag        *noteJSON        `json:"flag"`
	FlaggedFrom string           `json:"flagged_from"`
	Refund      *noteJSON        `json:"refund"`
	History     []transitionJSON `json:"history"`
}

type agentJSON struct {
	AgentID      string  `json:"agent_id"`
	Name         string  `json:"name"`
	Owner        string  `json:"owner"`
	Status       string  `json:"status"`
	CreatedAt    string  `json:"created_at"`
	Online       bool    `json:"online"`
	LastPollAt   *string `json:"last_poll_at"`
	KeyState     string  `json:"key_state"`
	KeyExpiresAt *string `json:"key_expires_at"`
	Settings     struct {
		PollMinutes      int   `json:"poll_minutes"`
		RevisionCap      int   `json:"revision_cap"`
		ManualAcceptance bool  `json:"manual_acceptance"`
		KeyTTLSeconds    int64 `json:"key_ttl_seconds"`
	} `json:"settings"`
	EventsQueued int            `json:"events_queued"`
	Orders       map[string]int `json:"orders"`
}

type orderReplyJSON struct {
	OrderID string `json:"order_id"`
	State   string `json:"state"`
}

type deliverReplyJSON struct {
	OrderID  string `json:"order_id"`
	Delivery int    `json:"delivery"`
	State    string `json:"state"`
}

type skillJSON struct {
	AgentID     string `json:"agent_id"`
	File        string `json:"file"`
	Content     string `json:"content"`
	ContentHash string `json:"content_hash"`
}

type skillIndexJSON struct {
	AgentID     string         `json:"agent_id"`
	PollMinutes int            `json:"poll_minutes"`
	APIBase     string         `json:"api_base"`
	Files       []fileMetaJSON `json:"files"`
	Limits      map[string]any `json:"limits"`
}

// ---- owner and agent steps ----

// creds is one agent as a test knows it.
type creds struct {
	id, token, key string
}

// createAgent creates an agent through the admin API and returns its id and bootstrap token.
func (s *e2eServer) createAgent(t testing.TB, body map[string]any) creds {
	t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	if _, ok := body["name"]; !ok {
		body["name"] = "e2e agent"
	}
	b := expectJSON[bootstrapJSON](t, s.admin(t, "POST", "/admin/agents", body), 201)
	if !reAgentID.MatchString(b.AgentID) {
		t.Fatalf("agent id %q does not look like agt_<16 base32>", b.AgentID)
	}
	s.noteSecret(b.BootstrapToken)
	checkToken(t, "bootstrap token", b.BootstrapToken, "bs_", b.AgentID)
	if _, err := time.Parse(time.RFC3339, b.BootstrapExpiresAt); err != nil {
		t.Errorf("bootstrap_expires_at %q is not RFC 3339", b.BootstrapExpiresAt)
	}
	return creds{id: b.AgentID, token: b.BootstrapToken}
}

func checkToken(t testing.TB, what, tok, prefix, agentID string) {
	t.Helper()
	re := regexp.MustCompile("^" + regexp.QuoteMeta(prefix+agentID+"_") + reSecret + "$")
	if !re.MatchString(tok) {
		t.Errorf("%s %s does not look like %s%s_<32 base32>", what, redact(tok), prefix, agentID)
	}
}

// mintToken asks for a new bootstrap token.
func (s *e2eServer) mintToken(t testing.TB, agentID string, body any) string {
	t.Helper()
	r := s.admin(t, "POST", "/admin/agents/"+agentID+"/bootstrap", body)
	b := expectJSON[bootstrapJSON](t, r, 201)
	s.noteSecret(b.BootstrapToken)
	if b.AgentID != agentID {
		t.Errorf("mint: agent_id %q, want %q", b.AgentID, agentID)
	}
	checkToken(t, "bootstrap token", b.BootstrapToken, "bs_", agentID)
	return b.BootstrapToken
}

// tryRegister calls POST {prefix}/agent/register with a token; it records a key it gets.
func (s *e2eServer) tryRegister(t testing.TB, prefix, scheme, token string,
	body any) *response {
	t.Helper()
	hdr := map[string]string{"Authorization": scheme + " " + token}
	data := encodeBody(t, body)
	if data != nil {
		hdr["Content-Type"] = "application/json"
	}
	r := s.do(t, "POST", s.agentURL+prefix+"/agent/register", hdr, data)
	if r.status == 201 {
		var reg registerJSON
		if json.Unmarshal(r.body, &reg) == nil && reg.APIKey != "" {
			s.noteSecret(reg.APIKey)
		}
	}
	return r
}

// register redeems a token and returns the API key, checking its shape.
func (s *e2eServer) register(t testing.TB, c creds) string {
	t.Helper()
	reg := expectJSON[registerJSON](t, s.tryRegister(t, "", "Bootstrap", c.token, nil), 201)
	if reg.AgentID != c.id {
		t.Errorf("register: agent_id %q, want %q", reg.AgentID, c.id)
	}
	checkToken(t, "api key", reg.APIKey, "sk_live_", c.id)
	return reg.APIKey
}

// newAgent creates and registers an agent.
func (s *e2eServer) newAgent(t testing.TB, body map[string]any) creds {
	t.Helper()
	c := s.createAgent(t, body)
	c.key = s.register(t, c)
	return c
}

// futureDeadline is a deadline two days out, to the second, in RFC 3339.
func futureDeadline() string {
	return time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
}

// orderBody is a valid order for an agent, with extra fields merged over it.
func orderBody(agentID string, extra map[string]any) map[string]any {
	b := map[string]any{
		"agent_id": agentID, "gig": "logo design", "scope": "one logo, two colours",
		"tier": "basic", "price": 1200, "deadline": futureDeadline(),
		"brief": "A fox, minimal. Ünïcode ✓",
	}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

// placeOrder places a valid order and returns its id.
func (s *e2eServer) placeOrder(t testing.TB, agentID string, extra map[string]any) string {
	t.Helper()
	r := expectJSON[orderReplyJSON](t, s.admin(t, "POST", "/admin/orders",
		orderBody(agentID, extra)), 201)
	want := regexp.MustCompile("^ord_" + strings.TrimPrefix(agentID, "agt_") + `_[1-9][0-9]*$`)
	if !want.MatchString(r.OrderID) {
		t.Errorf("order id %q does not look like ord_<agent id part>_<n>", r.OrderID)
	}
	return r.OrderID
}

// poll calls GET {prefix}/events and returns the events (nil for {}).
func (s *e2eServer) pollAt(t testing.TB, prefix, key string) []eventJSON {
	t.Helper()
	r := s.agent(t, "GET", prefix+"/events", key, nil)
	if r.status != 200 {
		t.Fatalf("%s: want 200", r)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", r, ct)
	}
	if string(bytes.TrimSpace(r.body)) == "{}" {
		return nil
	}
	var reply struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(r.body, &reply); err != nil || len(reply.Events) == 0 {
		t.Fatalf("%s: want {} or {\"events\": [one or more]}", r)
	}
	if keys := jsonKeys(t, r.body); len(keys) != 1 {
		t.Errorf("%s: poll answer has keys %v, want only events", r, keys)
	}
	out := make([]eventJSON, len(reply.Events))
	for i, raw := range reply.Events {
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			t.Fatalf("event %s: %v", clip(raw), err)
		}
		out[i].Raw = raw
	}
	return out
}

func (s *e2eServer) poll(t testing.TB, key string) []eventJSON {
	t.Helper()
	return s.pollAt(t, "", key)
}

// expectEmptyPoll checks that a poll answers exactly {}.
func (s *e2eServer) expectEmptyPoll(t testing.TB, key string) {
	t.Helper()
	r := s.agent(t, "GET", "/events", key, nil)
	if r.status != 200 || string(r.body) != "{}" {
		t.Errorf("%s: want exactly 200 {}", r)
	}
}

func (s *e2eServer) getOrder(t testing.TB, id string) orderJSON {
	t.Helper()
	return expectJSON[orderJSON](t, s.admin(t, "GET", "/admin/orders/"+id, nil), 200)
}

func (s *e2eServer) getAgent(t testing.TB, id string) agentJSON {
	t.Helper()
	return expectJSON[agentJSON](t, s.admin(t, "GET", "/admin/agents/"+id, nil), 200)
}

// ---- multipart ----

type mpPart struct {
	field, filename, ctype string
	data                   []byte
}

// multipartBody encodes parts in order and returns the Content-Type and the body.
func multipartBody(t testing.TB, parts []mpPart) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		disp := fmt.Sprintf(`form-data; name=%q`, p.field)
		if p.filename != "" {
			disp += fmt.Sprintf(`; filename=%q`, p.filename)
		}
		h.Set("Content-Disposition", disp)
		if p.ctype != "" {
			h.Set("Content-Type", p.ctype)
		}
		pw, err := w.CreatePart(h)
		if err != nil {
			t.Fatalf("multipart: %v", err)
		}
		pw.Write(p.data)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("multipart: %v", err)
	}
	return w.FormDataContentType(), buf.Bytes()
}

// deliverRaw posts a delivery body with the given content type.
func (s *e2eServer) deliverRaw(t testing.TB, prefix, key, orderID, ctype string,
	body []byte) *response {
	t.Helper()
	hdr := map[string]string{"Authorization": "Bearer " + key}
	if ctype != "" {
		hdr["Content-Type"] = ctype
	}
	return s.do(t, "POST", s.agentURL+prefix+"/orders/"+orderID+"/deliver", hdr, body)
}

// ---- small things ----

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// binaryBlob is n random bytes that surely hold NUL bytes and invalid UTF-8.
func binaryBlob(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	copy(b, []byte{0x00, 0xff, 0xfe, 0xc3, 0x28, 0x00, 0xed, 0xa0, 0x80})
	if n > 100 {
		b[n/2], b[n-1] = 0x00, 0xff
	}
	return b
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// clip shortens a body for a message.
func clip(b []byte) string {
	const limit = 300
	s := string(b)
	if len(s) > limit {
		s = s[:limit] + fmt.Sprintf("...(%d bytes)", len(b))
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// parseTime parses an RFC 3339 time or fails the test.
func parseTime(t testing.TB, what, v string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		t.Errorf("%s %q is not RFC 3339", what, v)
	}
	return tm
}

// decodeInto decodes JSON or fails the test.
func decodeInto(t testing.TB, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode %s: %v", clip(raw), err)
	}
}

// mapKeys returns the sorted keys of a map.
func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
