package main

// End-to-end tests of heeprd as an operator runs it: a graceful shutdown under load, refusing
// to start on a corrupt record, backup and restore, and logs free of secrets at debug level.
// They start the real binary on loopback ports and are skipped with -short.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// ---- running the binary for one command ----

// rlRun runs heeprd with args (a subcommand, usually) and returns its exit code and output.
func rlRun(t *testing.T, timeout time.Duration, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(heeprdBinary(t), args...)
	cmd.Env = cleanEnv()
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start heeprd %v: %v", args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("heeprd %v did not finish within %s:\n%s", args, timeout, out.String())
	}
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("heeprd %v: %v", args, err)
	}
	for _, bad := range []string{"panic:", "goroutine ", "DATA RACE"} {
		if strings.Contains(out.String(), bad) {
			t.Errorf("heeprd %v output contains %q:\n%s", args, bad, tail(out.String(), 40))
		}
	}
	return code, out.String()
}

// ---- 7. graceful shutdown under load ----

// rlSlowReader hands out data 32 KiB at a time with a pause before each piece but the first, so
// a 1 MiB upload takes most of a second.
type rlSlowReader struct {
	data  []byte
	off   int
	pause time.Duration
}

func (r *rlSlowReader) Read(p []byte) (int, error) {
	if r.off >= len(r.data) {
		return 0, io.EOF
	}
	if r.off > 0 {
		time.Sleep(r.pause)
	}
	n := copy(p[:min(len(p), 32<<10)], r.data[r.off:])
	r.off += n
	return n, nil
}

// rlOutcome is what became of one request sent around the shutdown.
type rlOutcome struct {
	kind       string // "deliver" or "poll"
	agent      int
	order, sha string
	sent, done time.Time
	conn       atomic.Int64 // unix nanoseconds of the last connection used, 0 if none
	reused     atomic.Bool  // that connection had carried an answered request before
	status     int
	body       []byte
	err        error
}

// rlClient is a client with one keep-alive connection to the server, so that a request on a
// reused connection is known to reach a connection the server had accepted.
func rlClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy: nil, DisableCompression: true, MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1,
			DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		},
	}
}

// rlSend sends req, recording its connection, answer and times in o.
func rlSend(client *http.Client, o *rlOutcome, req *http.Request, connected chan<- struct{}) {
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			o.conn.Store(time.Now().UnixNano())
			o.reused.Store(info.Reused)
			select {
			case connected <- struct{}{}: // nil for polls: never ready
			default:
			}
		},
	}))
	o.sent = time.Now()
	resp, err := client.Do(req)
	if err == nil {
		o.body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		o.status = resp.StatusCode
	}
	o.err, o.done = err, time.Now()
}

