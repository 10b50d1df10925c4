package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/valyala/fasthttp"

	"github.com/heepr/heeprd/actors"
	"github.com/heepr/heeprd/actors/skill"
	"github.com/heepr/heeprd/metrics"
	"github.com/heepr/heeprd/persistence"
	"github.com/heepr/heeprd/transport"
)

// daemon is one running heeprd: its parts in the order they are built and torn down.
type daemon struct {
	cfg     *config
	log     *slog.Logger
	store   *persistence.Store
	system  *actor.ActorSystem
	env     *actors.Env
	fleet   *actors.Fleet
	metrics *metrics.Metrics
	srv     *transport.Server

	beats []actors.Heartbeat // reused from flush to flush; only the snapshot loop touches it
}

// run starts heeprd, serves until ctx ends, and shuts down in reverse order: stop taking
// requests, let the actors finish, write the last heartbeats, close the store.
func run(ctx context.Context, cfg *config, log *slog.Logger) error {
	adminToken, tokenFile, removeToken, err := loadAdminToken(cfg)
	if err != nil {
		return err
	}
	defer removeToken()
	d := &daemon{cfg: cfg, log: log}
	d.build()
	if d.store, err = openStore(cfg, d.metrics, log); err != nil {
		return err
	}
	defer closeStore(d.store, log)
	defer d.system.Shutdown()
	d.env.Journal = d.store

	agentLn, opsLn, err := listen(cfg)
	if err != nil {
		return err
	}
	d.srv = transport.New(transportConfig(cfg, adminToken, agentLn.Addr()), d.fleet, d.store,
		d.metrics, d.store.Healthy, log.With("component", "transport"))
	d.env.Rules = d.srv.Rules
	ops, agentAPI := d.srv.OpsServer(), d.srv.AgentServer()
	serveErr := make(chan error, 2)
	go func() { serveErr <- ops.Serve(d.srv.LimitConns(opsLn, "ops")) }()
	log.Info("ops listener up", "addr", opsLn.Addr().String(), "admin_token_file", tokenFile)

	if err := restore(d.store, d.fleet, d.metrics, d.env, log); err != nil {
		return errors.Join(err, ops.Shutdown())
	}
	go func() { serveErr <- agentAPI.Serve(d.srv.LimitConns(agentLn, "agent")) }()
	log.Info("ready", "agent_api", agentLn.Addr().String(), "ops", opsLn.Addr().String(),
		"public_url", cfg.publicURL(agentLn.Addr()), "agents", d.fleet.Size())
	d.srv.SetReady(true) // after the log line, so whoever sees /readyz 200 finds it logged
	// Decoding the store leaves garbage about as large as the state it built (at a million
	// agents, hundreds of MB) that the runtime would keep until the heap next reached its
	// goal. Collect it and hand the pages back now, off the ready path.
	go debug.FreeOSMemory()

	loops, cancelLoops := context.WithCancel(context.Background())
	waitLoops := d.startLoops(loops)
	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", "signal")
	case err := <-serveErr:
		log.Error("listener failed; shutting down", "err", err)
	}
	// The loops are waited for: a heartbeat flush still reading the fleet while shutdown
	// empties it would take a checkpoint of part of the fleet for the whole.
	cancelLoops()
	waitLoops()
	return shutdown(cfg, d.srv, agentAPI, ops, d.fleet, d.store, log)
}

