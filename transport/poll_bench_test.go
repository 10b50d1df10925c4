package transport

import (
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
