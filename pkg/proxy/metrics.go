package proxy

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the proxy's Prometheus metrics, served on the admin listener.
type Metrics struct {
	reg            *prometheus.Registry
	Requests       *prometheus.CounterVec
	Latency        *prometheus.HistogramVec
	BytesIn        prometheus.Counter
	BytesOut       prometheus.Counter
	Ensures        *prometheus.CounterVec
	Creations      *prometheus.CounterVec
	UpstreamErrors *prometheus.CounterVec
	// Mounts and MountedBytes count the layers (and their bytes) ecrgate
	// mounted, or copied, from another repository instead of letting the
	// pusher upload them, by how ("mount" or "copy").
	Mounts       *prometheus.CounterVec
	MountedBytes *prometheus.CounterVec
}

// NewMetrics returns a fresh set of metrics on their own registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ecrgate_requests_total",
			Help: "Registry API requests by operation and status code."}, []string{"op", "code"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ecrgate_request_duration_seconds",
			Help: "Time to answer a registry API request, by operation.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}, []string{"op"}),
		BytesIn:  prometheus.NewCounter(prometheus.CounterOpts{Name: "ecrgate_request_bytes_total", Help: "Bytes received from clients."}),
		BytesOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "ecrgate_response_bytes_total", Help: "Bytes sent to clients."}),
		Ensures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ecrgate_ensure_total",
			Help: "Repository checks before a push, by result."}, []string{"result"}),
		Creations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ecrgate_repositories_created_total",
			Help: "Repositories created (or left to a native creation template), by registry."}, []string{"registry", "how"}),
		UpstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ecrgate_upstream_errors_total",
			Help: "Upstream failures, by kind."}, []string{"kind"}),
		Mounts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ecrgate_blobs_mounted_total",
			Help: "Layers mounted (or copied) from another repository instead of uploaded by the pusher, by how."}, []string{"how"}),
		MountedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ecrgate_blob_bytes_mounted_total",
			Help: "Bytes of the layers mounted (or copied) instead of uploaded by the pusher, by how."}, []string{"how"}),
	}
	m.reg.MustRegister(m.Requests, m.Latency, m.BytesIn, m.BytesOut, m.Ensures, m.Creations, m.UpstreamErrors, m.Mounts, m.MountedBytes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

func (m *Metrics) observe(op string, code int, d time.Duration, in, out int64) {
	m.Requests.WithLabelValues(op, strconv.Itoa(code)).Inc()
	m.Latency.WithLabelValues(op).Observe(d.Seconds())
	m.BytesIn.Add(float64(in))
	m.BytesOut.Add(float64(out))
}
