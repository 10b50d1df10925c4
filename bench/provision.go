package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// runProvision is the provision mode: create and register agents, write the keys file.
func runProvision(ctx context.Context, o *options, stdout, stderr io.Writer) (err error) {
	t, err := openTarget(ctx, o, stderr)
	if err != nil {
		return err
	}
	defer closeTarget(t, &err)

	rep := newReport(o, t)
	if _, err = provisionInto(ctx, o, t, rep, newProgress(stderr, o.progress)); err != nil {
		return err
	}
	ferr := t.finish(rep)
	return errors.Join(rep.write(stdout, o.asJSON), ferr)
}

// obtainKeys reads --keys when it exists and belongs to this target (not a freshly spawned
// server), and otherwise provisions --agents agents, writing --keys if given.
func obtainKeys(ctx context.Context, o *options, t *target, rep *report,
	p *progress) ([]agentKey, error) {
	if o.keysFile != "" && !t.fresh {
		keys, err := readKeys(o.keysFile)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return keys, err
		}
	}
	if o.agents == 0 {
		return nil, errors.New("no keys: give --agents or an existing --keys file")
	}
	return provisionInto(ctx, o, t, rep, p)
}

// provisionInto provisions o.agents agents, adds the create and register series to rep, and
// writes --keys. It fails if no agent at all could be registered.
func provisionInto(ctx context.Context, o *options, t *target, rep *report,
	p *progress) ([]agentKey, error) {
	admin, err := t.admin(o.concurrency)
	if err != nil {
		return nil, err
	}
	create, register := newSeries("create"), newSeries("register")
	start := time.Now()
	stop := p.start("provision", 0, 0, register)
	keys := provision(ctx, admin, t.agents(o.concurrency), o.agents, o.concurrency,
		create, register)
	stop()
	elapsed := time.Since(start)
	create.elapsed, register.elapsed = elapsed, elapsed

	rep.Runs = append(rep.Runs, create.summary(), register.summary())
	rep.Provision = &provisionResult{Agents: len(keys), Seconds: elapsed.Seconds(),
		Rate: ratio(float64(len(keys)), elapsed.Seconds())}
	if len(keys) == 0 {
		return nil, fmt.Errorf("provision: no agent registered (%s)", firstError(rep.Runs))
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("provision: %w", ctx.Err())
	}
	if o.keysFile != "" {
		if err := writeKeys(o.keysFile, keys); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// provision creates and registers n agents with conc workers and returns the keys of those
// that succeeded, in creation order.
func provision(ctx context.Context, admin *adminClient, agents *agentClient, n, conc int,
	create, register *series) []agentKey {
	keys := make([]agentKey, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(conc, n) {
		cr, rr := create.recorder(), register.recorder()
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				keys[i] = provisionOne(admin, agents, i, cr, rr)
			}
		})
	}
	wg.Wait()

	ok := keys[:0]
	for _, k := range keys {
		if k.Key != "" {
			ok = append(ok, k)
		}
	}
	return ok
}

func provisionOne(admin *adminClient, agents *agentClient, i int, cr, rr *recorder) agentKey {
	began := time.Now()
	id, token, err := admin.createAgent("bench-" + strconv.Itoa(i))
	cr.record(time.Since(began), errClass(err))
	if err != nil {
		return agentKey{}
	}
	began = time.Now()
	key, err := agents.register(token)
	rr.record(time.Since(began), errClass(err))
	if err != nil {
		return agentKey{}
	}
	return agentKey{ID: id, Key: key}
}

// firstError names one error class of the runs, for messages.
func firstError(runs []seriesSummary) string {
	for _, s := range runs {
		for class := range s.ErrorsBy {
			return s.Name + ": " + class
		}
	}
	return "no error recorded"
}

// closeTarget stops a spawned server and adds its error to *err.
func closeTarget(t *target, err *error) {
	if cerr := t.close(); cerr != nil {
		*err = errors.Join(*err, cerr)
	}
}
