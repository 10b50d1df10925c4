package metrics

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// newProcess registers heepr_build_info and heepr_ready.
func (m *Metrics) newProcess(reg *prometheus.Registry, healthy func() bool) {
	version, revision := buildVersion()
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help: "Always 1; the labels name the running build.",
		ConstLabels: prometheus.Labels{
			"version": version, "goversion": runtime.Version(), "revision": revision,
		},
	})
	info.Set(1)
	ready := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "ready",
		Help: "1 while /readyz answers 200: state restored, listeners up, storage healthy.",
	}, func() float64 {
		if m.ready.Load() && (healthy == nil || healthy()) {
			return 1
		}
		return 0
	})
	reg.MustRegister(info, ready)
}

// SetReady records whether the server takes traffic; call it wherever transport.Server.SetReady
// is called. Safe for concurrent use.
func (m *Metrics) SetReady(ready bool) { m.ready.Store(ready) }

// buildVersion reads the module version and VCS revision stamped by go build. Binaries built
// without module or VCS information report "unknown".
func buildVersion() (version, revision string) {
	version, revision = "unknown", "unknown"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return version, revision
	}
	if bi.Main.Version != "" {
		version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			revision = s.Value
		}
	}
	return version, revision
}
