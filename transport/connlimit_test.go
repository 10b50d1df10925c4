package transport

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// TestLimitConns holds two connections open on a listener limited to two: a third gets the
// 503 envelope and is closed, and once one of the two closes, a new connection is accepted.
func TestLimitConns(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refusals atomic.Int32
	ln := &limitedListener{Listener: raw, max: 2, refusing: make(chan struct{}, 1),
		refused: func() { refusals.Add(1) }}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	next := func() net.Conn {
		select {
		case c := <-accepted:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no connection accepted")
			return nil
		}
	}

	dial()
	dial()
	first, _ := next(), next()

	over := dial()
	if _, err := over.Write([]byte("GET /events HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = over.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(over), nil)
	if err != nil {
		t.Fatalf("no answer over the limit: %v", err)
	}
	var body errorBody
	err = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != 503 || err != nil || body.Error.Code != "unavailable" ||
		resp.Header.Get("Retry-After") != "1" || !resp.Close {
		t.Errorf("over the limit: %d %v %+v (decode: %v)", resp.StatusCode, resp.Header, body,
			err)
	}
	if n := refusals.Load(); n != 1 {
		t.Errorf("%d refusals counted, want 1", n)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	first.Close() // a second Close must not give back a second place
	dial()
	next()
	dial() // over the limit again: two are open
	select {
	case c := <-accepted:
		t.Errorf("a third connection was accepted: %v", c.RemoteAddr())
	case <-time.After(200 * time.Millisecond):
	}
}
