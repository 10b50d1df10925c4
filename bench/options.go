package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Bounds every run respects, whatever the flags say.
const (
	maxDuration    = time.Hour
	maxAgents      = 10_000_000
	maxConnections = 10_000
	maxRate        = 10_000_000
	defaultMaxReqs = 200_000_000
	maxRounds      = 100
)

// options holds the flags of every mode; each mode registers only the flags it reads.
type options struct {
	mode string
	// target
	spawn, dataDir, target, ops, adminTokenFile string
	serverArgs                                  []string
	fsync                                       bool
	timeout                                     time.Duration
	// agents
	agents, concurrency int
	keysFile            string
	// load
	conns                      int
	duration, warmup           time.Duration
	rate                       float64
	maxRequests                int64
	ceiling, pin               bool
	addr                       string // ceiling-server: where to listen
	cadence, drain             time.Duration
	jitter, orderRate          float64
	orderConns                 int
	asJSON, progress           bool
	hasTarget, hasKeys, isLoad bool          // which groups this mode registered
	rounds                     int           // status and restart: how many rounds
	settle                     time.Duration // restart: wait after ready before reading RSS
	rssEvery                   time.Duration // poll and mixed: RSS sampling interval; 0: off
	crash                      crashOptions
}

// parseOptions reads the flags of one mode.
func parseOptions(mode string, args []string, stderr io.Writer) (*options, error) {
	o := &options{mode: mode}
	fs := flag.NewFlagSet("bench "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.asJSON, "json", false, "print the result as JSON instead of a table")
	fs.BoolVar(&o.progress, "progress", false,
		"show the progress line even if stderr is no terminal")
	switch mode {
	case "provision":
		o.targetFlags(fs)
		o.agentFlags(fs)
	case "poll":
		o.targetFlags(fs)
		o.agentFlags(fs)
		o.loadFlags(fs, 10*time.Second, 64, true)
		fs.BoolVar(&o.ceiling, "ceiling", false,
			"measure a bare fasthttp server before and after heeprd and report ratios")
		o.pinFlag(fs)
		o.rssFlag(fs)
	case "ceiling":
		o.loadFlags(fs, 10*time.Second, 64, true)
		o.pinFlag(fs)
	case ceilingServerMode:
		fs.StringVar(&o.addr, "addr", "127.0.0.1:0", "listen here (loopback; port 0: any)")
	case "mixed":
		o.targetFlags(fs)
		o.agentFlags(fs)
		o.loadFlags(fs, time.Minute, 64, false)
		o.mixedFlags(fs)
		o.rssFlag(fs)
	case "status":
		o.targetFlags(fs)
		o.agentFlags(fs)
		o.loadFlags(fs, 10*time.Second, 256, false)
		fs.IntVar(&o.rounds, "rounds", 2, "empty-poll and status phases, this many times each")
		o.pinFlag(fs)
	case "restart":
		o.restartFlags(fs)
	case "crash":
		o.crashFlags(fs)
	default:
		return nil, fmt.Errorf("unknown mode %q (want provision, poll, mixed, status, "+
			"restart, ceiling or crash)", mode)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return o, o.validate()
}

func (o *options) targetFlags(fs *flag.FlagSet) {
	o.hasTarget = true
	fs.StringVar(&o.spawn, "spawn", "", "start this heeprd binary on free loopback ports")
	fs.StringVar(&o.dataDir, "data", "",
		"with --spawn: data directory (default: a fresh temp dir)")
	fs.BoolVar(&o.fsync, "fsync", true, "with --spawn: passed to heeprd --fsync")
	fs.Func("server-args", "with --spawn: more heeprd flags, space-separated (repeatable), "+
		"such as \"--agent-rate=0\"", o.addServerArgs)
	fs.StringVar(&o.target, "target", "", "agent API of a running heeprd, http://127.0.0.1:PORT")
	fs.StringVar(&o.ops, "ops", "", "with --target: its ops listener, http://127.0.0.1:PORT")
	fs.StringVar(&o.adminTokenFile, "admin-token-file", "",
		"with --target: file with the admin token")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "timeout of one request")
}

func (o *options) agentFlags(fs *flag.FlagSet) {
	o.hasKeys = true
	fs.IntVar(&o.agents, "agents", 1000,
		"agents to create and register when no --keys file exists")
	fs.IntVar(&o.concurrency, "concurrency", 16,
		"parallel create+register calls while provisioning")
	fs.StringVar(&o.keysFile, "keys", "",
		"file of agent_id<TAB>api_key lines: read if it exists and the server is not a fresh "+
			"--spawn, else written")
}

func (o *options) loadFlags(fs *flag.FlagSet, duration time.Duration, conns int,
	openLoop bool) {
	o.isLoad = true
	fs.IntVar(&o.conns, "connections", conns, "workers, each with its own keep-alive connection")
	fs.DurationVar(&o.duration, "duration", duration, "measured length of the run")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "load before the measured run, not counted")
	if openLoop { // mixed mode is open loop by its cadence
		fs.Float64Var(&o.rate, "rate", 0, "open loop: requests per second (0: closed loop)")
	}
	fs.Int64Var(&o.maxRequests, "requests", defaultMaxReqs, "stop after this many requests")
}

func (o *options) pinFlag(fs *flag.FlagSet) {
	fs.BoolVar(&o.pin, "pin", false, "pin the harness to one CPU and the server under test "+
		"(spawned heeprd, ceiling server as a process of its own) to another; "+
		"needs 2 CPUs, else runs unpinned with a note")
}

