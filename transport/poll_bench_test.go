package transport

import (
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/valyala/fasthttp"

	"github.com/heepr/heeprd/actors"
	"github.com/heepr/heeprd/metrics"
)

// nopJournal acknowledges every change at once; the poll path writes nothing anyway.
type nopJournal struct{}

func (nopJournal) Append(_ []actors.Change, done func(error)) { go done(nil) }

type nopStorage struct{ Storage }

// benchServer builds a server with one registered agent and returns its routed handler and the
// agent's key.
func benchServer(b *testing.B) (fasthttp.RequestHandler, string) {
	b.Helper()
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	env := &actors.Env{
		Now: time.Now, Journal: nopJournal{}, OnlineWindow: time.Hour,
		Online: actors.NewOnlineTracker(time.Hour, time.Now()),
	}
	fleet := actors.NewFleet(system, env)
	m := metrics.New(metrics.Sources{
		Online: func() float64 { return 0 }, Agents: func() float64 { return 0 },
		Registered: func() float64 { return 0 },
	})
	env.Observer = m
	srv := New(Config{AskTimeout: 5 * time.Second}, fleet, nopStorage{}, m,
		func() bool { return true }, slog.New(slog.DiscardHandler))
	b.Cleanup(func() { _ = fleet.StopAll(time.Second); system.Shutdown() })

	created, err := fleet.CreateAgent(actors.Settings{Name: "bench", PollMinutes: 20},
		time.Hour, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	_, secret, _ := actors.ParseCredential(actors.BootstrapPrefix, created.BootstrapToken)
	v, err := fleet.Ask(created.AgentID, &actors.Register{Bootstrap: actors.HashSecret(secret)},
		time.Second)
	if err != nil {
		b.Fatal(err)
	}
	return srv.agentRouter(), v.(*actors.RegisterResult).APIKey
}

// BenchmarkEmptyPoll runs GET /events through the router, key check, actor round trip and
// metrics, as the agent listener does, without the network.
func BenchmarkEmptyPoll(b *testing.B) {
	handler, key := benchServer(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(fasthttp.MethodGet)
		ctx.Request.SetRequestURI("/events")
		ctx.Request.Header.Set(fasthttp.HeaderAuthorization, "Bearer "+key)
		for pb.Next() {
			ctx.Response.Reset()
			handler(&ctx)
			if ctx.Response.StatusCode() != fasthttp.StatusOK {
				b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
			}
		}
	})
}

// BenchmarkKeyCheck parses a Bearer header into its agent id and the hash of its secret: the
// part of the key check done before the agent's actor compares hashes.
func BenchmarkKeyCheck(b *testing.B) {
	var ctx fasthttp.RequestCtx
	key := actors.FormatCredential(actors.KeyPrefix, actors.NewAgentID(), actors.NewSecret())
	ctx.Request.Header.Set(fasthttp.HeaderAuthorization, "Bearer "+key)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := bearerView(&ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeEvents encodes a poll answer of three new_order events with the rules attached.
func BenchmarkEncodeEvents(b *testing.B) {
	order := actors.OrderView{ID: "ord_abcdefghijklmnop_1", Gig: "logo", Scope: "one logo",
		Tier: "basic", Price: 40, Deadline: time.Unix(1893456000, 0).UTC(), Brief: "a cat",
		State: actors.InProgress, RevisionsAllowed: 2}
	res := &actors.PollResult{Rules: string(make([]byte, 1700))}
	for i := range 3 {
		res.Events = append(res.Events, actors.Event{ID: "evt_abcdefghijklmnop_1",
			Seq: uint64(i + 1), Kind: actors.NewOrder, CreatedAt: time.Unix(1700000000, 0),
			OrderID: order.ID, Order: order})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(eventsReply{Events: wireEvents(res)}); err != nil {
			b.Fatal(err)
		}
	}
}
