package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/valyala/fasthttp"
)

// statusTarget is the ratio of status throughput to empty-poll throughput the status mode
// checks for: synced state changes from many agents should reach at least half the rate of
// the cheapest request.
const statusTarget = 0.5

// progressBody is what a status-phase request sends for an agent: a progress update on the
// order the harness placed for it. Each update stores the order anew with its progress and
// time, a write heeprd syncs to disk before answering.
func progressBody(orderID string) []byte {
	return fmt.Appendf(nil, `{"order_id":%q,"progress":50,"message":"working on it"}`, orderID)
}

// placeOrders places one order for each agent, from a few connections at once, and returns
// the progress body of each agent, in the order of keys.
func placeOrders(ctx context.Context, admin *adminClient, keys []agentKey) ([][]byte, error) {
	const placers = 16
	bodies := make([][]byte, len(keys))
	errs := make([]error, placers)
	var wg sync.WaitGroup
	for w := range placers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(keys) && ctx.Err() == nil; i += placers {
				id, err := admin.placeOrder(keys[i].ID, "status progress")
				if err != nil {
					errs[w] = fmt.Errorf("agent %s: %w", keys[i].ID, err)
					return
				}
				bodies[i] = progressBody(id)
			}
		}()
	}
	wg.Wait()
	return bodies, errors.Join(append(errs, ctx.Err())...)
}

// runStatus is the status mode: --rounds times an empty-poll phase (GET /events) and then a
// status phase (POST /status), both closed loop over the same keep-alive connections and
// agents, so that both see the same machine; it reports each phase and their throughput ratio.
// --pin puts the harness and heeprd on CPUs of their own, as in the poll mode.
func runStatus(ctx context.Context, o *options, stdout, stderr io.Writer) (err error) {
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
	rep.Settings["agents"] = strconv.Itoa(len(keys))
	if len(keys) < o.conns {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d agents for %d connections: several "+
			"workers write as the same agent, whose writes queue behind each other; use "+
			"--agents of at least --connections to measure writes from many agents",
			len(keys), o.conns))
	}
	admin, err := t.admin(16)
	if err != nil {
		return err
	}
	bodies, err := placeOrders(ctx, admin, keys)
	if err != nil {
		return fmt.Errorf("status: an order for each agent: %w", err)
	}
	polls, statuses := statusRounds(ctx, o, t, bearerHeaders(keys), bodies, p)
	for i := range polls {
		rep.Runs = append(rep.Runs, polls[i], statuses[i])
		rep.noteRateLimits(polls[i], len(keys))
		rep.noteRateLimits(statuses[i], len(keys))
	}
	rep.Status = newStatusResult(polls, statuses)
	ferr := t.finish(rep)
	return errors.Join(rep.write(stdout, o.asJSON), ferr)
}

// statusRounds runs the phases: poll-1, status-1, poll-2, ... over one endpoint, whose
// keep-alive connections every phase reuses. A cancelled ctx ends the rounds early; only
// rounds with both phases are returned.
func statusRounds(ctx context.Context, o *options, t *target, auth, bodies [][]byte,
	p *progress) (polls, statuses []seriesSummary) {
	ep := newEndpoint(t.agentAddr, o.conns, o.timeout)
	defer ep.hc.CloseIdleConnections()
	spec := o.loadSpec()
	for round := 1; round <= o.rounds && ctx.Err() == nil; round++ {
		n := strconv.Itoa(round)
		poll := loadRun(ctx, spec, ep, auth, pollShot, "poll-"+n, p)
		status := loadRun(ctx, spec, ep, auth, statusShot(bodies), "status-"+n, p)
		if ctx.Err() != nil {
			break
		}
		polls, statuses = append(polls, poll), append(statuses, status)
	}
	return polls, statuses
}

// statusShot returns a shot maker for status workers: POST /status with the progress body of
// the agent whose key is used (bodies[i] goes with auth[i]), keys rotated as in pollShot.
func statusShot(bodies [][]byte) func(*endpoint, [][]byte, int) (func(*worker), shot) {
	return func(ep *endpoint, auth [][]byte, conns int) (setup func(*worker), fire shot) {
		uri := ep.base + "/status"
		setup = func(w *worker) {
			w.req.Header.SetMethod(fasthttp.MethodPost)
			w.req.SetRequestURI(uri)
			w.req.Header.SetContentType("application/json")
			w.next = w.id % len(auth)
		}
		fire = func(w *worker) string {
			i := w.next
			w.req.Header.SetBytesV(fasthttp.HeaderAuthorization, w.nextKey(auth, conns))
			w.req.SetBodyRaw(bodies[i])
			err := ep.hc.Do(w.req, w.resp)
			return responseClass(err, w.resp, fasthttp.StatusOK)
		}
		return setup, fire
	}
}

// statusResult compares the status phases with the empty-poll phases, round by round.
type statusResult struct {
	Rounds    []statusRound `json:"rounds"`
	MeanRatio float64       `json:"mean_ratio"`
	Target    float64       `json:"target_ratio"`
	TargetMet bool          `json:"target_met"`
}

// statusRound is one round's successful requests per second of each phase and their ratio.
type statusRound struct {
	PollRate   float64 `json:"poll_ok_per_second"`
	StatusRate float64 `json:"status_ok_per_second"`
	Ratio      float64 `json:"ratio"`
}

// newStatusResult pairs polls[i] with statuses[i]. Rates count successful requests only: a
// failed status request synced nothing, and a fast error must not pass for throughput.
func newStatusResult(polls, statuses []seriesSummary) *statusResult {
	r := &statusResult{Rounds: []statusRound{}, Target: statusTarget}
	for i := range min(len(polls), len(statuses)) {
		pr, sr := okRate(polls[i]), okRate(statuses[i])
		r.Rounds = append(r.Rounds, statusRound{PollRate: pr, StatusRate: sr,
			Ratio: ratio(sr, pr)})
		r.MeanRatio += ratio(sr, pr)
	}
	if n := len(r.Rounds); n > 0 {
		r.MeanRatio /= float64(n)
	}
	r.TargetMet = len(r.Rounds) > 0 && r.MeanRatio >= statusTarget
	return r
}

// okRate is the series' successful requests per second.
func okRate(s seriesSummary) float64 {
	return ratio(float64(max(0, s.Requests-s.Errors)), s.Seconds)
}

// writeTable prints the ratio of each round and their mean.
func (r *statusResult) writeTable(w io.Writer) {
	parts := make([]string, len(r.Rounds))
	for i, rd := range r.Rounds {
		parts[i] = fmt.Sprintf("round %d %.2f (%.0f/%.0f ok/s)", i+1, rd.Ratio, rd.StatusRate,
			rd.PollRate)
	}
	verdict := "not met"
	if r.TargetMet {
		verdict = "met"
	}
	fmt.Fprintf(w, "status / empty poll throughput: %.2f, mean of %d rounds; target >= %.2f: "+
		"%s\n", r.MeanRatio, len(r.Rounds), r.Target, verdict)
	if len(parts) > 0 {
		fmt.Fprintln(w, "  "+strings.Join(parts, "; "))
	}
}