// rssFlag registers --rss-every: the server's RSS is sampled during the measured run, so that
// a long run shows whether memory stays flat.
func (o *options) rssFlag(fs *flag.FlagSet) {
	fs.DurationVar(&o.rssEvery, "rss-every", rssEveryDefault, "sample the server's "+
		"process_resident_memory_bytes from its /metrics this often during the measured run, "+
		"and once at its start and end (0: off)")
}

func (o *options) mixedFlags(fs *flag.FlagSet) {
	fs.DurationVar(&o.cadence, "cadence", time.Minute, "each agent polls this often")
	fs.Float64Var(&o.jitter, "jitter", 0.2, "poll intervals vary by up to this fraction, 0 to 0.9")
	fs.Float64Var(&o.orderRate, "order-rate", 10, "orders placed per second, for random agents")
	fs.IntVar(&o.orderConns, "order-connections", 4, "connections placing orders")
	fs.DurationVar(&o.drain, "drain", 0, "after the run, keep polling until every order is "+
		"delivered or this long (default: one cadence plus jitter plus 1s)")
}

// addServerArgs takes one --server-args value: heeprd flags separated by spaces.
func (o *options) addServerArgs(v string) error {
	o.serverArgs = append(o.serverArgs, strings.Fields(v)...)
	return nil
}

// flagProblems collects what is wrong with a mode's flags, so that one run names them all.
type flagProblems []error

// check records msg unless ok.
func (f *flagProblems) check(ok bool, msg string) {
	if !ok {
		*f = append(*f, errors.New(msg))
	}
}

func (f flagProblems) err() error { return errors.Join(f...) }

func (o *options) validate() error {
	var problems flagProblems
	check := problems.check
	if o.hasTarget {
		check((o.spawn == "") != (o.target == ""), "give exactly one of --spawn and --target")
		check(o.target == "" || o.ops != "", "--target needs --ops")
		for flagName, raw := range map[string]string{"target": o.target, "ops": o.ops} {
			if _, err := loopbackAddr(flagName, raw); raw != "" && err != nil {
				problems = append(problems, err)
			}
		}
		check(o.spawn != "" || (o.dataDir == "" && o.serverArgs == nil),
			"--data and --server-args work only with --spawn")
		check(!setsReserved(o.serverArgs), "--server-args must not set --addr, --ops-addr, "+
			"--data, --in-memory or --admin-token: the harness chooses them")
		check(o.timeout > 0 && o.timeout <= 10*time.Minute, "--timeout must be 1ns to 10m")
	}
	if o.hasKeys {
		check(o.agents >= 0 && o.agents <= maxAgents, "--agents must be 0 to 10000000")
		check(o.concurrency >= 1 && o.concurrency <= maxConnections,
			"--concurrency must be 1 to 10000")
		check(o.agents > 0 || o.keysFile != "", "give --agents or an existing --keys file")
	}
	if o.isLoad {
		check(o.conns >= 1 && o.conns <= maxConnections, "--connections must be 1 to 10000")
		check(o.duration > 0 && o.duration <= maxDuration,
			"--duration must be positive, at most 1h")
		check(o.warmup >= 0 && o.warmup <= maxDuration, "--warmup must be 0 to 1h")
		check(o.rate >= 0 && o.rate <= maxRate, "--rate must be 0 to 10000000")
		check(o.maxRequests > 0 && o.maxRequests <= defaultMaxReqs, "--requests must be 1 to 2e8")
	}
	if o.mode == "poll" || o.mode == "mixed" {
		check(o.rssEvery == 0 || (o.rssEvery >= 100*time.Millisecond && o.rssEvery <= maxDuration),
			"--rss-every must be 0 (off) or 100ms to 1h")
	}
	if o.mode == "status" {
		check(o.rounds >= 1 && o.rounds <= maxRounds, "--rounds must be 1 to 100")
	}
	if o.mode == "mixed" {
		check(o.cadence >= time.Millisecond && o.cadence <= maxDuration,
			"--cadence must be 1ms to 1h")
		check(o.jitter >= 0 && o.jitter <= 0.9, "--jitter must be 0 to 0.9")
		check(o.orderRate >= 0 && o.orderRate <= 100_000, "--order-rate must be 0 to 100000")
		check(o.orderConns >= 1 && o.orderConns <= 1000, "--order-connections must be 1 to 1000")
		check(o.drain >= 0 && o.drain <= maxDuration, "--drain must be 0 to 1h")
		if o.drain == 0 {
			o.drain = time.Duration(float64(o.cadence)*(1+o.jitter)) + time.Second
		}
	}
	if o.pin && o.hasTarget {
		check(o.spawn != "", "--pin needs --spawn: the harness pins only servers it starts "+
			"(start yours under taskset -c 1 and the harness under taskset -c 0 instead)")
	}
	if o.mode == ceilingServerMode {
		if err := checkServeAddr(o.addr); err != nil {
			problems = append(problems, err)
		}
	}
	if o.mode == "crash" {
		problems = append(problems, o.validateCrash())
	}
	if o.mode == "restart" {
		problems = append(problems, o.validateRestart())
	}
	return problems.err()
}

// setsReserved reports whether heeprd flags set what the harness must choose itself: its
// listeners stay on the loopback ports the harness dials.
func setsReserved(args []string) bool {
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "addr", "ops-addr", "data", "in-memory", "admin-token":
			return true
		}
	}
	return false
}

// loadSpec is the run the load flags describe.
func (o *options) loadSpec() loadSpec {
	return loadSpec{conns: o.conns, warmup: o.warmup, duration: o.duration, rate: o.rate,
		maxRequests: o.maxRequests}
}
