package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progressEvery is how often the progress line is refreshed.
const progressEvery = 500 * time.Millisecond

// progress prints a status line for a running series on stderr: rewritten in place on a terminal,
// one line per refresh otherwise (when --progress forces it).
type progress struct {
	w        io.Writer
	terminal bool
}

// newProgress returns nil (no output) unless w is a terminal or force is set.
func newProgress(w io.Writer, force bool) *progress {
	term := isTerminal(w)
	if !term && !force {
		return nil
	}
	return &progress{w: w, terminal: term}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// start shows s until the returned stop is called; warmup is the uncounted start of the run and
// total its planned length, 0 if unknown. A nil progress shows nothing.
func (p *progress) start(label string, warmup, total time.Duration, s *series) (stop func()) {
	if p == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.loop(label, warmup, total, s, done)
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

func (p *progress) loop(label string, warmup, total time.Duration, s *series,
	done <-chan struct{}) {
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	began, last := time.Now(), int64(0)
	for {
		select {
		case <-done:
			if p.terminal {
				fmt.Fprint(p.w, "\r\x1b[K")
			}
			return
		case now := <-tick.C:
			if now.Sub(began) < warmup {
				p.line(fmt.Sprintf("%-14s %6.1fs%s  warming up", label, now.Sub(began).Seconds(),
					of(total)))
				continue
			}
			n, failed := s.counts()
			rate := float64(n-last) / progressEvery.Seconds()
			last = n
			p.line(fmt.Sprintf("%-14s %6.1fs%s  %10d done  %9.0f/s  %d errors", label,
				now.Sub(began).Seconds(), of(total), n, rate, failed))
		}
	}
}

func (p *progress) line(text string) {
	if p.terminal {
		fmt.Fprint(p.w, "\r\x1b[K"+text)
		return
	}
	fmt.Fprintln(p.w, text)
}

func of(total time.Duration) string {
	if total <= 0 {
		return ""
	}
	return fmt.Sprintf("/%.0fs", total.Seconds())
}
