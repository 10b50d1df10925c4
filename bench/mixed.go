package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// mixedRun is one run of the mixed mode: agents polling on their cadence, orders placed at a
// rate, and agents delivering the orders they receive. The counters are the only shared state.
type mixedRun struct {
	o      *options
	keys   []agentKey
	auth   [][]byte
	ep     *endpoint // agent API, polls
	agents *agentClient
	admin  *adminClient

	poll, place, seen, deliver *series
	measure, end               time.Time

	placed, seenN, delivered, deliverFailed atomic.Int64
	placersDone                             atomic.Bool
}

// runMixed is the mixed mode.
func runMixed(ctx context.Context, o *options, stdout, stderr io.Writer) (err error) {
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
	admin, err := t.admin(o.orderConns)
	if err != nil {
		return err
	}
	rep.Settings["agents"] = strconv.Itoa(len(keys))

	m := &mixedRun{o: o, keys: keys, auth: bearerHeaders(keys), admin: admin,
		ep: newEndpoint(t.agentAddr, o.conns, o.timeout), agents: t.agents(o.conns),
		poll: newSeries("poll"), place: newSeries("order_place"),
		seen: newSeries("order_seen"), deliver: newSeries("order_deliver")}
	stop := p.start("mixed", o.warmup, o.warmup+o.duration, m.poll)
	rss := startRSSSampler(ctx, t.opsAddr, o.timeout, o.warmup, o.rssEvery)
	m.run(ctx)
	rep.RSS = rss.finish()
	stop()

	rep.Runs = append(rep.Runs, m.poll.summary(), m.place.summary(), m.seen.summary(),
		m.deliver.summary())
	rep.noteRateLimits(rep.Runs[len(rep.Runs)-4], len(keys))
	rep.Orders = &orderResult{Placed: m.placed.Load(), Seen: m.seenN.Load(),
		Delivered: m.delivered.Load(), Unseen: max(0, m.placed.Load()-m.seenN.Load())}
	ferr := t.finish(rep)
	return errors.Join(rep.write(stdout, o.asJSON), ferr)
}

// run starts the pollers, the placers and the scheduler and returns when all have stopped.
func (m *mixedRun) run(ctx context.Context) {
	start := time.Now()
	m.measure = start.Add(m.o.warmup)
	m.end = m.measure.Add(m.o.duration)
	seed := uint64(start.UnixNano())
	jobs := make(chan pollJob, 4*m.o.conns)

	var pollers, placers sync.WaitGroup
	for range m.o.conns {
		pr, sr, dr := m.poll.recorder(), m.seen.recorder(), m.deliver.recorder()
		pollers.Go(func() { m.poller(jobs, pr, sr, dr) })
	}
	if m.o.orderRate > 0 {
		sched := newSchedule(m.measure, m.end, m.o.orderRate, m.o.maxRequests)
		for i := range m.o.orderConns {
			rec, rng := m.place.recorder(), rand.New(rand.NewPCG(seed, uint64(i)))
			placers.Go(func() { m.placer(ctx, sched, rec, rng) })
		}
	}
	go func() {
		placers.Wait()
		m.placersDone.Store(true)
	}()

	rng := rand.New(rand.NewPCG(seed, 1<<32))
	h := newPollHeap(len(m.keys), start, m.o.cadence, rng)
	schedulePolls(ctx, h, pollPlan{cadence: m.o.cadence, jitter: m.o.jitter, end: m.end,
		stopAt: m.end.Add(m.o.drain), max: m.o.maxRequests, done: m.drained}, rng, jobs)
	pollers.Wait()
	placers.Wait()

	elapsed := time.Since(m.measure)
	m.poll.elapsed, m.seen.elapsed, m.deliver.elapsed = elapsed, elapsed, elapsed
	m.place.elapsed = m.o.duration
	if unseen := m.placed.Load() - m.seenN.Load(); unseen > 0 {
		m.seen.recorder().fail("not_seen_by_end", unseen)
	}
}

// drained reports whether every placed order has been seen and answered.
func (m *mixedRun) drained() bool {
	seen := m.seenN.Load()
	return m.placersDone.Load() && seen >= m.placed.Load() &&
		m.delivered.Load()+m.deliverFailed.Load() >= seen
}

// placer places orders at their scheduled times for random agents. The brief carries the
// scheduled time, so the agent that receives the order measures placed→seen from it.
func (m *mixedRun) placer(ctx context.Context, sched *schedule, rec *recorder, rng *rand.Rand) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	runOpen(sched, realClock{ctx: ctx, timer: timer}, func(due time.Time) {
		agent := m.keys[rng.IntN(len(m.keys))]
		_, err := m.admin.placeOrder(agent.ID, briefAt(due))
		rec.record(time.Since(due), errClass(err))
		if err == nil {
			m.placed.Add(1)
		}
	})
}

// poller polls as the agents the scheduler names, with one reused request, and delivers every
// order the harness placed.
func (m *mixedRun) poller(jobs <-chan pollJob, pr, sr, dr *recorder) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodGet)
	req.SetRequestURI(m.ep.base + "/events")
	for job := range jobs {
		req.Header.SetBytesV(fasthttp.HeaderAuthorization, m.auth[job.idx])
		err := m.ep.hc.Do(req, resp)
		seenAt := time.Now()
		class := responseClass(err, resp, fasthttp.StatusOK)
		if !job.due.Before(m.measure) {
			pr.record(seenAt.Sub(job.due), class)
		}
		if class == "" && !bytes.Equal(resp.Body(), emptyEvents) {
			m.handleEvents(resp.Body(), m.keys[job.idx].Key, seenAt, pr, sr, dr)
		}
	}
}

// polledEvents is the part of a poll answer the harness reads.
type polledEvents struct {
	Events []struct {
		Kind    string `json:"kind"`
		OrderID string `json:"order_id"`
		Order   struct {
			Brief string `json:"brief"`
		} `json:"order"`
	} `json:"events"`
}

// handleEvents records placed→seen for every new order the harness placed and delivers it,
// recording seen→delivered. Other events are left alone.
func (m *mixedRun) handleEvents(body []byte, key string, seenAt time.Time, pr, sr, dr *recorder) {
	var got polledEvents
	if err := json.Unmarshal(body, &got); err != nil {
		pr.fail("bad_events_body", 1)
		return
	}
	for _, ev := range got.Events {
		placed, ok := placedAt(ev.Order.Brief)
		if ev.Kind != "new_order" || !ok {
			continue
		}
		sr.record(seenAt.Sub(placed), "")
		m.seenN.Add(1)
		err := m.agents.deliver(ev.OrderID, key, "bench delivery")
		dr.record(time.Since(seenAt), errClass(err))
		if err != nil {
			m.deliverFailed.Add(1)
			continue
		}
		m.delivered.Add(1)
	}
}
