package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/valyala/fasthttp"
)

// Bounds of a crash run, whatever the flags say.
const (
	maxKills            = 10_000
	maxCrashAgents      = 1000
	settleTime          = 2 * time.Minute  // settling keys after the workload
	observeConcurrency  = 4                // parallel reads while verifying
	keyFailureBudget    = 20               // 401s the final key checks may cause (see observeKeys)
	crashRetryLimit     = 10 * time.Minute // retries of one write never outlast this
	maxListedViolations = 50               // the table lists at most this many
)

// crashOptions are the flags of the crash mode.
type crashOptions struct {
	kills, workers       int
	minUptime, maxUptime time.Duration
	seed                 uint64
	timeLimit            time.Duration
}

func (o *options) crashFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.spawn, "spawn", "", "the heeprd binary to start, kill and restart "+
		"(required)")
	fs.BoolVar(&o.fsync, "fsync", true, "passed to heeprd --fsync")
	fs.Func("server-args", "more heeprd flags, space-separated (repeatable)", o.addServerArgs)
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "timeout of one request")
	fs.IntVar(&o.agents, "agents", 32, "agents to create; every fourth approves orders by hand")
	fs.IntVar(&o.crash.workers, "workers", 4, "concurrent workers; each owns a share of the agents")
	fs.IntVar(&o.crash.kills, "kills", 10, "how many times heeprd is killed with SIGKILL")
	fs.DurationVar(&o.crash.minUptime, "min-uptime", 300*time.Millisecond,
		"shortest time heeprd runs after ready before a kill")
	fs.DurationVar(&o.crash.maxUptime, "max-uptime", 2*time.Second,
		"longest time heeprd runs after ready before a kill")
	fs.Uint64Var(&o.crash.seed, "seed", 0, "seed of the workload and kill times (0: from the clock)")
	fs.DurationVar(&o.crash.timeLimit, "time-limit", 30*time.Minute,
		"stop killing after this long, whatever --kills says")
}

// validateCrash checks the crash mode's flags.
func (o *options) validateCrash() error {
	var problems flagProblems
	check := problems.check
	c := &o.crash
	check(o.spawn != "", "crash needs --spawn: it kills and restarts a heeprd of its own")
	check(!setsReserved(o.serverArgs), "--server-args must not set --addr, --ops-addr, "+
		"--data, --in-memory or --admin-token: the harness chooses them")
	check(o.timeout > 0 && o.timeout <= 10*time.Minute, "--timeout must be 1ns to 10m")
	check(o.agents >= 1 && o.agents <= maxCrashAgents, "--agents must be 1 to 1000")
	check(c.workers >= 1 && c.workers <= o.agents, "--workers must be 1 to --agents")
	check(c.kills >= 0 && c.kills <= maxKills, "--kills must be 0 to 10000")
	check(c.minUptime >= time.Millisecond && c.maxUptime >= c.minUptime &&
		c.maxUptime <= time.Hour, "want 1ms <= --min-uptime <= --max-uptime <= 1h")
	check(c.timeLimit > 0 && c.timeLimit <= 24*time.Hour, "--time-limit must be positive, "+
		"at most 24h")
	if c.seed == 0 {
		c.seed = uint64(time.Now().UnixNano())
	}
	return problems.err()
}

// crashRun is one run of the crash mode. The kill loop owns srv; workers share the ledger, the
// gate and the flags below.
type crashRun struct {
	o         *options
	srv       *server
	led       *ledger
	gate      *upGate
	adminAuth string
	log       io.Writer
	progress  bool

	stopping       atomic.Bool  // workers start no new step
	retryUntil     atomic.Int64 // UnixNano after which no write is retried
	brokenAttempts atomic.Int64 // attempts that broke, resolved or not

	mu        sync.Mutex
	harness   []string // harness failures (encoding a request); reported as violations
	kills     int
	restarts  []time.Duration
	incidents []violation // heeprd exited by itself or failed to restart
}

func (r *crashRun) pastDeadline() bool {
	return time.Now().UnixNano() > r.retryUntil.Load()
}

