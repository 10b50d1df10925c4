package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// Exit codes: 0 after a run (whatever errors it counted), 1 when the harness failed, 2 for
// bad flags.
const (
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks a mistake on the command line.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// modes maps each mode to its run function.
var modes = map[string]func(ctx context.Context, o *options, stdout, stderr io.Writer) error{
	"provision": runProvision,
	"poll":      runPoll,
	"mixed":     runMixed,
	"status":    runStatus,
	"restart":   runRestart,
	"ceiling":   runCeiling,
	"crash":     runCrash,
	// internal: the bare server alone, started by --pin (not in the usage)
	ceilingServerMode: runCeilingServer,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var uerr *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &uerr):
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(exitUsage)
	default:
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(exitFailure)
	}
}

// run parses the mode and its flags and runs it. A cancelled ctx ends the run early; a server
// the run spawned is stopped either way.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, "usage: go run ./bench "+
			"provision|poll|mixed|status|restart|ceiling|crash [flags]\n"+
			"       go run ./bench <mode> --help lists the flags; go doc ./bench explains them")
		if len(args) == 0 {
			return &usageError{errors.New("no mode given")}
		}
		return nil
	}
	mode := modes[args[0]]
	o, err := parseOptions(args[0], args[1:], stderr)
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	if err != nil {
		return &usageError{err}
	}
	return mode(ctx, o, stdout, stderr)
}

// newReport starts the report of a run against t (nil when there is no heeprd).
func newReport(o *options, t *target) *report {
	r := &report{Mode: o.mode, Settings: o.settings()}
	if t != nil {
		r.Target = t.url()
		if t.srv != nil {
			r.Settings["server"] = strings.Join(append([]string{"spawned", o.spawn,
				"--fsync=" + strconv.FormatBool(o.fsync)}, o.serverArgs...), " ")
		}
	}
	return r
}

// settings lists the flags that shaped the run, for the report.
func (o *options) settings() map[string]string {
	s := map[string]string{}
	if o.hasKeys {
		s["agents"] = strconv.Itoa(o.agents)
	}
	if o.isLoad {
		s["connections"] = strconv.Itoa(o.conns)
		s["duration"] = o.duration.String()
		s["warmup"] = o.warmup.String()
		s["loop"] = "closed"
		if o.rate > 0 {
			s["loop"] = "open at " + strconv.FormatFloat(o.rate, 'f', -1, 64) + "/s"
		}
	}
	if o.mode == "status" {
		s["rounds"] = strconv.Itoa(o.rounds)
	}
	if o.rssEvery > 0 {
		s["rss-every"] = o.rssEvery.String()
	}
	if o.mode == "mixed" {
		s["cadence"] = o.cadence.String()
		s["jitter"] = strconv.FormatFloat(o.jitter, 'f', -1, 64)
		s["order-rate"] = strconv.FormatFloat(o.orderRate, 'f', -1, 64) + "/s"
		s["drain"] = o.drain.String()
		delete(s, "loop")
	}
	return s
}
