package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"time"

	"github.com/valyala/fasthttp"
)

// runPoll is the poll mode: GET /events as fast as the connections allow (closed loop) or at
// --rate (open loop), keys rotated over every agent; with --ceiling, framed by two runs against
// a bare fasthttp server. With --pin the harness runs on one CPU and heeprd and the ceiling
// server, each a process of its own, on another.
func runPoll(ctx context.Context, o *options, stdout, stderr io.Writer) (err error) {
	pin, unpin, skipped, err := pinHarness(o, stderr)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, unpin()) }()
	t, err := openTargetOn(ctx, o, stderr, pin.serverCPU())
	if err != nil {
		return err
	}
	defer closeTarget(t, &err)
	rep, p := newReport(o, t), newProgress(stderr, o.progress)
	rep.CPUs = &cpuReport{Pinned: pin != nil}
	rep.Notes = append(rep.Notes, skipped...)
	keys, err := obtainKeys(ctx, o, t, rep, p)
	if err != nil {
		return err
	}
	auth := bearerHeaders(keys)
	rep.Settings["agents"] = fmt.Sprint(len(keys))

	var ceilings []seriesSummary
	if o.ceiling {
		before, err := ceilingRun(ctx, o, pin, auth, "ceiling-before", p, rep)
		if err != nil {
			return err
		}
		ceilings = append(ceilings, before)
	}
	rss := startRSSSampler(ctx, t.opsAddr, o.timeout, o.warmup, o.rssEvery)
	heeprd := pollRun(ctx, o.loadSpec(), t.agentAddr, o.timeout, auth, "heeprd", p)
	rep.RSS = rss.finish()
	rep.readHarnessCPUs()
	if t.srv != nil {
		rep.CPUs.Heeprd = rep.cpusOf("heeprd", t.srv.PID())
	}
	rep.Runs = append(rep.Runs, ceilings...)
	rep.Runs = append(rep.Runs, heeprd)
	rep.noteRateLimits(heeprd, len(keys))
	if o.ceiling {
		after, err := ceilingRun(ctx, o, pin, auth, "ceiling-after", p, rep)
		if err != nil {
			return err
		}
		rep.Runs = append(rep.Runs, after)
		rep.Ceiling = newCeilingResult(heeprd, append(ceilings, after)...)
	}
	ferr := t.finish(rep)
	return errors.Join(rep.write(stdout, o.asJSON), ferr)
}

// runCeiling is the ceiling mode: only the bare server, with the poll load flags.
func runCeiling(ctx context.Context, o *options, stdout, stderr io.Writer) (err error) {
	pin, unpin, skipped, err := pinHarness(o, stderr)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, unpin()) }()
	rep := newReport(o, nil)
	rep.CPUs = &cpuReport{Pinned: pin != nil}
	rep.Notes = append(rep.Notes, skipped...)
	auth := bearerHeaders([]agentKey{{ID: "agt_bench", Key: "sk_live_bench"}})
	s, err := ceilingRun(ctx, o, pin, auth, "ceiling", newProgress(stderr, o.progress), rep)
	if err != nil {
		return err
	}
	rep.Runs = append(rep.Runs, s)
	return rep.write(stdout, o.asJSON)
}

// pinHarness applies --pin: it pins this process, the load generator, to the plan's load CPU
// and returns the plan, nil without --pin, and the function that undoes the pinning. With
// fewer than 2 CPUs it does not pin and returns why, for stderr (said here) and the report.
func pinHarness(o *options, stderr io.Writer) (plan *pinPlan, unpin func() error,
	skipped []string, err error) {
	unpin = func() error { return nil }
	if !o.pin {
		return nil, unpin, nil, nil
	}
	allowed, err := allowedCPUs()
	var pp pinPlan
	if err == nil {
		pp, err = planPin(allowed)
	}
	if err != nil {
		msg := "--pin skipped: " + err.Error()
		fmt.Fprintln(stderr, "bench:", msg)
		return nil, unpin, []string{msg}, nil
	}
	if unpin, err = pinProcess(pp.load); err != nil {
		return nil, func() error { return nil }, nil, err
	}
	fmt.Fprintf(stderr, "bench: pinned the harness to CPU %d (GOMAXPROCS 1); servers go to "+
		"CPU %d\n", pp.load, pp.server)
	return &pp, unpin, nil, nil
}

// serverCPU is the CPU for the server under test, -1 when not pinning.
func (p *pinPlan) serverCPU() int {
	if p == nil {
		return -1
	}
	return p.server
}

// readHarnessCPUs records the CPUs and GOMAXPROCS of this process, the load generator.
func (r *report) readHarnessCPUs() {
	r.CPUs.Harness = mergeCPUs(r.CPUs.Harness, r.cpusOf("the harness", os.Getpid()))
	r.CPUs.HarnessProcs = runtime.GOMAXPROCS(0)
}

// cpusOf reads the CPUs process pid may run on; a failed read (say, the process has died) is
// "unknown" and a note, so that the report still comes out.
func (r *report) cpusOf(who string, pid int) string {
	cpus, err := processCPUs(pid)
	if err != nil {
		r.Notes = append(r.Notes, fmt.Sprintf("CPUs of %s unknown: %v", who, err))
		return "unknown"
	}
	return cpus
}

