package transport

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// Bounds of the answer to a connection over the limit.
const (
	refuseLinger   = time.Second // longest a refused connection is kept to deliver its answer
	refuseDrain    = 64 << 10    // most of its request read, so that closing does not reset it
	maxRefusalsNow = 256         // refusals answered at once; past that they are just closed
)

// LimitConns returns ln limited to --max-conns connections at once. A connection beyond that
// gets a 503 with the JSON envelope and Retry-After, like any other refusal, and is closed;
// fasthttp's own limit would answer in plain text. listener ("agent" or "ops") labels the
// count of refused connections.
func (s *Server) LimitConns(ln net.Listener, listener string) net.Listener {
	return &limitedListener{
		Listener: ln, max: int64(s.cfg.Concurrency),
		refusing: make(chan struct{}, maxRefusalsNow),
		refused:  func() { s.metrics.ConnectionRefused(listener) },
	}
}

type limitedListener struct {
	net.Listener
	max      int64
	open     atomic.Int64
	refusing chan struct{} // a slot per refusal being answered
	refused  func()
}

// Accept returns the next connection within the limit, answering the ones over it meanwhile.
func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &countedConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.refused()
		l.refuse(c)
	}
}

// refusedAnswer is the whole HTTP answer to a connection over the limit.
var refusedAnswer = func() []byte {
	body, err := json.Marshal(errorBody{Error: errorDetail{Code: "unavailable",
		Message: "temporarily unavailable: the server is serving as many connections as it " +
			"allows (--max-conns); retry shortly"}})
	if err != nil {
		panic("BUG: " + err.Error())
	}
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nServer: heeprd\r\n"+
		"Content-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n"+
		"Content-Length: %d\r\n\r\n%s", len(body), body)
}()

// refuse answers a connection over the limit on a goroutine of its own, so that Accept goes on,
// and then closes it. Once maxRefusalsNow are being answered, more are closed unanswered.
func (l *limitedListener) refuse(c net.Conn) {
	select {
	case l.refusing <- struct{}{}:
	default:
		_ = c.Close()
		return
	}
	go func() {
		defer func() { <-l.refusing }()
		defer c.Close()
		if c.SetDeadline(time.Now().Add(refuseLinger)) != nil {
			return
		}
		if _, err := c.Write(refusedAnswer); err != nil {
			return
		}
		if hc, ok := c.(interface{ CloseWrite() error }); ok {
			_ = hc.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(c, refuseDrain))
	}()
}

// countedConn gives its place back when it is closed, once however often Close is called.
type countedConn struct {
	net.Conn
	l      *limitedListener
	closed atomic.Bool
}

func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.open.Add(-1)
	}
	return c.Conn.Close()
}
