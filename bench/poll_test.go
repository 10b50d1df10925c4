package main

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestPollShotRotatesKeys checks that the workers together use every key.
func TestPollShotRotatesKeys(t *testing.T) {
	tests := []struct{ keys, conns int }{{10, 3}, {10, 4}, {3, 8}, {1, 1}}
	for _, tt := range tests {
		auth := make([][]byte, tt.keys)
		for i := range auth {
			auth[i] = []byte{byte(i)}
		}
		ep := newEndpoint("127.0.0.1:1", 1, time.Second)
		setup, _ := pollShot(ep, auth, tt.conns)
		used := map[int]bool{}
		for id := range tt.conns {
			w := &worker{id: id, req: &fasthttp.Request{}}
			setup(w)
			for range tt.keys {
				used[int(w.nextKey(auth, tt.conns)[0])] = true
			}
		}
		if len(used) != tt.keys {
			t.Errorf("%d keys over %d workers: used %d", tt.keys, tt.conns, len(used))
		}
	}
}

// BenchmarkPollShot measures one poll of the load generator against the bare server; it
// should report 0 allocs/op, so that the generator stays lean next to the server it loads.
func BenchmarkPollShot(b *testing.B) {
	bare, err := startBare("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer bare.stop()
	ep := newEndpoint(bare.addr(), 1, time.Second)
	setup, fire := pollShot(ep, bearerHeaders([]agentKey{{"a", "sk_a"}, {"b", "sk_b"}}), 1)
	w := &worker{req: fasthttp.AcquireRequest(), resp: fasthttp.AcquireResponse()}
	setup(w)
	b.ReportAllocs()
	for b.Loop() {
		if class := fire(w); class != "" {
			b.Fatal(class)
		}
	}
}
