package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Bounds of the spawned server's lifecycle.
const (
	readyTimeout = 2 * time.Minute // restoring many agents takes a while
	stopTimeout  = time.Minute     // heeprd's own shutdown timeout is 30s by default
)

// server is a heeprd process the harness started on loopback ports of its choosing, with a data
// directory and admin token of its own. Start, Stop, Kill9 and Restart act only on that process,
// by its PID. Restart keeps the ports, the data and the token, so clients keep working across
// it. Not safe for concurrent use.
type server struct {
	bin, dataDir, logPath string
	workDir               string // created by newServer and removed by Close; "" if none
	fsync                 bool
	extraArgs             []string // more heeprd flags, after the harness's own
	cpu                   int      // started under taskset on this CPU; -1: not pinned
	adminToken            string
	agentAddr, opsAddr    string
	readyEvery            time.Duration // /readyz poll interval: the resolution of a timed start

	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	exitErr error         // set before exited is closed
}

// newServer prepares (but does not start) a heeprd from bin. An empty dataDir means a fresh
// temporary one, removed by Close.
func newServer(bin, dataDir string, fsync bool, extraArgs []string) (*server, error) {
	workDir, err := os.MkdirTemp("", "heeprd-bench-")
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if dataDir == "" {
		dataDir = filepath.Join(workDir, "data")
	}
	secret := make([]byte, 16)
	_, _ = rand.Read(secret) // never fails on supported platforms
	return &server{bin: bin, dataDir: dataDir, logPath: filepath.Join(workDir, "heeprd.log"),
		workDir: workDir, fsync: fsync, extraArgs: extraArgs, cpu: -1,
		readyEvery: 50 * time.Millisecond,
		adminToken: "adm_bench_" + hex.EncodeToString(secret)}, nil
}

// Start starts heeprd and waits for /readyz. The first start picks free loopback ports.
func (s *server) Start(ctx context.Context) error {
	if s.running() {
		return errors.New("server: already running")
	}
	if s.agentAddr == "" {
		if err := s.pickPorts(); err != nil {
			return err
		}
	}
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("server: open log: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor

	args := append([]string{"--addr", s.agentAddr, "--ops-addr", s.opsAddr, "--data", s.dataDir,
		"--fsync=" + strconv.FormatBool(s.fsync), "--log-format", "json"}, s.extraArgs...)
	cmd, err := pinnedCommand(s.cpu, s.bin, args...)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	// The token goes through the environment twin of --admin-token, out of sight of ps.
	cmd.Env = append(environWithout("HEEPR_"), "HEEPR_ADMIN_TOKEN="+s.adminToken)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("server: start %s: %w", s.bin, err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) {
		s.exitErr = cmd.Wait()
		close(exited)
	}(s.exited)
	return s.waitReady(ctx)
}

func (s *server) waitReady(ctx context.Context) error {
	admin := newAdminClient(newEndpoint(s.opsAddr, 1, time.Second), s.adminToken)
	defer admin.ep.hc.CloseIdleConnections()
	deadline := time.Now().Add(readyTimeout)
	for {
		if admin.ready() == nil {
			return nil
		}
		select {
		case <-s.exited:
			cause := s.exitErr
			if cause == nil {
				cause = errors.New("exit status 0")
			}
			return fmt.Errorf("server: heeprd exited before ready (%w); log %s:\n%s",
				cause, s.logPath, tail(s.logPath, 10))
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("server: wait for ready: %w", ctx.Err()), s.Kill9())
		case <-time.After(s.readyEvery):
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("server: not ready after %s", readyTimeout), s.Kill9())
		}
	}
}

// Stop sends SIGTERM and waits for a clean exit; past stopTimeout it kills the process.
func (s *server) Stop() error {
	if !s.running() {
		return nil
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("server: SIGTERM pid %d: %w", s.cmd.Process.Pid, err)
	}
	select {
	case <-s.exited:
		if s.exitErr != nil {
			return fmt.Errorf("server: heeprd exited uncleanly (%w); log %s", s.exitErr, s.logPath)
		}
		return nil
	case <-time.After(stopTimeout):
		return errors.Join(fmt.Errorf("server: no exit %s after SIGTERM", stopTimeout), s.Kill9())
	}
}

// Kill9 kills the process with SIGKILL and waits until it is gone.
func (s *server) Kill9() error {
	if !s.running() {
		return nil
	}
	if err := s.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("server: SIGKILL pid %d: %w", s.cmd.Process.Pid, err)
	}
	<-s.exited
	return nil
}

// Restart stops the server cleanly and starts it again on the same ports and data.
func (s *server) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start(ctx)
}

// Close stops the server and removes the directory newServer created, except for the log when
// it holds warnings or errors: then it stays for a look (see logProblems).
func (s *server) Close() error {
	err := s.Stop()
	if p := s.logProblems(); p.warnings+p.errors > 0 {
		return errors.Join(err, os.RemoveAll(filepath.Join(s.workDir, "data")))
	}
	return errors.Join(err, os.RemoveAll(s.workDir))
}

// PID returns the process id of the running server, 0 if none.
func (s *server) PID() int {
	if !s.running() {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *server) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// pickPorts reserves two free loopback ports. They are free again once their probes close;
// the small window before heeprd binds them shows up as a failed start.
func (s *server) pickPorts() error {
	var addrs [2]string
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("server: pick port: %w", err)
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	s.agentAddr, s.opsAddr = addrs[0], addrs[1]
	return nil
}

// environWithout returns the environment without variables starting with prefix, so that the
// caller's HEEPR_* settings do not change the server under test.
func environWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}
