package api

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metric names, exported for dashboards and docs/api.md.
const (
	MetricChatSent      = "securejingle_chat_sent_total"
	MetricChatReceived  = "securejingle_chat_received_total"
	MetricAlerts        = "securejingle_alerts_total"
	MetricKeyChanges    = "securejingle_key_changes_total"
	MetricEventsDropped = "securejingle_events_dropped_total"
	MetricConnected     = "securejingle_connected"
)

// metrics is the server's own registry (never the global one, so that two
// daemons in one test process do not collide).
type metrics struct {
	reg          *prometheus.Registry
	chatSent     prometheus.Counter
	chatReceived *prometheus.CounterVec
	alerts       prometheus.Counter
	keyChanges   prometheus.Counter
}

func newMetrics(b Backend) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		chatSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricChatSent, Help: "Chat messages sent through the API."}),
		chatReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricChatReceived, Help: "Chat messages received, by protection."}, []string{"encrypted"}),
		alerts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricAlerts, Help: "Security alerts raised by the gateway."}),
		keyChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricKeyChanges, Help: "Known peer devices that presented a different identity key."}),
	}
	m.chatReceived.WithLabelValues("true")
	m.chatReceived.WithLabelValues("false")
	m.reg.MustRegister(m.chatSent, m.chatReceived, m.alerts, m.keyChanges,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: MetricEventsDropped, Help: "Events lost by subscribers that fell behind."},
			func() float64 { return float64(b.Status().DroppedEvents) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: MetricConnected, Help: "1 when the account is logged in, else 0."},
			func() float64 {
				if b.Status().Connected {
					return 1
				}
				return 0
			}),
	)
	return m
}

func (m *metrics) observe(ev Event) {
	switch ev.Kind {
	case "chat":
		if ev.Encrypted {
			m.chatReceived.WithLabelValues("true").Inc()
		} else {
			m.chatReceived.WithLabelValues("false").Inc()
		}
	case "alert":
		m.alerts.Inc()
	case "key-changed":
		m.keyChanges.Inc()
	}
}

// Registerer returns the registry behind GET /metrics, so that the daemon
// can add collectors of its own (the policy alert counter).
func (s *Server) Registerer() prometheus.Registerer { return s.metrics.reg }

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
