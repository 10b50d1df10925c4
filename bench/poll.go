package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// runPoll is the poll mode: GET /events as fast as the connections allow (closed loop) or at
// --rate (open loop), keys rotated over every agent; with --ceiling, framed by two runs against
// a bare fasthttp server.
func runPoll(ctx context.Context, o *options, stdout, stderr io.Writer) (err error) {
	t, err := openTarget(ctx, o, stderr)
	if err != nil {
		return err
	}
	defer closeTarget(t, &err)
	rep, p := newReport(o, t), newProgress(stderr, o.progress)
	keys, err := obtainKeys(ctx, o, t, rep, p)
	if err != nil {
		return err
	}
	auth := bearerHeaders(keys)
	rep.Settings["agents"] = fmt.Sprint(len(keys))

	var ceilings []seriesSummary
	if o.ceiling {
		before, err := ceilingRun(ctx, o, auth, "ceiling-before", p)
		if err != nil {
			return err
		}
		ceilings = append(ceilings, before)
	}
	heeprd := pollRun(ctx, o.loadSpec(), t.agentAddr, o.timeout, auth, "heeprd", p)
	rep.Runs = append(rep.Runs, ceilings...)
	rep.Runs = append(rep.Runs, heeprd)
	rep.noteRateLimits(heeprd, len(keys))
	if o.ceiling {
		after, err := ceilingRun(ctx, o, auth, "ceiling-after", p)
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
func runCeiling(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	rep := newReport(o, nil)
	auth := bearerHeaders([]agentKey{{ID: "agt_bench", Key: "sk_live_bench"}})
	s, err := ceilingRun(ctx, o, auth, "ceiling", newProgress(stderr, o.progress))
	if err != nil {
		return err
	}
	rep.Runs = append(rep.Runs, s)
	return rep.write(stdout, o.asJSON)
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
	s := newSeries(name)
	setup, fire := pollShot(ep, auth, spec.conns)
	stop := p.start(name, spec.warmup, spec.warmup+spec.duration, s)
	runLoad(ctx, spec, s, setup, fire)
	stop()
	ep.hc.CloseIdleConnections()
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
		w.req.Header.SetBytesV(fasthttp.HeaderAuthorization, auth[w.next])
		if w.next += conns; w.next >= len(auth) {
			w.next %= len(auth)
		}
		err := ep.hc.Do(w.req, w.resp)
		return responseClass(err, w.resp, fasthttp.StatusOK)
	}
	return setup, fire
}

// ceilingRun measures a bare server with the same load as the heeprd run.
func ceilingRun(ctx context.Context, o *options, auth [][]byte, name string,
	p *progress) (seriesSummary, error) {
	bare, err := startBare()
	if err != nil {
		return seriesSummary{}, err
	}
	s := pollRun(ctx, o.loadSpec(), bare.addr(), o.timeout, auth, name, p)
	if err := bare.stop(); err != nil {
		return s, err
	}
	return s, nil
}

// emptyEvents is what the bare server answers, like an idle heeprd poll.
var emptyEvents = []byte("{}")

// bareServer is the ceiling: plain fasthttp answering {} to every request, on a loopback port
// in this process.
type bareServer struct {
	ln   net.Listener
	srv  *fasthttp.Server
	done chan error
}

func startBare() (*bareServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
