package transport

import (
	"bufio"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/heepr/heeprd/metrics"
)

// TestPollOutcome maps each answer of GET /events to its heepr_polls_total outcome. A refused
// poll (429) is counted apart from the server failing, so an agent polling too fast does not
// look like an outage.
func TestPollOutcome(t *testing.T) {
	tests := []struct {
		name   string
		status int
		stream bool
		want   string
	}{
		{"empty", fasthttp.StatusOK, false, metrics.PollEmpty},
		{"events", fasthttp.StatusOK, true, metrics.PollEvents},
		{"bad key", fasthttp.StatusUnauthorized, false, metrics.PollUnauthorized},
		{"over budget", fasthttp.StatusTooManyRequests, false, metrics.PollRateLimited},
		{"actor too slow", fasthttp.StatusServiceUnavailable, false, metrics.PollUnavailable},
		{"handler failed", fasthttp.StatusInternalServerError, false, metrics.PollUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			ctx.SetStatusCode(tt.status)
			if tt.stream {
				ctx.SetBodyStreamWriter(func(*bufio.Writer) {})
			}
			if got := pollOutcome(&ctx); got != tt.want {
				t.Errorf("pollOutcome(%d) = %q, want %q", tt.status, got, tt.want)
			}
		})
	}
}