// rlDialError reports whether err is a failure to connect: the listener was gone.
func rlDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func TestE2EGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	const (
		agents, perAgent = 10, 4 // 40 slow deliveries and 10 polling loops: 50 at once
		fileSize         = 1 << 20
		shutdownTimeout  = 8 * time.Second
	)
	dir := t.TempDir()
	// Last-poll times reach the disk only in the final snapshot: the interval is an hour.
	s := startServer(t, dir, "--shutdown-timeout", shutdownTimeout.String(),
		"--snapshot-interval", "1h")
	type agentRun struct {
		c      creds
		orders []string
	}
	runs := make([]agentRun, agents)
	for i := range runs {
		runs[i].c = s.newAgent(t, map[string]any{"name": fmt.Sprintf("Shutdown %d", i)})
		for j := 0; j < perAgent; j++ {
			runs[i].orders = append(runs[i].orders, s.placeOrder(t, runs[i].c.id, nil))
		}
		s.poll(t, runs[i].c.key)
	}

	var (
		mu       sync.Mutex
		outcomes []*rlOutcome
		wg       sync.WaitGroup
	)
	record := func(o *rlOutcome) {
		mu.Lock()
		outcomes = append(outcomes, o)
		mu.Unlock()
	}
	// Each delivery first makes a quick request on its connection, so the slow upload that
	// follows goes over a connection the server has accepted.
	connected := make(chan struct{}, agents*perAgent)
	for i, run := range runs {
		for _, oid := range run.orders {
			file := binaryBlob(fileSize)
			ct, body := multipartBody(t, []mpPart{
				{field: "text", data: []byte("delivered during shutdown")},
				{field: "file", filename: "work.bin", data: file},
			})
			req, err := http.NewRequest("POST", s.agentURL+"/orders/"+oid+"/deliver",
				&rlSlowReader{data: body, pause: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = int64(len(body))
			req.Header.Set("Authorization", "Bearer "+run.c.key)
			req.Header.Set("Content-Type", ct)
			o := &rlOutcome{kind: "deliver", agent: i, order: oid, sha: sha256Hex(file)}
			record(o)
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := rlClient()
				defer client.CloseIdleConnections()
				warm, _ := http.NewRequest("GET", s.agentURL+"/skill", nil)
				warm.Header.Set("Authorization", "Bearer "+run.c.key)
				w := &rlOutcome{kind: "warm-up"}
				if rlSend(client, w, warm, nil); w.err != nil || w.status != 200 {
					t.Errorf("warm-up request: %v %d %s", w.err, w.status, clip(w.body))
				}
				rlSend(client, o, req, connected)
			}()
		}
	}
	for i, run := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := rlClient()
			defer client.CloseIdleConnections()
			for n := 0; n < 400; n++ { // bounded: ends when the server is gone
				select {
				case <-s.exited:
					return
				default:
				}
				req, _ := http.NewRequest("GET", s.agentURL+"/events", nil)
				req.Header.Set("Authorization", "Bearer "+run.c.key)
				o := &rlOutcome{kind: "poll", agent: i}
				record(o)
				rlSend(client, o, req, nil)
				time.Sleep(15 * time.Millisecond)
			}
		}()
	}

	// Every delivery is connected and uploading before SIGTERM goes out.
	waitConn := time.After(15 * time.Second)
	for n := 0; n < agents*perAgent; n++ {
		select {
		case <-connected:
		case <-waitConn:
			t.Fatalf("only %d of %d deliveries connected within 15 s", n, agents*perAgent)
		}
	}
	time.Sleep(150 * time.Millisecond)
	sigAt := time.Now()
	s.stop(t) // SIGTERM; checks exit status 0 and "shutdown complete"
	if took := time.Since(sigAt); took > shutdownTimeout {
		t.Errorf("heeprd took %s to exit after SIGTERM, over --shutdown-timeout %s", took,
			shutdownTimeout)
	} else {
		t.Logf("heeprd exited %s after SIGTERM", took.Round(time.Millisecond))
	}
	wg.Wait()

	var answered, refused, cut, inFlight int
	var slowest time.Duration
	delivered := map[string]*rlOutcome{}
	lastPoll := make([]*rlOutcome, agents)
	for _, o := range outcomes {
		switch {
		case o.err == nil:
			answered++
			ok := o.status >= 200 && o.status < 300
			if !ok && (o.status != 503 || !bytes.Contains(o.body, []byte(`"unavailable"`))) {
				t.Errorf("%s %s answered %d %s; want 2xx or a clean 503 unavailable", o.kind,
					o.order, o.status, clip(o.body))
			}
			if o.kind == "deliver" && o.status == 201 {
				delivered[o.order] = o
			}
			if o.kind == "poll" && o.status == 200 {
				if lastPoll[o.agent] == nil || o.done.After(lastPoll[o.agent].done) {
					lastPoll[o.agent] = o
				}
				if o.sent.Before(sigAt) {
					slowest = max(slowest, o.done.Sub(o.sent))
				}
			}
		case rlDialError(o.err):
			refused++ // the listener was closed: never accepted
		case o.kind == "deliver" || o.reused.Load():
			t.Errorf("%s %s over an accepted connection got no answer (sent %s before "+
				"SIGTERM): %v", o.kind, o.order, sigAt.Sub(o.sent).Round(time.Millisecond),
				o.err)
		default:
			// a new connection reset while it waited in the listen queue: never accepted
			cut++
		}
		if o.kind == "deliver" && o.done.After(sigAt) {
			inFlight++
		}
	}
	t.Logf("%d requests: %d answered, %d refused, %d new connections reset before "+
		"accept; %d deliveries in flight at SIGTERM, %d answered 201; slowest poll before "+
		"SIGTERM %s", len(outcomes), answered, refused, cut, inFlight, len(delivered),
		slowest.Round(time.Millisecond))
	if inFlight == 0 {
		t.Errorf("no delivery was in flight at SIGTERM: the test did not test a shutdown")
	}

	s2 := startServer(t, dir)
	for _, sec := range s.knownSecrets()[1:] {
		s2.noteSecret(sec)
	}
	t.Run("every 201 delivery survived", func(t *testing.T) {
		for oid, o := range delivered {
			got := s2.getOrder(t, oid)
			if got.State != "delivered" || len(got.Deliveries) != 1 ||
				len(got.Deliveries[0].Files) != 1 || got.Deliveries[0].Files[0].SHA256 != o.sha {
				t.Errorf("order %s answered 201 before the shutdown; after restart state %s "+
					"deliveries %+v", oid, got.State, got.Deliveries)
			}
		}
	})
	t.Run("last_poll_at is the last poll before the shutdown", func(t *testing.T) {
		for i, run := range runs {
			last := lastPoll[i]
			if last == nil {
				t.Errorf("agent %d: no poll answered 200", i)
				continue
			}
			a := s2.getAgent(t, run.c.id)
			if a.LastPollAt == nil {
				t.Errorf("agent %s: last_poll_at is null after a graceful restart", run.c.id)
				continue
			}
			at := parseTime(t, "last_poll_at", *a.LastPollAt)
			if at.Before(last.sent.Add(-time.Second)) || at.After(last.done.Add(time.Second)) {
				t.Errorf("agent %s: last_poll_at %s, want within a second of its last poll "+
					"(%s)", run.c.id, at.UTC(), last.done.UTC())
			}
		}
	})
}