func (r *crashRun) harnessError(err error) {
	r.mu.Lock()
	r.harness = append(r.harness, err.Error())
	r.mu.Unlock()
}

// runCrash is the crash mode: provision, run the workload while killing heeprd --kills times,
// restart it cleanly once more, then check every acknowledged write against what it shows.
func runCrash(ctx context.Context, o *options, stdout, stderr io.Writer) (err error) {
	srv, err := newServer(o.spawn, "", o.fsync, o.serverArgs)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, srv.Close()) }()
	if err := srv.Start(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench: started heeprd pid %d: agent API %s, ops %s, log %s\n",
		srv.PID(), srv.agentAddr, srv.opsAddr, srv.logPath)

	r := &crashRun{o: o, srv: srv, led: &ledger{}, gate: newUpGate(),
		adminAuth: "Bearer " + srv.adminToken, log: stderr,
		progress: o.progress || isTerminal(stderr)}
	r.retryUntil.Store(time.Now().Add(o.crash.timeLimit + crashRetryLimit).UnixNano())
	began := time.Now()
	agents, err := r.provision()
	if err != nil {
		return err
	}
	r.workload(ctx, agents)
	if ctx.Err() != nil {
		return fmt.Errorf("crash: %w", ctx.Err())
	}
	workTime := time.Since(began)

	// The final, clean restart: SIGTERM, then start on the same data.
	if srv.PID() != 0 {
		if err := srv.Restart(ctx); err != nil {
			r.incident("restart", "clean restart after the workload failed: %v", err)
		}
	}
	verifyBegan := time.Now()
	var v *verdict
	if srv.PID() != 0 {
		obs := r.observe(agents)
		v = verify(r.led.sorted(), obs)
	} else {
		v = verify(nil, &observation{})
	}
	rep := r.report(v, workTime, time.Since(verifyBegan))
	if err := srv.Stop(); err != nil {
		rep.Violations = append(rep.Violations, violation{Check: "shutdown",
			Detail: err.Error()})
	}
	if p := srv.logProblems(); p.warnings+p.errors > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("heeprd logged %d warnings and %d errors "+
			"(log kept: %s); first: %s", p.warnings, p.errors, srv.logPath, p.first))
	}
	if werr := rep.write(stdout, o.asJSON); werr != nil {
		return werr
	}
	if n := len(rep.Violations); n > 0 {
		return fmt.Errorf("crash: %d violations", n)
	}
	if rep.Kills < o.crash.kills {
		return fmt.Errorf("crash: only %d of %d kills within --time-limit %s", rep.Kills,
			o.crash.kills, o.crash.timeLimit)
	}
	return nil
}

func (r *crashRun) incident(check, format string, args ...any) {
	r.mu.Lock()
	r.incidents = append(r.incidents, violation{Check: check, Detail: fmt.Sprintf(format, args...)})
	r.mu.Unlock()
}

// provision creates the agents and registers each, before any kill; both go into the ledger.
// Every fourth agent approves orders by hand; revision caps cycle through 0, 1 and 2.
func (r *crashRun) provision() ([]*crashAgent, error) {
	ops := newCrashEndpoint(r.srv.opsAddr, 1, r.o.timeout)
	agent := newCrashEndpoint(r.srv.agentAddr, 1, r.o.timeout)
	defer ops.hc.CloseIdleConnections()
	defer agent.hc.CloseIdleConnections()
	agents := make([]*crashAgent, r.o.agents)
	for i := range agents {
		a := &crashAgent{manual: i%4 == 1, revisionCap: i % 3}
		body, err := json.Marshal(map[string]any{"name": "crash-" + strconv.Itoa(i),
			"owner": "bench", "poll_minutes": 1, "revision_cap": a.revisionCap,
			"manual_acceptance": a.manual})
		if err != nil {
			return nil, fmt.Errorf("provision: %w", err)
		}
		ans := ops.exchange(callSpec{method: "POST", path: "/admin/agents", auth: r.adminAuth,
			contentType: "application/json", body: body})
		var created struct {
			AgentID string `json:"agent_id"`
			Token   string `json:"bootstrap_token"`
		}
		if err := decodeAnswer(ans, fasthttp.StatusCreated, &created); err != nil {
			return nil, fmt.Errorf("provision: create agent %d: %w", i, err)
		}
		e := r.led.begin(opCreateAgent, created.AgentID, "")
		e.Outcome, e.Manual, e.RevisionCap, e.Token = outAcked, a.manual, a.revisionCap,
			created.Token
		r.led.add(e)

		ans = agent.exchange(callSpec{method: "POST", path: "/agent/register",
			auth: "Bootstrap " + created.Token})
		var registered struct {
			Key string `json:"api_key"`
		}
		if err := decodeAnswer(ans, fasthttp.StatusCreated, &registered); err != nil {
			return nil, fmt.Errorf("provision: register agent %d: %w", i, err)
		}
		e = r.led.begin(opRegister, created.AgentID, "")
		e.Outcome, e.Token, e.IssuedKey = outAcked, created.Token, registered.Key
		r.led.add(e)
		a.id, a.key = created.AgentID, registered.Key
		agents[i] = a
	}
	agents[0].endRevoked = true
	return agents, nil
}