// build creates the actor system, the agents' shared environment, the fleet and the metrics.
// The store is attached once open: the metrics must exist first to observe its commits.
func (d *daemon) build() {
	d.system = actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return slog.New(quietInfo{d.log.Handler()}).With("component", "actors")
		}),
		actor.WithDeadLetterRequestLogging(false),
	)
	d.env = &actors.Env{
		Now:    func() time.Time { return time.Now().UTC() },
		Online: actors.NewOnlineTracker(d.cfg.OnlineWindow, time.Now()), OnlineWindow: d.cfg.OnlineWindow,
		Deadlines: actors.NewDeadlines(), ApprovalWindow: d.cfg.ApprovalWindow,
		Budget:    actors.Budget{Rate: d.cfg.AgentRate, Burst: d.cfg.AgentBurst},
		PollLease: 3 * d.cfg.AskTimeout,
		Log:       d.log.With("component", "agent"),
	}
	d.fleet = actors.NewFleet(d.system, d.env)
	d.metrics = metrics.New(metrics.Sources{
		Online:     func() float64 { return float64(d.env.Online.Online()) },
		Agents:     func() float64 { return float64(d.fleet.Size()) },
		Actors:     func() float64 { return float64(d.fleet.Active()) },
		Registered: func() float64 { return float64(d.env.Registered.Load()) },
		Healthy:    func() bool { return d.store != nil && d.store.Healthy() },
	})
	d.env.Observer = d.metrics
	d.system.EventStream.Subscribe(func(e any) {
		if _, ok := e.(*actor.DeadLetterEvent); ok {
			d.metrics.DeadLetter()
		}
	})
}

// startLoops starts the background work: the online sweep, heartbeat snapshots, the
// failed-authentication bookkeeping and order deadlines. All stop when ctx ends; the function
// returned waits until they have.
func (d *daemon) startLoops(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	wg.Go(func() { every(ctx, time.Second, d.env.Online.Sweep) })
	wg.Go(func() { every(ctx, d.cfg.SnapshotInterval/2, d.flushHeartbeats) })
	wg.Go(func() {
		every(ctx, passivateSweep(d.cfg.PassivateAfter), func(now time.Time) {
			d.fleet.Passivate(now, d.cfg.PassivateAfter)
		})
	})
	wg.Go(func() { d.srv.RunMaintenance(ctx) })
	wg.Go(func() {
		d.env.Deadlines.Run(ctx, func(agentID, orderID string) {
			if !d.fleet.Tell(agentID, &actors.CheckDeadline{OrderID: orderID}) {
				// The agent's actor could not be started; the deadline must not be forgotten.
				d.env.Deadlines.Schedule(time.Now().Add(deadlineRetry), agentID, orderID)
			}
		})
	})
	return wg.Wait
}

func openStore(cfg *config, obs persistence.Observer, log *slog.Logger) (*persistence.Store, error) {
	dir := filepath.Join(cfg.DataDir, "db")
	store, err := persistence.Open(persistence.Options{
		Dir: dir, InMemory: cfg.InMemory, Fsync: cfg.Fsync, Observer: obs,
		Log: log.With("component", "badger"),
	})
	if err != nil {
		return nil, err
	}
	if cfg.InMemory {
		log.Info("store opened in memory; nothing will survive a restart")
	} else {
		log.Info("store opened", "dir", dir, "fsync", cfg.Fsync)
	}
	return store, nil
}

func closeStore(store *persistence.Store, log *slog.Logger) {
	if err := store.Close(); err != nil {
		log.Error("close store", "err", err)
	}
}

func listen(cfg *config) (agentLn, opsLn net.Listener, err error) {
	agentLn, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on --addr %s: %w", cfg.Addr, err)
	}
	opsLn, err = net.Listen("tcp", cfg.OpsAddr)
	if err != nil {
		agentLn.Close()
		return nil, nil, fmt.Errorf("listen on --ops-addr %s: %w", cfg.OpsAddr, err)
	}
	return agentLn, opsLn, nil
}

func transportConfig(cfg *config, adminToken string, agentAddr net.Addr) transport.Config {
	return transport.Config{
		AskTimeout: cfg.AskTimeout, Limits: cfg.Limits, MaxSkillBytes: cfg.MaxSkillBytes,
		MaxBootstrapTTL: 7 * 24 * time.Hour, BaseURL: cfg.publicURL(agentAddr),
		AdminToken: adminToken, ReadTimeout: cfg.ReadTimeout, WriteTimeout: cfg.WriteTimeout,
		IdleTimeout: cfg.IdleTimeout, Concurrency: cfg.MaxConns,
		AgentBudget:  skill.Budget{Rate: cfg.AgentRate, Burst: cfg.AgentBurst},
		AuthFailures: actors.Budget{Rate: cfg.AuthFailRate, Burst: cfg.AuthFailBurst},
	}
}