// ---- 8. a corrupt record stops the start ----

// rlCorruptAgentRecord overwrites the first a/agt_ record of the badger database at dir with a
// value that cannot be decoded, and returns its key.
func rlCorruptAgentRecord(t *testing.T, dir string) string {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatalf("open badger at %s: %v", dir, err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Errorf("close badger: %v", err)
		}
	}()
	var key string
	err = db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("a/agt_")})
		it.Rewind()
		if it.Valid() {
			key = string(it.Item().KeyCopy(nil))
		}
		it.Close()
		if key == "" {
			return errors.New("no key starts with a/agt_")
		}
		return txn.Set([]byte(key), []byte{1, '{'})
	})
	if err != nil {
		t.Fatalf("corrupt the agent record: %v", err)
	}
	return key
}

func TestE2ECorruptRecordRefusesStart(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir)
	c := s.newAgent(t, nil)
	s.placeOrder(t, c.id, nil)
	s.stop(t)
	key := rlCorruptAgentRecord(t, filepath.Join(dir, "db"))
	if key != "a/"+c.id {
		t.Errorf("corrupted key %q, want a/%s", key, c.id)
	}

	bin := heeprdBinary(t)
	probe := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer probe.CloseIdleConnections()
	for attempt := 0; attempt < startAttempts; attempt++ {
		agentAddr, opsAddr := freePort(t), freePort(t)
		cmd := exec.Command(bin, "--addr", agentAddr, "--ops-addr", opsAddr, "--data", dir,
			"--admin-token", s.adminToken, "--log-format", "json")
		cmd.Env = cleanEnv()
		var log lockedBuffer
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatalf("start heeprd: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()

		probes, ready := 0, 0
		var waitErr error
		deadline := time.After(readyTimeout)
	wait:
		for {
			select {
			case waitErr = <-exited:
				break wait
			case <-deadline:
				cmd.Process.Signal(syscall.SIGKILL)
				<-exited
				t.Fatalf("heeprd still running %s after start on a corrupt record:\n%s",
					readyTimeout, tail(log.String(), 30))
			default:
			}
			if resp, err := probe.Get("http://" + opsAddr + "/readyz"); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				probes++
				if resp.StatusCode == 200 {
					ready++
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		out := log.String()
		if strings.Contains(out, "address already in use") {
			continue
		}
		var exit *exec.ExitError
		if !errors.As(waitErr, &exit) || exit.ExitCode() != 1 {
			t.Errorf("heeprd on a corrupt record exited with %v, want exit status 1", waitErr)
		}
		if !strings.Contains(out, key) {
			t.Errorf("the log does not name the corrupt record %q:\n%s", key, tail(out, 30))
		}
		for _, bad := range []string{"panic:", "goroutine ", "DATA RACE"} {
			if strings.Contains(out, bad) {
				t.Errorf("the log contains %q:\n%s", bad, tail(out, 30))
			}
		}
		if strings.Contains(out, `"msg":"ready"`) || ready > 0 {
			t.Errorf("heeprd said ready on a corrupt record (%d of %d /readyz probes were 200)",
				ready, probes)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, key) {
				t.Logf("exit %v after %d /readyz probes, none 200; log: %s", waitErr, probes,
					line)
				break
			}
		}
		return
	}
	t.Fatalf("could not start heeprd on free ports in %d attempts", startAttempts)
}

// ---- 9. backup and restore ----

// rlSnapshot is every agent's and order's admin JSON, decoded.
type rlSnapshot struct {
	agents, orders map[string]map[string]any
}

func rlTake(t *testing.T, s *e2eServer, agentIDs, orderIDs []string) rlSnapshot {
	t.Helper()
	snap := rlSnapshot{agents: map[string]map[string]any{}, orders: map[string]map[string]any{}}
	for _, id := range agentIDs {
		var m map[string]any
		decodeInto(t, expectJSON[json.RawMessage](t, s.admin(t, "GET", "/admin/agents/"+id,
			nil), 200), &m)
		delete(m, "online") // both depend on the clock and the polls, not on the data
		delete(m, "last_poll_at")
		snap.agents[id] = m
	}
	for _, id := range orderIDs {
		var m map[string]any
		decodeInto(t, expectJSON[json.RawMessage](t, s.admin(t, "GET", "/admin/orders/"+id,
			nil), 200), &m)
		snap.orders[id] = m
	}
	return snap
}

func rlCompare(t *testing.T, want, got rlSnapshot) {
	t.Helper()
	for what, pair := range map[string][2]map[string]map[string]any{
		"agent": {want.agents, got.agents}, "order": {want.orders, got.orders},
	} {
		for id, w := range pair[0] {
			if g := pair[1][id]; !reflect.DeepEqual(w, g) {
				wj, _ := json.Marshal(w)
				gj, _ := json.Marshal(g)
				t.Errorf("%s %s differs after restore:\nbefore %s\nafter  %s", what, id, wj, gj)
			}
		}
	}
}

// TestE2EBackupInMemory: an in-memory server cannot be backed up. It says so with 409 before
// any byte of a backup, and `heeprd backup --from` fails instead of writing an empty file.
func TestE2EBackupInMemory(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	s := startServer(t, "", "--in-memory")
	msg := expectError(t, s, s.admin(t, "GET", "/admin/backup", nil), 409, "invalid_state")
	if !strings.Contains(msg, "in-memory") {
		t.Errorf("409 message %q does not say why", msg)
	}

	work := t.TempDir()
	tokenFile := filepath.Join(work, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(s.adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(work, "mem.backup")
	if code, text := rlRun(t, time.Minute, "backup", "--from", s.opsURL,
		"--admin-token-file", tokenFile, "--out", out); code == 0 {
		t.Errorf("heeprd backup of an in-memory server exited 0:\n%s", text)
	}
	if fi, err := os.Stat(out); err == nil && fi.Size() == 0 {
		t.Errorf("an empty backup file was left at %s", out)
	}
}

func TestE2EBackupRestore(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	dir1 := t.TempDir()
	s1 := startServer(t, dir1)

	// A: auto, polled; a delivered binary file, a progress note, a decline, replaced skill files.
	a := s1.newAgent(t, map[string]any{"name": "Backup A", "poll_minutes": 9,
		"revision_cap": 3})
	aOrders := []string{s1.placeOrder(t, a.id, nil), s1.placeOrder(t, a.id, nil),
		s1.placeOrder(t, a.id, map[string]any{"price": 77})}
	s1.poll(t, a.key)
	file := binaryBlob(300 << 10) // above badger's value threshold: it lives in the value log
	ct, body := multipartBody(t, []mpPart{
		{field: "text", data: []byte("the file ✓")},
		{field: "urls", data: []byte("https://example.com/x")},
		{field: "file", filename: "art.bin", data: file},
	})
	mustStatus(t, s1.deliverRaw(t, "", a.key, aOrders[0], ct, body), 201)
	mustStatus(t, s1.agent(t, "POST", "/status", a.key,
		map[string]any{"order_id": aOrders[1], "progress": 60, "message": "inking"}), 200)
	mustStatus(t, s1.agent(t, "POST", "/orders/"+aOrders[2]+"/decline", a.key,
		map[string]any{"reason": "capacity", "message": "full week"}), 200)
	rules := "# Backup rules\n\nKeep it kind. ✓\n"
	skillMD := "# Backup skill\n"
	mustStatus(t, s1.admin(t, "PUT", "/admin/agents/"+a.id+"/skill/RULES.md", rules), 200)
	mustStatus(t, s1.admin(t, "PUT", "/admin/agents/"+a.id+"/skill/SKILL.md", skillMD), 200)
	// B: manual, never polled: its three events stay queued.
	b := s1.newAgent(t, map[string]any{"name": "Backup B", "manual_acceptance": true})
	bOrders := []string{s1.placeOrder(t, b.id, nil), s1.placeOrder(t, b.id, nil)}
	mustStatus(t, s1.admin(t, "POST", "/admin/orders/"+bOrders[1]+"/approve", nil), 200)
	// C: created, its bootstrap token not redeemed yet.
	c := s1.createAgent(t, map[string]any{"name": "Backup C"})
	agentIDs := []string{a.id, b.id, c.id}
	orderIDs := append(append([]string(nil), aOrders...), bOrders...)

	work := t.TempDir()
	tokenFile := filepath.Join(work, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(s1.adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	online := filepath.Join(work, "online.backup")
	code, out := rlRun(t, time.Minute, "backup", "--from", s1.opsURL,
		"--admin-token-file", tokenFile, "--out", online)
	if code != 0 {
		t.Fatalf("heeprd backup --from: exit %d:\n%s", code, out)
	}
	before := rlTake(t, s1, agentIDs, orderIDs)
	beforeSkill := map[string]string{}
	for _, f := range []string{"SKILL.md", "RULES.md", "API.md", "skill.json"} {
		r := s1.agent(t, "GET", "/agents/"+a.id+"/skill/"+f, a.key, nil)
		mustStatus(t, r, 200)
		beforeSkill[f] = string(r.body)
	}
	s1.stop(t)

	offline := filepath.Join(work, "offline.backup")
	if code, out := rlRun(t, time.Minute, "backup", "--data", dir1, "--out", offline); code != 0 {
		t.Fatalf("heeprd backup --data on a stopped server: exit %d:\n%s", code, out)
	}
	dir2, dir3 := t.TempDir(), t.TempDir()
	if code, out := rlRun(t, time.Minute, "restore", "--in", online, "--data", dir2); code != 0 {
		t.Fatalf("heeprd restore of the online backup: exit %d:\n%s", code, out)
	}
	if code, out := rlRun(t, time.Minute, "restore", "--in", offline, "--data", dir3); code != 0 {
		t.Fatalf("heeprd restore of the offline backup: exit %d:\n%s", code, out)
	}

	t.Run("restore into a non-empty directory fails", func(t *testing.T) {
		code, out := rlRun(t, time.Minute, "restore", "--in", online, "--data", dir2)
		if code != 1 {
			t.Errorf("restore into %s, which holds a database: exit %d, want 1:\n%s", dir2,
				code, out)
		}
	})
	t.Run("a truncated backup is refused", func(t *testing.T) {
		data, err := os.ReadFile(online)
		if err != nil || len(data) < 200 {
			t.Fatalf("read the backup: %v (%d bytes)", err, len(data))
		}
		for _, cut := range []int{1, len(data) / 2, len(data) - 1} {
			trunc := filepath.Join(work, fmt.Sprintf("truncated-%d.backup", cut))
			if err := os.WriteFile(trunc, data[:len(data)-cut], 0o600); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			code, out := rlRun(t, time.Minute, "restore", "--in", trunc, "--data", dir)
			if code != 1 {
				t.Errorf("restore of a backup missing its last %d bytes: exit %d, want 1:\n%s",
					cut, code, out)
			}
			if entries, _ := os.ReadDir(filepath.Join(dir, "db")); len(entries) > 0 {
				t.Errorf("a refused restore left %d entries in %s/db", len(entries), dir)
			}
		}
	})

	for _, tc := range []struct{ name, dir string }{{"online", dir2}, {"offline", dir3}} {
		t.Run("server on the "+tc.name+" backup", func(t *testing.T) {
			// the same admin token, and the same public URL so the skill files render alike
			s := startServer(t, tc.dir, "--admin-token", s1.adminToken,
				"--public-url", s1.agentURL)
			s.adminToken = s1.adminToken
			for _, sec := range s1.knownSecrets() {
				s.noteSecret(sec)
			}
			rlCompare(t, before, rlTake(t, s, agentIDs, orderIDs))
			r := s.admin(t, "GET", "/admin/orders/"+aOrders[0]+"/deliveries/1/files/art.bin", nil)
			if r.status != 200 || !bytes.Equal(r.body, file) {
				t.Errorf("file after restore: %d, %d bytes (sha256 %s); want %d bytes (%s)",
					r.status, len(r.body), sha256Hex(r.body), len(file), sha256Hex(file))
			}
			for f, want := range beforeSkill {
				r := s.agent(t, "GET", "/agents/"+a.id+"/skill/"+f, a.key, nil)
				if got := string(r.body); r.status != 200 || got != want {
					t.Errorf("%s after restore: %d, %d bytes; want the %d bytes served before",
						f, r.status, len(got), len(want))
				}
			}
			s.expectEmptyPoll(t, a.key)
			evs := s.poll(t, b.key)
			bPart := strings.TrimPrefix(b.id, "agt_")
			if len(evs) != 3 || evs[0].ID != "evt_"+bPart+"_1" || evs[2].ID != "evt_"+bPart+"_3" ||
				evs[2].Kind != "owner_approved_order" || evs[2].OrderID != bOrders[1] {
				t.Errorf("B's queued events after restore: %+v", evs)
			}
			s.register(t, c) // the unused bootstrap token came along too
			mustStatus(t, s.agent(t, "POST", "/orders/"+aOrders[1]+"/deliver", a.key,
				map[string]any{"text": "after restore"}), 201)
		})
	}
}

// ---- 10. no secret in the log, at debug level ----

// rlCountingTB records the failures a check reports instead of failing the test.
type rlCountingTB struct {
	testing.TB
	mu   sync.Mutex
	msgs []string
}

func (c *rlCountingTB) Helper() {}

func (c *rlCountingTB) Errorf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, fmt.Sprintf(format, args...))
}

// rlRaw sends raw bytes to addr on one connection and returns what came back until EOF.
func rlRaw(t *testing.T, addr string, req []byte) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(req); err != nil {
		t.Fatalf("write to %s: %v", addr, err)
	}
	resp, _ := io.ReadAll(bufio.NewReader(conn))
	return string(resp)
}

func TestE2ESecretsNeverLogged(t *testing.T) {
	if testing.Short() {
		t.Skip(shortSkip)
	}
	t.Parallel()
	s := startServer(t, "", "--log-level", "debug")
	wrong := func(c string) string { // a well-formed credential of the agent that is not its own
		pub, _ := splitSecret(c)
		return pub + "_" + strings.Repeat("q", 32)
	}

	// the whole flow, with credentials right and wrong
	a := s.newAgent(t, map[string]any{"name": "Quiet"})
	expectError(t, s, s.tryRegister(t, "", "Bootstrap", a.token, nil), 401, "bootstrap_used")
	wrongKey := wrong(a.key)
	s.noteSecret(wrongKey)
	expectError(t, s, s.agent(t, "GET", "/events", wrongKey, nil), 401, "key_unknown")
	expectError(t, s, s.do(t, "GET", s.agentURL+"/events",
		map[string]string{"Authorization": "Token " + a.key}, nil), 401, "missing_credentials")
	wrongAdmin := "adm_e2e_" + randomHex(16)
	s.noteSecret(wrongAdmin)
	expectError(t, s, s.do(t, "GET", s.opsURL+"/admin/agents/"+a.id,
		map[string]string{"Authorization": "Bearer " + wrongAdmin}, nil), 401, "key_unknown")
	oid := s.placeOrder(t, a.id, nil)
	s.poll(t, a.key)
	mustStatus(t, s.agent(t, "POST", "/status", a.key,
		map[string]any{"order_id": oid, "progress": 10, "message": "started"}), 200)
	ct, body := multipartBody(t, []mpPart{{field: "file", filename: "f.bin",
		data: binaryBlob(2000)}})
	mustStatus(t, s.deliverRaw(t, "", a.key, oid, ct, body), 201)
	mustStatus(t, s.admin(t, "POST", "/admin/orders/"+oid+"/release", nil), 200)
	mustStatus(t, s.admin(t, "POST", "/admin/agents/"+a.id+"/revoke-key", nil), 200)
	expectError(t, s, s.agent(t, "GET", "/events", a.key, nil), 401, "key_revoked")
	a.token = s.mintToken(t, a.id, nil)
	expectError(t, s, s.tryRegister(t, "", "Bootstrap", wrong(a.token), nil), 401,
		"bootstrap_unknown")
	s.noteSecret(wrong(a.token))
	a.key = s.register(t, a)
	s.expectEmptyPoll(t, a.key)
	b := s.createAgent(t, nil) // an unused token

	// Requests the HTTP layer cannot parse, carrying a live key, a live bootstrap token and
	// the admin token: whatever is logged about them must not quote the credentials.
	agentAddr := strings.TrimPrefix(s.agentURL, "http://")
	opsAddr := strings.TrimPrefix(s.opsURL, "http://")
	for _, tc := range []struct{ addr, auth string }{
		{agentAddr, "Bearer " + a.key},
		{agentAddr, "Bootstrap " + b.token},
		{opsAddr, "Bearer " + s.adminToken},
	} {
		for _, bad := range []string{
			"GET /events HTTP/1.1\r\nHost: x\r\nAuthorization: " + tc.auth +
				"\r\nContent-Length: nope\r\n\r\n",
			"GET /events HTTP/1.1\r\nAuthorization: " + tc.auth + "\r\nBad header\r\n\r\n",
			"GET /events HTTP/9.9 extra\r\nAuthorization: " + tc.auth + "\r\n\r\n",
			"GET /events HTTP/1.1\r\nHost: x\r\nAuthorization " + tc.auth + "\r\n\r\n",
			"Authorization: " + tc.auth + "\r\n\r\n",
		} {
			rlRaw(t, tc.addr, []byte(bad))
		}
	}
	s.stop(t)

	log := s.stderr.String()
	secrets := 0
	for _, sec := range s.knownSecrets() {
		if _, part := splitSecret(sec); len(part) >= 16 {
			secrets++
		}
	}
	records, debug := 0, 0
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var rec struct {
			Level string `json:"level"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil {
			records++
			if rec.Level == "DEBUG" {
				debug++
			}
		}
	}
	t.Logf("log: %d records (%d at debug), scanned for %d secrets", records, debug, secrets)
	// admin token, 3 bootstrap tokens, 2 keys, and 3 wrong credentials
	if secrets < 9 {
		t.Errorf("only %d secrets to look for, want at least 9", secrets)
	}
	if records < 5 || debug == 0 {
		t.Errorf("the log has %d records, %d at debug: --log-level debug was not in effect",
			records, debug)
	}

	// The scan itself: it finds a planted secret, and it finds nothing in the real log.
	fake := &e2eServer{stderr: &lockedBuffer{}, secrets: []string{a.key}}
	fmt.Fprintf(fake.stderr, `{"time":"x","level":"DEBUG","msg":"oops %s"}`+"\n", a.key)
	planted := &rlCountingTB{TB: t}
	fake.checkLog(planted)
	if len(planted.msgs) == 0 {
		t.Errorf("checkLog did not notice a key planted in a log")
	}
	realLog := &rlCountingTB{TB: t}
	s.checkLog(realLog)
	for _, m := range realLog.msgs {
		t.Errorf("log check: %s", m)
	}
	// name every leaking line, with the secrets blanked out, to show where they come from
	leaks := 0
	for _, line := range strings.Split(log, "\n") {
		leaked := false
		for _, sec := range s.knownSecrets() {
			if _, part := splitSecret(sec); len(part) >= 16 && strings.Contains(line, part) {
				line, leaked = strings.ReplaceAll(line, part, "<SECRET>"), true
			}
		}
		if leaked {
			if leaks++; leaks <= 20 {
				t.Logf("log line with a secret: %s", line)
			}
		}
	}
}
