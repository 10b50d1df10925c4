package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/heepr/heeprd/actors/skill"
)

// envPrefix starts the environment twin of every flag: --ops-addr is HEEPR_OPS_ADDR.
const envPrefix = "HEEPR_"

// config is the whole configuration, from flags and their environment twins.
type config struct {
	Addr, OpsAddr    string
	DataDir          string
	InMemory, Fsync  bool
	AdminToken       string
	PublicURL        string
	OnlineWindow     time.Duration
	ApprovalWindow   time.Duration
	AgentRate        float64
	AgentBurst       float64
	AuthFailRate     float64
	AuthFailBurst    float64
	SnapshotInterval time.Duration
	PassivateAfter   time.Duration
	AskTimeout       time.Duration
	ShutdownTimeout  time.Duration
	ReadTimeout      time.Duration
	WriteTimeout     time.Duration
	IdleTimeout      time.Duration
	MaxConns         int
	LogLevel         string
	LogFormat        string
	Limits           skill.Limits
	MaxSkillBytes    int64
}

// parseConfig reads flags, then fills every flag not given on the command line from its
// environment twin. It returns the names of HEEPR_ variables that match no flag, to warn about.
func parseConfig(args []string, getenv func(string) string, environ []string,
	out io.Writer) (*config, []string, error) {
	c := &config{}
	fs := flag.NewFlagSet("heeprd", flag.ContinueOnError)
	fs.SetOutput(out)
	c.define(fs)
	fs.Usage = func() { usage(fs, out) }
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && !set[f.Name] && err == nil {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", envName(f.Name), v, serr)
			}
		}
	})
	if err != nil {
		return nil, nil, err
	}
	return c, unknownEnv(fs, environ), c.validate()
}

func (c *config) define(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", ":8080", "listen address of the agent API")
	fs.StringVar(&c.OpsAddr, "ops-addr", "127.0.0.1:9464",
		"listen address of the ops listener (/admin, /metrics, /healthz, /readyz)")
	fs.StringVar(&c.DataDir, "data", "./data", "data directory (badger database and admin token)")
	fs.BoolVar(&c.InMemory, "in-memory", false, "keep all state in memory only; nothing survives a restart")
	fs.BoolVar(&c.Fsync, "fsync", true,
		"sync each commit to disk before answering (false: survive kill -9, not power loss)")
	fs.StringVar(&c.AdminToken, "admin-token", "",
		"bearer token of the admin API (default: generated once and kept in the data directory)")
	fs.StringVar(&c.PublicURL, "public-url", "",
		"base URL agents use to reach the agent API, written into skill files (default: from --addr)")
	fs.DurationVar(&c.OnlineWindow, "online-window", time.Hour,
		"an agent is online while its last poll is younger than this")
	fs.DurationVar(&c.ApprovalWindow, "approval-window", 24*time.Hour,
		"how long an order of a manual-acceptance agent waits for the owner before it is denied")
	fs.Float64Var(&c.AgentRate, "agent-rate", 20,
		"per-agent request budget: sustained requests per second (0: no limit)")
	fs.Float64Var(&c.AgentBurst, "agent-burst", 100,
		"per-agent request budget: requests allowed at once")
	fs.Float64Var(&c.AuthFailRate, "auth-fail-rate", 1,
		"failed authentications allowed per second per source address, sustained (0: no limit)")
	fs.Float64Var(&c.AuthFailBurst, "auth-fail-burst", 30,
		"failed authentications allowed at once per source address before it gets 429")
	fs.DurationVar(&c.SnapshotInterval, "snapshot-interval", 10*time.Second,
		"how often last-poll times are written to disk (the only state allowed to lag)")
	fs.DurationVar(&c.PassivateAfter, "passivate-after", 10*time.Minute,
		"stop the actor of an agent sent no message for this long; its state stays in memory")
	fs.DurationVar(&c.AskTimeout, "ask-timeout", 5*time.Second,
		"how long a request waits for its agent's actor before answering 503")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second,
		"how long shutdown waits for in-flight requests")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", time.Minute, "longest time to read a request")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", time.Minute, "longest time to write a response")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 2*time.Minute, "longest keep-alive idle time")
	fs.IntVar(&c.MaxConns, "max-conns", 16384, "most connections served at once per listener")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.Int64Var(&c.Limits.MaxBodyBytes, "max-body-bytes", 34<<20,
		"largest agent API request body (above --max-file-bytes, to leave room for multipart framing)")
	fs.Int64Var(&c.Limits.MaxFileBytes, "max-file-bytes", 32<<20, "largest delivered file")
	fs.IntVar(&c.Limits.MaxFiles, "max-files", 20, "most files in one delivery")
	fs.Int64Var(&c.Limits.MaxTextBytes, "max-text-bytes", 64<<10,
		"longest text field (delivery text, messages, briefs)")
	fs.IntVar(&c.Limits.MaxURLs, "max-urls", 20, "most URLs in one delivery")
	fs.IntVar(&c.Limits.MaxURLBytes, "max-url-bytes", 2048, "longest URL in a delivery")
	fs.Int64Var(&c.MaxSkillBytes, "max-skill-bytes", 1<<20, "largest skill file an owner may upload")
}

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func usage(fs *flag.FlagSet, out io.Writer) {
	fmt.Fprintf(out, "Usage: heeprd [flags]\n       heeprd backup|restore [flags] (see their -h)\n\n"+
		"Serves the heepr agent API. "+
		"Every flag can also be set by its environment twin; a flag on the command line wins.\n\n")
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(out, "  --%s (env %s, default %q)\n      %s\n", f.Name, envName(f.Name),
			f.DefValue, f.Usage)
	})
}