// restoreGCPercent is the garbage collector's GOGC while restore runs.
const restoreGCPercent = 400

// restore adds every stored agent to the fleet, passive, before the agent API opens.
func restore(store *persistence.Store, fleet *actors.Fleet, m *metrics.Metrics, env *actors.Env,
	log *slog.Logger) error {
	start := time.Now()
	// Restore builds the fleet from nothing, and every collection while it grows marks the
	// young state again: at a million agents, eight collections in under two seconds, about a
	// tenth of the restore. Collecting less often until the fleet is built halves them, for a
	// peak heap about a tenth higher; run frees the garbage once ready.
	defer debug.SetGCPercent(debug.SetGCPercent(restoreGCPercent))
	snaps, err := store.Load()
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fleet.Grow(len(snaps))
	if err := addAll(fleet, env, snaps); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	m.OrdersRestored(snaps)
	log.Info("state restored", "agents", len(snaps), "took", time.Since(start).String())
	return nil
}

// addAll adds restored agents to the fleet, one slice of them per CPU: at a million agents the
// adds, an allocation and a map insert each, took as long as reading the agents from disk.
func addAll(fleet *actors.Fleet, env *actors.Env, snaps []*actors.Snapshot) error {
	workers := runtime.GOMAXPROCS(0)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		part := snaps[w*len(snaps)/workers : (w+1)*len(snaps)/workers]
		wg.Go(func() {
			for _, snap := range part {
				if err := fleet.Add(snap); err != nil {
					errs[w] = err
					return
				}
				if !snap.LastPoll.IsZero() { // the tracker ignores a poll whose window ended
					env.Online.Heartbeat(time.Time{}, snap.LastPoll)
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// deadlineRetry is how soon a deadline check that could not reach its agent is tried again.
const deadlineRetry = 5 * time.Second

// passivateSweep is how often idle actors are looked for: a tenth of the idle time, within 1 s
// to 30 s. An agent's last message is stamped with the clock of the sweep before it, so its
// actor stops within a sweep (and a second) of the idle time after that message.
func passivateSweep(idle time.Duration) time.Duration {
	return min(max(idle/10, time.Second), 30*time.Second)
}

// every calls f once per period until ctx ends.
func every(ctx context.Context, period time.Duration, f func(now time.Time)) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			f(now)
		}
	}
}

// flushHeartbeats writes the poll times that changed since the last flush, without waiting. It
// runs every half snapshot interval and spreads its writes over the half interval that follows,
// so a poll time reaches the disk within one interval of the poll.
func (d *daemon) flushHeartbeats(time.Time) {
	d.beats = d.fleet.TakeHeartbeats(d.beats[:0]) // FlushHeartbeats keeps none of it
	agents := len(d.beats)
	if agents == 0 {
		return
	}
	d.store.FlushHeartbeats(d.beats, d.fleet, d.cfg.SnapshotInterval/2,
		func(err error) {
			if err != nil {
				d.log.Error("heartbeat snapshot failed", "agents", agents, "err", err)
			}
		})
}

// shutdown stops the listeners, lets every actor finish what it was sent, and writes the last
// heartbeats; the deferred closes in run then close the store and the actor system.
func shutdown(cfg *config, srv *transport.Server, agentAPI, ops *fasthttp.Server,
	fleet *actors.Fleet, store *persistence.Store, log *slog.Logger) error {
	srv.SetReady(false)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := agentAPI.ShutdownWithContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop agent API: %w", err))
	}
	if err := ops.ShutdownWithContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop ops listener: %w", err))
	}
	if err := fleet.StopAll(cfg.ShutdownTimeout); err != nil {
		errs = append(errs, err)
	}

	done := make(chan error, 1)
	store.FlushHeartbeats(fleet.TakeHeartbeats(nil), nil, 0, func(err error) { done <- err })
	if err := <-done; err != nil {
		errs = append(errs, fmt.Errorf("final heartbeat snapshot: %w", err))
	}
	log.Info("shutdown complete")
	return errors.Join(errs...)
}
