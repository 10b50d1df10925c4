// Command heeprd serves the heepr agent API: agents register with a bootstrap token, poll for
// events and deliver orders; owners manage agents and orders through the admin API on the ops
// listener. Run it with --help for every flag.
//
// Two subcommands work on data: `heeprd backup --out FILE` (from --data of a stopped server, or
// --from the ops URL of a running one) and `heeprd restore --in FILE --data DIR`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes: 0 after a clean shutdown, 1 when the server failed, 2 for bad flags.
const (
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "backup" || os.Args[1] == "restore") {
		subcommand(os.Args[1], os.Args[2:])
		return
	}
	cfg, unknown, err := parseConfig(os.Args[1:], os.Getenv, os.Environ(), os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "heeprd:", err)
		os.Exit(exitUsage)
	}
	log := newLogger(cfg, os.Stderr)
	for _, name := range unknown {
		log.Warn("environment variable matches no flag", "name", name)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("heeprd failed", "err", err)
		os.Exit(exitFailure)
	}
}

// subcommand runs `heeprd backup` or `heeprd restore` and exits.
func subcommand(name string, args []string) {
	run := runBackup
	if name == "restore" {
		run = runRestore
	}
	err := run(args, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintf(os.Stderr, "heeprd %s: %v\n", name, err)
		os.Exit(exitFailure)
	}
}

func newLogger(cfg *config, w *os.File) *slog.Logger {
	level, _ := parseLevel(cfg.LogLevel) // validated with the config
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