// decodeAnswer checks that an answer has status want and decodes its JSON body into out.
func decodeAnswer(a answer, want int, out any) error {
	if a.err != nil {
		return a.err
	}
	if a.status != want {
		return &httpError{Status: a.status, Code: a.code}
	}
	if err := json.Unmarshal(a.body, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// workload runs the workers while the kill loop kills and restarts heeprd, then stops the
// workers and lets them settle every agent's key.
func (r *crashRun) workload(ctx context.Context, agents []*crashAgent) {
	workers := make([]*crashWorker, r.o.crash.workers)
	for i := range workers {
		workers[i] = &crashWorker{run: r,
			agent: newCrashEndpoint(r.srv.agentAddr, 1, r.o.timeout),
			ops:   newCrashEndpoint(r.srv.opsAddr, 1, r.o.timeout),
			rng:   rand.New(rand.NewPCG(r.o.crash.seed, uint64(i)+1))}
	}
	for i, a := range agents {
		w := workers[i%len(workers)]
		w.agents = append(w.agents, a)
	}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(w.loop)
	}
	healthy := r.killLoop(ctx)
	if !healthy {
		r.retryUntil.Store(time.Now().UnixNano()) // heeprd is gone: nothing is retried
	}
	r.stopping.Store(true)
	wg.Wait()
	if !healthy {
		return
	}

	// Settle: the server stays up; every agent ends with a key the harness knows.
	r.retryUntil.Store(time.Now().Add(settleTime).UnixNano())
	for _, w := range workers {
		wg.Go(w.settle)
	}
	wg.Wait()
	for _, w := range workers {
		w.agent.hc.CloseIdleConnections()
		w.ops.hc.CloseIdleConnections()
	}
}

// killLoop kills heeprd --kills times, each at a uniformly random moment between --min-uptime
// and --max-uptime after it became ready, and restarts it on the same data. After the last
// restart the workload runs for one more such uptime. It returns false if heeprd is no longer
// running or ctx ended.
func (r *crashRun) killLoop(ctx context.Context) bool {
	c := r.o.crash
	rng := rand.New(rand.NewPCG(c.seed, 0))
	uptime := func() time.Duration {
		return c.minUptime + time.Duration(rng.Int64N(int64(c.maxUptime-c.minUptime)+1))
	}
	limit := time.Now().Add(c.timeLimit)
	for i := 1; i <= c.kills && time.Now().Before(limit); i++ {
		if !sleepCtx(ctx, uptime()) {
			return false
		}
		if r.srv.PID() == 0 {
			r.incident("exited", "heeprd exited by itself before kill %d; log %s:\n%s", i,
				r.srv.logPath, tail(r.srv.logPath, 10))
			return false
		}
		pid := r.srv.PID()
		r.gate.down()
		if err := r.srv.Kill9(); err != nil {
			r.incident("kill", "kill %d: %v", i, err)
			return false
		}
		began := time.Now()
		if err := r.srv.Start(ctx); err != nil {
			if ctx.Err() == nil {
				r.incident("restart", "restart after kill %d failed: %v", i, err)
			}
			return false
		}
		took := time.Since(began)
		r.gate.up()
		r.mu.Lock()
		r.kills, r.restarts = i, append(r.restarts, took)
		r.mu.Unlock()
		if r.progress {
			fmt.Fprintf(r.log, "crash: kill %d/%d (pid %d), ready again in %s; %d writes "+
				"acknowledged, %d in doubt\n", i, c.kills, pid, took.Round(time.Millisecond),
				r.led.count(outAcked), r.led.count(outInDoubt))
		}
	}
	if !sleepCtx(ctx, uptime()) {
		return false
	}
	if r.srv.PID() == 0 {
		r.incident("exited", "heeprd exited by itself after the last kill; log %s:\n%s",
			r.srv.logPath, tail(r.srv.logPath, 10))
		return false
	}
	return true
}

// sleepCtx sleeps for d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// observe reads everything the ledger speaks of from the restarted server: each agent, each
// acknowledged order with its delivered files, and GET /events with the keys the ledger knows.
func (r *crashRun) observe(agents []*crashAgent) *observation {
	obs := &observation{Agents: map[string]*obsAgent{}, Orders: map[string]*obsOrder{},
		Files: map[fileRef]*obsFile{}, Keys: map[string]*obsKey{}}
	entries := r.led.sorted()
	var mu sync.Mutex
	fail := func(format string, args ...any) {
		mu.Lock()
		obs.Errors = append(obs.Errors, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	ops := newCrashEndpoint(r.srv.opsAddr, observeConcurrency, r.o.timeout)
	defer ops.hc.CloseIdleConnections()

	var orders []string
	for _, e := range entries {
		if e.Kind == opPlace && e.Outcome == outAcked && e.Bad == "" {
			orders = append(orders, e.Order)
		}
	}
	parallel(len(orders), func(i int) {
		o, files, err := r.readOrder(ops, orders[i])
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			obs.Errors = append(obs.Errors, err.Error())
			return
		}
		obs.Orders[orders[i]] = o
		for ref, f := range files {
			obs.Files[ref] = f
		}
	})
	parallel(len(agents), func(i int) {
		a, err := r.readAgent(ops, agents[i].id)
		if err != nil {
			fail("%v", err)
			return
		}
		mu.Lock()
		obs.Agents[agents[i].id] = a
		mu.Unlock()
	})
	setKey := func(key string, k *obsKey) {
		mu.Lock()
		obs.Keys[key] = k
		mu.Unlock()
	}
	r.observeKeys(obs, entries, setKey, fail)
	return obs
}

// parallel runs f(0..n-1) on observeConcurrency goroutines.
func parallel(n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(observeConcurrency, n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}

// get reads one admin resource, retrying a few times on failures other than an answer.
func (r *crashRun) get(ep *endpoint, path string) answer {
	var a answer
	for attempt := range 5 {
		a = ep.exchange(callSpec{method: "GET", path: path, auth: r.adminAuth})
		if a.err == nil && a.status < 500 {
			return a
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
	}
	return a
}

// wireOrder is the part of GET /admin/orders/{id} the verifier reads.
type wireOrder struct {
	State         string    `json:"state"`
	FlaggedFrom   string    `json:"flagged_from"`
	RevisionsUsed int       `json:"revisions_used"`
	Scope         string    `json:"scope"`
	Brief         string    `json:"brief"`
	Deadline      time.Time `json:"deadline"`
	Progress      *struct {
		Percent int `json:"percent"`
	} `json:"progress"`
	Deliveries []struct {
		N     int      `json:"n"`
		Text  string   `json:"text"`
		URLs  []string `json:"urls"`
		Files []struct {
			Name   string `json:"name"`
			Size   int64  `json:"size"`
			SHA256 string `json:"sha256"`
		} `json:"files"`
	} `json:"deliveries"`
}

// readOrder reads an order and downloads each delivered file.
func (r *crashRun) readOrder(ep *endpoint, id string) (*obsOrder, map[fileRef]*obsFile, error) {
	a := r.get(ep, "/admin/orders/"+id)
	if a.err == nil && a.status == fasthttp.StatusNotFound {
		return &obsOrder{}, nil, nil
	}
	var w wireOrder
	if err := decodeAnswer(a, fasthttp.StatusOK, &w); err != nil {
		return nil, nil, fmt.Errorf("read order %s: %w", id, err)
	}
	o := &obsOrder{Found: true, State: w.State, FlaggedFrom: w.FlaggedFrom,
		RevisionsUsed: w.RevisionsUsed, Terms: orderTerms{Scope: w.Scope, Brief: w.Brief,
			Deadline: w.Deadline.UTC().Format(time.RFC3339)}}
	if w.Progress != nil {
		p := w.Progress.Percent
		o.Progress = &p
	}
	files := map[fileRef]*obsFile{}
	for _, d := range w.Deliveries {
		od := obsDelivery{N: d.N, Text: d.Text, URLs: d.URLs}
		for _, f := range d.Files {
			od.Files = append(od.Files, obsFileMeta{Name: f.Name, Size: f.Size, SHA256: f.SHA256})
			ref := fileRef{Order: id, N: d.N, Name: f.Name}
			fa := r.get(ep, "/admin/orders/"+id+"/deliveries/"+strconv.Itoa(d.N)+"/files/"+
				url.PathEscape(f.Name))
			switch {
			case fa.err == nil && fa.status == fasthttp.StatusOK:
				files[ref] = &obsFile{Found: true, Data: fa.body, HeaderSHA: fa.sha}
			case fa.err == nil && fa.status == fasthttp.StatusNotFound:
				files[ref] = &obsFile{}
			default:
				return nil, nil, fmt.Errorf("download %s delivery %d file %q: %w", id, d.N,
					f.Name, answerErr(fa))
			}
		}
		o.Deliveries = append(o.Deliveries, od)
	}
	return o, files, nil
}

func answerErr(a answer) error {
	if a.err != nil {
		return a.err
	}
	return &httpError{Status: a.status, Code: a.code}
}

// readAgent reads GET /admin/agents/{id}.
func (r *crashRun) readAgent(ep *endpoint, id string) (*obsAgent, error) {
	a := r.get(ep, "/admin/agents/"+id)
	if a.err == nil && a.status == fasthttp.StatusNotFound {
		return &obsAgent{}, nil
	}
	var w struct {
		Status   string `json:"status"`
		KeyState string `json:"key_state"`
		Settings struct {
			RevisionCap      int  `json:"revision_cap"`
			ManualAcceptance bool `json:"manual_acceptance"`
		} `json:"settings"`
		Orders map[string]int `json:"orders"`
	}
	if err := decodeAnswer(a, fasthttp.StatusOK, &w); err != nil {
		return nil, fmt.Errorf("read agent %s: %w", id, err)
	}
	o := &obsAgent{Found: true, Status: w.Status, KeyState: w.KeyState,
		Manual: w.Settings.ManualAcceptance, RevisionCap: w.Settings.RevisionCap}
	for _, n := range w.Orders {
		o.OrderCount += n
	}
	return o, nil
}

// observeKeys polls with every agent's latest key, which also drains the events still queued,
// then with older keys while the budget lasts: each 401 counts against heeprd's per-address
// budget of failed authentications (burst 30 by default), and past it heeprd would refuse the
// harness altogether. The latest keys go first, so every agent's queue is read.
func (r *crashRun) observeKeys(obs *observation, entries []*entry,
	setKey func(string, *obsKey), fail func(string, ...any)) {
	keys := map[string][]string{} // agent → acknowledged keys, newest first
	var agentOrder []string
	for _, e := range entries {
		if e.Kind == opRegister && e.Outcome == outAcked && e.Bad == "" {
			if keys[e.Agent] == nil {
				agentOrder = append(agentOrder, e.Agent)
			}
			keys[e.Agent] = append([]string{e.IssuedKey}, keys[e.Agent]...)
		}
	}
	ep := newCrashEndpoint(r.srv.agentAddr, observeConcurrency, r.o.timeout)
	defer ep.hc.CloseIdleConnections()
	parallel(len(agentOrder), func(i int) {
		agent := agentOrder[i]
		k, err := r.pollKey(ep, agent, keys[agent][0])
		if err != nil {
			fail("final poll of agent %s: %v", agent, err)
			return
		}
		setKey(keys[agent][0], k)
	})
	budget := keyFailureBudget
	for _, agent := range agentOrder {
		if k := obs.Keys[keys[agent][0]]; k != nil && k.Code != authOK {
			budget--
		}
	}
	for depth := 1; budget > 0; depth++ {
		more := false
		for _, agent := range agentOrder {
			if depth >= len(keys[agent]) || budget <= 0 {
				continue
			}
			more = true
			key := keys[agent][depth]
			k, err := r.pollKey(ep, agent, key)
			if err != nil {
				fail("poll agent %s with an old key: %v", agent, err)
				continue
			}
			setKey(key, k)
			if k.Code != authOK {
				budget--
			}
		}
		if !more {
			break
		}
	}
}

// pollKey sends GET /events with key until the queue is empty (a few polls at most).
func (r *crashRun) pollKey(ep *endpoint, agent, key string) (*obsKey, error) {
	k := &obsKey{Agent: agent}
	for range 5 {
		var a answer
		for range 5 {
			a = ep.exchange(callSpec{method: "GET", path: "/events", auth: "Bearer " + key})
			if a.err != nil || a.status != fasthttp.StatusTooManyRequests {
				break
			}
			time.Sleep(min(max(a.retryAfter, 100*time.Millisecond), 2*time.Second))
		}
		switch {
		case a.err != nil || a.status >= 500 || a.status == fasthttp.StatusTooManyRequests:
			return nil, answerErr(a)
		case a.status != fasthttp.StatusOK:
			k.Code = a.codeOrStatus()
			return k, nil
		}
		var out struct {
			Events []seenEvent `json:"events"`
		}
		if err := json.Unmarshal(a.body, &out); err != nil {
			return nil, fmt.Errorf("decode events: %w", err)
		}
		k.Code = authOK
		if len(out.Events) == 0 {
			return k, nil
		}
		k.Events = append(k.Events, out.Events...)
	}
	return k, nil
}

// crashReport is the result of a crash run.
type crashReport struct {
	Mode            string            `json:"mode"`
	Target          string            `json:"target"`
	Settings        map[string]string `json:"settings"`
	Kills           int               `json:"kills"`
	KillsPlanned    int               `json:"kills_planned"`
	RestartP50      float64           `json:"restart_seconds_p50"`
	RestartMax      float64           `json:"restart_seconds_max"`
	WorkloadSeconds float64           `json:"workload_seconds"`
	VerifySeconds   float64           `json:"verify_seconds"`
	AckedTotal      int               `json:"acked_total"`
	InDoubtTotal    int               `json:"in_doubt_total"`
	BrokenAttempts  int64             `json:"broken_attempts"`
	*verdict
	Notes []string `json:"notes,omitempty"`
}

// report assembles the report from the verdict and the run's figures.
func (r *crashRun) report(v *verdict, work, verifyTime time.Duration) *crashReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.o.crash
	rep := &crashReport{Mode: "crash", Target: "http://" + r.srv.agentAddr,
		Settings: map[string]string{
			"server": strings.Join(append([]string{"spawned", r.o.spawn,
				"--fsync=" + strconv.FormatBool(r.o.fsync)}, r.o.serverArgs...), " "),
			"agents": strconv.Itoa(r.o.agents), "workers": strconv.Itoa(c.workers),
			"kills": strconv.Itoa(c.kills), "min-uptime": c.minUptime.String(),
			"max-uptime": c.maxUptime.String(), "seed": strconv.FormatUint(c.seed, 10),
		},
		Kills: r.kills, KillsPlanned: c.kills, WorkloadSeconds: work.Seconds(),
		VerifySeconds: verifyTime.Seconds(), BrokenAttempts: r.brokenAttempts.Load(),
		verdict: v}
	if len(r.restarts) > 0 {
		d := append([]time.Duration(nil), r.restarts...)
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		rep.RestartP50, rep.RestartMax = d[len(d)/2].Seconds(), d[len(d)-1].Seconds()
	}
	for _, n := range v.Acked {
		rep.AckedTotal += n
	}
	for _, n := range v.InDoubt {
		rep.InDoubtTotal += n
	}
	all := append(slices.Clone(r.incidents), v.Violations...)
	v.Violations = append(all, harnessViolations(r.harness)...)
	if v.Violations == nil {
		v.Violations = []violation{}
	}
	return rep
}

func harnessViolations(errs []string) []violation {
	var out []violation
	for _, e := range errs {
		out = append(out, violation{Check: "harness", Detail: e})
	}
	return out
}

// write prints the report as JSON or as a table.
func (rep *crashReport) write(w io.Writer, asJSON bool) error {
	if asJSON {
		return writeJSON(w, rep)
	}
	fmt.Fprintf(w, "mode crash  target %s\n%s\n\n", rep.Target, settingsLine(rep.Settings))
	fmt.Fprintf(w, "kills survived: %d of %d (SIGKILL at random moments), then one clean "+
		"restart; ready again after a kill in %.2fs (p50), %.2fs (max)\n", rep.Kills,
		rep.KillsPlanned, rep.RestartP50, rep.RestartMax)
	fmt.Fprintf(w, "workload %.1fs: %d writes acknowledged, %d in doubt, %d broken attempts; "+
		"verification %.1fs\n\n", rep.WorkloadSeconds, rep.AckedTotal, rep.InDoubtTotal,
		rep.BrokenAttempts, rep.VerifySeconds)

	kinds := map[opKind]bool{}
	for _, m := range []map[opKind]int{rep.Acked, rep.InDoubt, rep.Refused, rep.Retried} {
		for k := range m {
			kinds[k] = true
		}
	}
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, string(k))
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "write\tacknowledged\tin doubt\trefused\tresolved by retry\t")
	for _, n := range names {
		k := opKind(n)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t\n", n, rep.Acked[k], rep.InDoubt[k],
			rep.Refused[k], rep.Retried[k])
	}
	tw.Flush()

	ev := rep.Events
	fmt.Fprintf(w, "\nchecked: %d agents, %d orders, %d deliveries, %d files (%d bytes compared), "+
		"%d keys\n", rep.Agents, rep.Orders, rep.Deliveries, rep.Files, rep.FileBytes, rep.Keys)
	fmt.Fprintf(w, "events: %d queued by acknowledged writes (%s), %d distinct seen, %d missing "+
		"(%d explained by a poll in doubt, %d unverifiable), %d for orders placed in doubt, "+
		"%d returned again\n", ev.Expected, kindCounts(ev.ExpectedByKind), ev.Seen, ev.Missing,
		ev.ExplainedPoll, ev.Unverifiable, ev.UnknownOrders, ev.DuplicateSeen)
	if len(rep.Violations) == 0 {
		fmt.Fprintln(w, "\nviolations: none")
	} else {
		fmt.Fprintf(w, "\nviolations: %d\n", len(rep.Violations))
		for i, v := range rep.Violations {
			if i == maxListedViolations {
				fmt.Fprintf(w, "  ... %d more (--json lists them all)\n",
					len(rep.Violations)-i)
				break
			}
			fmt.Fprintf(w, "  %s", v.Check)
			if v.Agent != "" {
				fmt.Fprintf(w, " agent %s", v.Agent)
			}
			if v.Order != "" {
				fmt.Fprintf(w, " order %s", v.Order)
			}
			if v.Seq != 0 {
				fmt.Fprintf(w, " write %d", v.Seq)
			}
			fmt.Fprintf(w, ": %s\n", v.Detail)
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	return nil
}

func kindCounts(m map[string]int) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+" "+strconv.Itoa(m[k]))
	}
	return strings.Join(parts, ", ")
}
