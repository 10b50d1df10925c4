package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/valyala/fasthttp"

	"github.com/heepr/heeprd/actors"
	"github.com/heepr/heeprd/metrics"
	"github.com/heepr/heeprd/persistence"
	"github.com/heepr/heeprd/transport"
)

// run starts heeprd, serves until ctx ends, and shuts down in reverse order: stop taking
// requests, let the actors finish, write the last heartbeats, close the store.
func run(ctx context.Context, cfg *config, log *slog.Logger) error {
	adminToken, tokenFile, err := loadAdminToken(cfg)
	if err != nil {
		return err
	}
	store, err := openStore(cfg, log)
	if err != nil {
		return err
	}
	defer closeStore(store, log)

	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return log.With("component", "actors")
	}))
	defer system.Shutdown()
	env := &actors.Env{
		Now: func() time.Time { return time.Now().UTC() }, Journal: store,
		Online: actors.NewOnlineTracker(cfg.OnlineWindow, time.Now()), OnlineWindow: cfg.OnlineWindow,
		Deadlines: actors.NewDeadlines(), ApprovalWindow: cfg.ApprovalWindow,
		Budget: actors.Budget{Rate: cfg.AgentRate, Burst: cfg.AgentBurst},
		Log:    log.With("component", "agent"),
	}
	fleet := actors.NewFleet(system, env)
	m := metrics.New(metrics.Sources{
		Online:     func() float64 { return float64(env.Online.Online()) },
		Agents:     func() float64 { return float64(fleet.Size()) },
		Registered: func() float64 { return float64(env.Registered.Load()) },
	})
	env.Observer = m

	agentLn, opsLn, err := listen(cfg)
	if err != nil {
		return err
	}
	srv := transport.New(transportConfig(cfg, adminToken, agentLn.Addr()), fleet, store, m,
		store.Healthy, log.With("component", "transport"))
	env.Rules = srv.Rules
	ops, agentAPI := srv.OpsServer(), srv.AgentServer()
	serveErr := make(chan error, 2)
	go func() { serveErr <- ops.Serve(opsLn) }()
	log.Info("ops listener up", "addr", opsLn.Addr().String(), "admin_token_file", tokenFile)

	if err := restore(store, fleet, m, env, log); err != nil {
		return errors.Join(err, ops.Shutdown())
	}
	go func() { serveErr <- agentAPI.Serve(agentLn) }()
	srv.SetReady(true)
	log.Info("ready", "agent_api", agentLn.Addr().String(), "ops", opsLn.Addr().String(),
		"public_url", cfg.publicURL(agentLn.Addr()), "agents", fleet.Size())

	loops, stopLoops := context.WithCancel(context.Background())
	go sweepOnline(loops, env.Online)
	go flushHeartbeats(loops, cfg.SnapshotInterval, fleet, store, log)
	go srv.RunMaintenance(loops)
	go env.Deadlines.Run(loops, func(agentID, orderID string) {
		fleet.Tell(agentID, &actors.CheckDeadline{OrderID: orderID})
	})

	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", "signal")
	case err := <-serveErr:
		log.Error("listener failed; shutting down", "err", err)
	}
	stopLoops()
	return shutdown(cfg, srv, agentAPI, ops, fleet, store, log)
}

func openStore(cfg *config, log *slog.Logger) (*persistence.Store, error) {
	dir := filepath.Join(cfg.DataDir, "db")
	store, err := persistence.Open(persistence.Options{
		Dir: dir, InMemory: cfg.InMemory, Fsync: cfg.Fsync, Log: log.With("component", "badger"),
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
		AuthFailures: actors.Budget{Rate: cfg.AuthFailRate, Burst: cfg.AuthFailBurst},
	}
}

// restore spawns an actor for every stored agent before the agent API opens.
func restore(store *persistence.Store, fleet *actors.Fleet, m *metrics.Metrics, env *actors.Env,
	log *slog.Logger) error {
	start := time.Now()
	snaps, err := store.Load()
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	now := env.Now()
	for _, snap := range snaps {
		if err := fleet.Spawn(snap); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		if !snap.LastPoll.IsZero() && now.Sub(snap.LastPoll) < env.OnlineWindow {
			env.Online.Heartbeat(time.Time{}, snap.LastPoll)
		}
	}
	m.OrdersRestored(snaps)
	log.Info("state restored", "agents", len(snaps), "took", time.Since(start).String())
	return nil
}

func sweepOnline(ctx context.Context, t *actors.OnlineTracker) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			t.Sweep(now)
		}
	}
}

func flushHeartbeats(ctx context.Context, every time.Duration, fleet *actors.Fleet,
	store *persistence.Store, log *slog.Logger) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if beats := fleet.TakeHeartbeats(); len(beats) > 0 {
				store.FlushHeartbeats(beats, func(err error) {
					if err != nil {
						log.Error("heartbeat snapshot failed", "agents", len(beats), "err", err)
					}
				})
			}
		}
	}
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
	store.FlushHeartbeats(fleet.TakeHeartbeats(), func(err error) { done <- err })
	if err := <-done; err != nil {
		errs = append(errs, fmt.Errorf("final heartbeat snapshot: %w", err))
	}
	log.Info("shutdown complete")
	return errors.Join(errs...)
}