func unknownEnv(fs *flag.FlagSet, environ []string) []string {
	var unknown []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) {
			continue
		}
		flagName := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, envPrefix), "_", "-"))
		if fs.Lookup(flagName) == nil {
			unknown = append(unknown, name)
		}
	}
	return unknown
}

func (c *config) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.OnlineWindow >= time.Second, "--online-window must be at least 1s")
	check(c.ApprovalWindow >= time.Second, "--approval-window must be at least 1s")
	check(c.AgentRate >= 0 && c.AgentBurst >= 1, "--agent-rate must be >= 0 and --agent-burst >= 1")
	check(c.AuthFailRate >= 0 && c.AuthFailBurst >= 1,
		"--auth-fail-rate must be >= 0 and --auth-fail-burst >= 1")
	check(c.SnapshotInterval >= 100*time.Millisecond, "--snapshot-interval must be at least 100ms")
	check(c.PassivateAfter >= time.Second, "--passivate-after must be at least 1s")
	check(c.AskTimeout > 0 && c.ShutdownTimeout > 0, "timeouts must be positive")
	check(c.ReadTimeout > 0 && c.WriteTimeout > 0 && c.IdleTimeout > 0, "timeouts must be positive")
	check(c.MaxConns > 0 && c.MaxConns <= 1<<20, "--max-conns must be 1 to 1048576")
	check(c.Limits.MaxBodyBytes > 0 && c.Limits.MaxFileBytes > 0 && c.Limits.MaxTextBytes > 0,
		"byte limits must be positive")
	check(c.Limits.MaxFiles > 0 && c.Limits.MaxURLs > 0 && c.Limits.MaxURLBytes > 0,
		"count limits must be positive")
	check(c.MaxSkillBytes > 0, "--max-skill-bytes must be positive")
	check(c.DataDir != "" || c.InMemory, "--data must name a directory")
	_, err := parseLevel(c.LogLevel)
	check(err == nil, "--log-level: %v", err)
	check(c.LogFormat == "text" || c.LogFormat == "json", "--log-format must be text or json")
	_, _, err = net.SplitHostPort(c.Addr)
	check(err == nil, "--addr %q: %v", c.Addr, err)
	_, _, err = net.SplitHostPort(c.OpsAddr)
	check(err == nil, "--ops-addr %q: %v", c.OpsAddr, err)
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

// publicURL is the agent API's base URL as agents should see it.
func (c *config) publicURL(listening net.Addr) string {
	if c.PublicURL != "" {
		return strings.TrimRight(c.PublicURL, "/")
	}
	host, port, _ := net.SplitHostPort(listening.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