// bearerHeaders builds every Authorization value once, so that workers only copy bytes.
func bearerHeaders(keys []agentKey) [][]byte {
	auth := make([][]byte, len(keys))
	for i, k := range keys {
		auth[i] = []byte("Bearer " + k.Key)
	}
	return auth
}

// pollRun runs the poll load against addr and summarizes it as the series name.
func pollRun(ctx context.Context, spec loadSpec, addr string, timeout time.Duration,
	auth [][]byte, name string, p *progress) seriesSummary {
	ep := newEndpoint(addr, spec.conns, timeout)
	defer ep.hc.CloseIdleConnections()
	return loadRun(ctx, spec, ep, auth, pollShot, name, p)
}

// shotMaker builds the per-worker setup and the request of one kind of load over ep, with
// the workers rotating over the keys in auth.
type shotMaker func(ep *endpoint, auth [][]byte, conns int) (setup func(*worker), fire shot)

// loadRun runs spec with the requests of newShot over ep and summarizes it as the series
// name. It leaves ep's connections open, so that a following run reuses them.
func loadRun(ctx context.Context, spec loadSpec, ep *endpoint, auth [][]byte,
	newShot shotMaker, name string, p *progress) seriesSummary {
	s := newSeries(name)
	setup, fire := newShot(ep, auth, spec.conns)
	stop := p.start(name, spec.warmup, spec.warmup+spec.duration, s)
	runLoad(ctx, spec, s, setup, fire)
	stop()
	return s.summary()
}

// pollShot returns the setup and the request of a poll worker: worker w uses keys w, w+conns,
// w+2·conns, ... so that the workers together rotate over every key. A request allocates
// nothing of its own (BenchmarkPollShot).
func pollShot(ep *endpoint, auth [][]byte, conns int) (setup func(*worker), fire shot) {
	uri := ep.base + "/events"
	setup = func(w *worker) {
		w.req.Header.SetMethod(fasthttp.MethodGet)
		w.req.SetRequestURI(uri)
		w.next = w.id % len(auth)
	}
	fire = func(w *worker) string {
		w.req.Header.SetBytesV(fasthttp.HeaderAuthorization, w.nextKey(auth, conns))
		err := ep.hc.Do(w.req, w.resp)
		return responseClass(err, w.resp, fasthttp.StatusOK)
	}
	return setup, fire
}

// nextKey returns the worker's current Authorization value and moves on by conns keys, so
// that conns workers starting at keys 0..conns-1 together use every key.
func (w *worker) nextKey(auth [][]byte, conns int) []byte {
	key := auth[w.next]
	if w.next += conns; w.next >= len(auth) {
		w.next %= len(auth)
	}
	return key
}

// ceilingRun measures a bare server with the same load as the heeprd run: inside the harness,
// or with --pin (pin not nil) as a process of its own on the server's CPU, started for this
// run only. It records in rep.CPUs where each side ran.
func ceilingRun(ctx context.Context, o *options, pin *pinPlan, auth [][]byte, name string,
	p *progress, rep *report) (seriesSummary, error) {
	if pin == nil {
		bare, err := startBare("127.0.0.1:0")
		if err != nil {
			return seriesSummary{}, err
		}
		s := pollRun(ctx, o.loadSpec(), bare.addr(), o.timeout, auth, name, p)
		rep.readHarnessCPUs()
		rep.CPUs.Ceiling, rep.CPUs.CeilingProcess = rep.CPUs.Harness, "harness"
		return s, bare.stop()
	}
	proc, err := startCeilingProc(ctx, pin.server)
	if err != nil {
		return seriesSummary{}, err
	}
	s := pollRun(ctx, o.loadSpec(), proc.addr, o.timeout, auth, name, p)
	rep.readHarnessCPUs()
	rep.CPUs.Ceiling = mergeCPUs(rep.CPUs.Ceiling, rep.cpusOf("the ceiling server", proc.pid()))
	rep.CPUs.CeilingProcess = "own"
	return s, proc.stop()
}

// emptyEvents is what the bare server answers, like an idle heeprd poll.
var emptyEvents = []byte("{}")

// bareServer is the ceiling: plain fasthttp answering {} to every request, on a loopback port,
// in the harness or alone in a ceiling-server process.
type bareServer struct {
	ln   net.Listener
	srv  *fasthttp.Server
	done chan error
}

func startBare(addr string) (*bareServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ceiling: listen: %w", err)
	}
	b := &bareServer{ln: ln, done: make(chan error, 1), srv: &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("application/json")
			ctx.SetBody(emptyEvents)
		},
	}}
	go func() { b.done <- b.srv.Serve(ln) }()
	return b, nil
}

func (b *bareServer) addr() string { return b.ln.Addr().String() }

func (b *bareServer) stop() error {
	if err := b.srv.Shutdown(); err != nil {
		return fmt.Errorf("ceiling: shutdown: %w", err)
	}
	if err := <-b.done; err != nil {
		return fmt.Errorf("ceiling: serve: %w", err)
	}
	return nil
}
