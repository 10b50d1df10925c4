package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// errNotLoopback refuses any target that is not on this machine.
var errNotLoopback = errors.New("not a loopback address: the harness only loads servers on " +
	"this machine (127.0.0.0/8, ::1 or localhost)")

// loopbackAddr checks that raw is http://<loopback host>:<port> (nothing else: no path, no
// credentials) and returns the host:port to dial. localhost becomes 127.0.0.1, so that no name
// is ever resolved.
func loopbackAddr(flagName, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("--%s %q: %w", flagName, raw, err)
	}
	switch {
	case u.Scheme != "http":
		return "", fmt.Errorf("--%s %q: want an http:// URL", flagName, raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
		return "", fmt.Errorf("--%s %q: want only scheme, host and port", flagName, raw)
	}
	host, port := u.Hostname(), u.Port()
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("--%s %q: want a port from 1 to 65535", flagName, raw)
	}
	ip := net.ParseIP(host)
	if strings.EqualFold(host, "localhost") {
		ip = net.IPv4(127, 0, 0, 1)
	}
	if ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("--%s %q: %w", flagName, raw, errNotLoopback)
	}
	return net.JoinHostPort(ip.String(), port), nil
}

// target is the heeprd under load: one the harness spawned, or one already running on loopback.
type target struct {
	agentAddr, opsAddr string
	adminToken         string  // "" when not given (then no admin calls are possible)
	srv                *server // nil unless spawned
	fresh              bool    // spawned on a new, empty data directory
	timeout            time.Duration
}

// openTarget starts heeprd (--spawn) or checks the addresses of a running one (--target).
func openTarget(ctx context.Context, o *options, log io.Writer) (*target, error) {
	return openTargetOn(ctx, o, log, -1)
}

// openTargetOn is openTarget with a spawned heeprd pinned to cpu (under taskset) when cpu >= 0.
func openTargetOn(ctx context.Context, o *options, log io.Writer, cpu int) (*target, error) {
	if o.spawn != "" {
		srv, err := newServer(o.spawn, o.dataDir, o.fsync, o.serverArgs)
		if err != nil {
			return nil, err
		}
		srv.cpu = cpu
		if err := srv.Start(ctx); err != nil {
			return nil, errors.Join(err, srv.Close())
		}
		on := ""
		if cpu >= 0 {
			on = fmt.Sprintf(" on CPU %d", cpu)
		}
		fmt.Fprintf(log, "bench: started heeprd pid %d%s: agent API %s, ops %s, log %s\n",
			srv.PID(), on, srv.agentAddr, srv.opsAddr, srv.logPath)
		return &target{agentAddr: srv.agentAddr, opsAddr: srv.opsAddr, adminToken: srv.adminToken,
			srv: srv, fresh: o.dataDir == "", timeout: o.timeout}, nil
	}

	t := &target{timeout: o.timeout}
	var err error
	if t.agentAddr, err = loopbackAddr("target", o.target); err != nil {
		return nil, err
	}
	if t.opsAddr, err = loopbackAddr("ops", o.ops); err != nil {
		return nil, err
	}
	if o.adminTokenFile != "" {
		data, err := os.ReadFile(o.adminTokenFile)
		if err != nil {
			return nil, fmt.Errorf("admin token: %w", err)
		}
		t.adminToken = strings.TrimSpace(string(data))
	}
	return t, nil
}

// url is the agent API's base URL as shown in reports.
func (t *target) url() string { return "http://" + t.agentAddr }

// admin returns a client of the admin API with up to conns connections.
func (t *target) admin(conns int) (*adminClient, error) {
	if t.adminToken == "" {
		return nil, errors.New("this mode needs the admin API: give --admin-token-file")
	}
	return newAdminClient(newEndpoint(t.opsAddr, conns, t.timeout), t.adminToken), nil
}

// agents returns a client of the agent API with up to conns connections.
func (t *target) agents(conns int) *agentClient {
	return &agentClient{ep: newEndpoint(t.agentAddr, conns, t.timeout)}
}

// finish stops a spawned server before the report is written, and notes in rep what it logged
// at WARN or ERROR level. The deferred close then only cleans up.
func (t *target) finish(rep *report) error {
	if t.srv == nil {
		return nil
	}
	err := t.srv.Stop()
	if p := t.srv.logProblems(); p.warnings+p.errors > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("heeprd logged %d warnings and %d errors "+
			"(log kept: %s); first: %s", p.warnings, p.errors, t.srv.logPath, p.first))
	}
	return err
}

// close stops a spawned server (SIGTERM, by PID) and removes its temporary directory.
func (t *target) close() error {
	if t.srv == nil {
		return nil
	}
	return t.srv.Close()
}
