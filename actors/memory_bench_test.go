package actors

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// BenchmarkIdleAgentMemory adds registered, idle agents and reports the heap they hold: bytes
// and objects per agent, the figures that decide how a million agents fit (and how much the
// garbage collector must walk). "passive" agents are as a restart or passivation leaves them;
// "active" ones were each sent a message, so each has a running actor. Allocation counts do
// not drift with machine noise.
func BenchmarkIdleAgentMemory(b *testing.B) {
	for _, active := range []bool{false, true} {
		name := map[bool]string{false: "passive", true: "active"}[active]
		b.Run(name, func(b *testing.B) { measureIdleAgents(b, active) })
	}
}

func measureIdleAgents(b *testing.B, active bool) {
	const agents = 100_000
	for range b.N {
		system := actor.NewActorSystem(actor.WithLoggerFactory(
			func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
		env := &Env{Now: time.Now, Online: NewOnlineTracker(time.Hour, time.Now())}
		fleet := NewFleet(system, env)
		before := heapNow()

		for i := range agents {
			st := AgentState{
				ID: benchAgentID(uint64(i)), Status: Active,
				Settings: Settings{Name: "agent", PollMinutes: 20, RevisionCap: 2},
				Key:      &APIKey{Hash: HashSecret(fmt.Sprint(i)), IssuedAt: time.Unix(0, 0)},
			}
			if err := fleet.Add(&Snapshot{State: st}); err != nil {
				b.Fatal(err)
			}
			if !active {
				continue
			}
			if _, err := fleet.Ask(st.ID, &GetAgent{}, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
		after := heapNow()
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/agents, "heap-bytes/agent")
		b.ReportMetric(float64(after.HeapObjects-before.HeapObjects)/agents, "heap-objects/agent")

		b.StopTimer()
		if err := fleet.StopAll(time.Minute); err != nil {
			b.Fatal(err)
		}
		system.Shutdown()
		b.StartTimer()
	}
}

func heapNow() runtime.MemStats {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// benchAgentID is a valid agent id made from n.
func benchAgentID(n uint64) string {
	buf := make([]byte, 10)
	binary.BigEndian.PutUint64(buf[2:], n)
	return AgentPrefix + lowerBase32.EncodeToString(buf)
}
