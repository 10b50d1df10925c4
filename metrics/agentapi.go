package metrics

import (
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Route labels: the route templates of both listeners, without the /api prefix, and
// RouteUnmatched.
var Routes = []string{
	"/agent/register", "/events", "/orders/{id}/deliver", "/orders/{id}/decline",
	"/orders/{id}/flag", "/status", "/skill", "/agents/{id}/skill/{file}",
	"/admin", RouteUnmatched,
}

// RouteUnmatched labels requests answered before or instead of a route: an unknown path, a
// method the path does not take (405), a request that could not be parsed or whose headers
// are too large (431), and a body declared over the listener's limit (413).
const RouteUnmatched = "unmatched"

// unmatchedCodes are status codes only RouteUnmatched answers, pre-created for it alone.
var unmatchedCodes = []int{405, 431}

// Status codes the server answers with, pre-created for every route.
var statusCodes = []int{200, 201, 304, 400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503}

// AuthCodes are the error codes counted as authentication failures.
var AuthCodes = []string{
	"missing_credentials", "key_unknown", "key_revoked", "key_expired",
	"bootstrap_unknown", "bootstrap_used", "bootstrap_expired",
}

func (m *Metrics) newAgentAPI(reg *prometheus.Registry) {
	polls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "polls_total",
		Help: "GET /events polls by outcome: events, empty, unauthorized, rate_limited, unavailable.",
	}, []string{"outcome"})
	m.polls = counters(polls, PollOutcomes)
	m.pollDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "poll_duration_seconds",
		Help:    "Time to answer GET /events, from routed request to written reply.",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2.5, 12),
	})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "http", Name: "requests_total",
		Help: "HTTP requests answered, by route template and status code.",
	}, []string{"route", "code"})
	m.requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "http", Name: "request_duration_seconds",
		Help:    "Time to answer a request, by route template.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 3, 11),
	}, []string{"route"})
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "auth_failures_total",
		Help: "Requests refused for their credentials, by error code.",
	}, []string{"code"})

	m.routes = make(map[string]*routeMetrics, len(Routes))
	for _, r := range Routes {
		codes := statusCodes
		if r == RouteUnmatched {
			codes = append(slices.Clone(statusCodes), unmatchedCodes...)
		}
		rm := &routeMetrics{duration: m.requestDuration.WithLabelValues(r),
			codes: make(map[int]prometheus.Counter, len(codes))}
		for _, c := range codes {
			rm.codes[c] = m.requests.WithLabelValues(r, strconv.Itoa(c))
		}
		m.routes[r] = rm
	}
	for _, c := range AuthCodes {
		m.authFailures.WithLabelValues(c)
	}
	m.rateLimited = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "rate_limited_total",
		Help: "Requests refused with 429: an agent used up its request budget, or a source " +
			"address its failed-authentication budget.",
	})
	m.connsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "http", Name: "connections_refused_total",
		Help: "Connections closed, most after a 503, because the listener already served " +
			"--max-conns, by listener.",
	}, []string{"listener"})
	for _, l := range Listeners {
		m.connsRefused.WithLabelValues(l)
	}
	reg.MustRegister(polls, m.pollDuration, m.requests, m.requestDuration, m.authFailures,
		m.rateLimited, m.connsRefused)
}

// Listeners are the label values of heepr_http_connections_refused_total.
var Listeners = []string{"agent", "ops"}

// ConnectionRefused counts a connection turned away at a listener's connection limit.
func (m *Metrics) ConnectionRefused(listener string) {
	m.connsRefused.WithLabelValues(listener).Inc()
}

// Poll counts one poll and its latency.
func (m *Metrics) Poll(outcome string, seconds float64) {
	m.polls[outcome].Inc()
	m.pollDuration.Observe(seconds)
}

// Request counts one answered request on a route.
// The series of known routes and codes are looked up in maps built at start-up, so the hot path
// formats no label and takes no lock.
func (m *Metrics) Request(route string, code int, seconds float64) {
	if rm := m.count(route, code); rm != nil {
		rm.duration.Observe(seconds)
		return
	}
	m.requestDuration.WithLabelValues(route).Observe(seconds)
}

// Refused counts a request refused before any route (RouteUnmatched) without timing it: it was
// answered at once, and a zero would drag the route's latency figures down.
func (m *Metrics) Refused(code int) { m.count(RouteUnmatched, code) }

// count adds one to a route's requests with a status code, through the pre-created series when
// there is one, and returns the route's series (nil for a route not pre-created).
func (m *Metrics) count(route string, code int) *routeMetrics {
	rm := m.routes[route]
	if rm != nil && rm.codes[code] != nil {
		rm.codes[code].Inc()
		return rm
	}
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	return rm
}

// routeMetrics are one route's pre-created series.
type routeMetrics struct {
	duration prometheus.Observer
	codes    map[int]prometheus.Counter
}

// AuthFailure counts a request refused for its credentials.
func (m *Metrics) AuthFailure(code string) { m.authFailures.WithLabelValues(code).Inc() }

// RateLimited counts a request refused because its agent's budget was used up.
func (m *Metrics) RateLimited() { m.rateLimited.Inc() }
