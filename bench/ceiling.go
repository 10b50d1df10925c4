package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ceilingServerMode is the hidden mode that runs only the bare server, as a process of its own
// (--pin measures the ceiling that way, like heeprd). It prints "listening ADDR" on stdout once
// it accepts connections and serves until SIGTERM or SIGINT.
const ceilingServerMode = "ceiling-server"

// Bounds of the ceiling server process's lifecycle.
const (
	ceilingReadyTimeout = 30 * time.Second
	ceilingStopTimeout  = 10 * time.Second
)

// runCeilingServer is the ceiling-server mode.
func runCeilingServer(ctx context.Context, o *options, stdout, _ io.Writer) error {
	bare, err := startBare(o.addr)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "listening %s\n", bare.addr()); err != nil {
		return errors.Join(fmt.Errorf("ceiling: %w", err), bare.stop())
	}
	<-ctx.Done()
	return bare.stop()
}

// checkServeAddr accepts host:port with a loopback IP literal and a port from 0 (any free
// one) to 65535.
func checkServeAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--addr %q: %w", addr, errNotLoopback)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 ||
		strings.TrimLeft(port, "0123456789") != "" {
		return fmt.Errorf("--addr %q: want a port from 0 to 65535", addr)
	}
	return nil
}

// ceilingProc is the bare server started as a process of its own: this binary in the
// ceiling-server mode, on a free loopback port, pinned to a CPU when cpu >= 0. It is stopped
// with SIGTERM, by PID.
type ceilingProc struct {
	cmd     *exec.Cmd
	addr    string
	stderr  bytes.Buffer  // read only once exited is closed
	exited  chan struct{} // closed when cmd has been waited for
	exitErr error         // set before exited is closed
}

// startCeilingProc starts the ceiling server and waits until it listens.
func startCeilingProc(ctx context.Context, cpu int) (*ceilingProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("ceiling: own binary: %w", err)
	}
	cmd, err := pinnedCommand(cpu, self, ceilingServerMode, "--addr", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	out, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("ceiling: %w", err)
	}
	c := &ceilingProc{cmd: cmd, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr, cmd.SysProcAttr = w, &c.stderr, childAttrs()
	err = cmd.Start()
	w.Close() // the child has its own copy
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("ceiling: start %s: %w", self, err)
	}
	go func() {
		c.exitErr = cmd.Wait()
		close(c.exited)
	}()

	lines := make(chan string, 1)
	go func() { // the first line, then whatever else until the child closes its stdout
		defer out.Close()
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case line := <-lines:
		addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
		if ok && checkServeAddr(addr) == nil {
			c.addr = addr
			return c, nil
		}
		return nil, errors.Join(fmt.Errorf("ceiling: server said %q, want \"listening ADDR\"",
			line), c.kill())
	case <-ctx.Done():
		return nil, errors.Join(fmt.Errorf("ceiling: wait for listening: %w", ctx.Err()), c.kill())
	case <-time.After(ceilingReadyTimeout):
		return nil, errors.Join(fmt.Errorf("ceiling: not listening after %s",
			ceilingReadyTimeout), c.kill())
	}
}

// pid is the process id of the ceiling server.
func (c *ceilingProc) pid() int { return c.cmd.Process.Pid }

// stop sends SIGTERM and waits for a clean exit; past ceilingStopTimeout it kills the process.
func (c *ceilingProc) stop() error {
	select {
	case <-c.exited:
		return c.exitError()
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil &&
		!errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("ceiling: SIGTERM pid %d: %w", c.pid(), err)
	}
	select {
	case <-c.exited:
		return c.exitError()
	case <-time.After(ceilingStopTimeout):
		return errors.Join(fmt.Errorf("ceiling: no exit %s after SIGTERM", ceilingStopTimeout),
			c.kill())
	}
}

// kill ends the process with SIGKILL and waits until it is gone.
func (c *ceilingProc) kill() error {
	if err := c.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("ceiling: SIGKILL pid %d: %w", c.pid(), err)
	}
	<-c.exited
	return nil
}

func (c *ceilingProc) exitError() error {
	if c.exitErr == nil {
		return nil
	}
	return fmt.Errorf("ceiling: server pid %d exited uncleanly (%w): %s", c.pid(), c.exitErr,
		strings.TrimSpace(c.stderr.String()))
}
