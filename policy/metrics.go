package policy

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricName is the name of the counter [MetricsSink] maintains.
const MetricName = "securejingle_policy_alerts_total"

// MetricsSink is a [Sink] that counts alerts in the Prometheus counter
// securejingle_policy_alerts_total{kind,action}. A summary adds its Count,
// so the counter counts channel events, not deliveries. Create with
// [NewMetricsSink]; the zero value is not usable. Safe for concurrent use.
type MetricsSink struct {
	vec *prometheus.CounterVec
}

// NewMetricsSink registers the counter on reg. If an identical counter is
// already registered (a second sink on the same registry), it is shared.
func NewMetricsSink(reg prometheus.Registerer) (*MetricsSink, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricName,
		Help: "Channel events flagged or refused by the securejingle policy, by channel kind and action.",
	}, []string{"kind", "action"})
	if err := reg.Register(vec); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, errors.Join(errors.New("policy: register metrics"), err)
		}
		existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
		if !ok {
			return nil, errors.Join(errors.New("policy: register metrics"), err)
		}
		vec = existing
	}
	return &MetricsSink{vec: vec}, nil
}

// Send adds a.Count (at least 1) to the counter for a's kind and action.
func (m *MetricsSink) Send(_ context.Context, a Alert) error {
	m.vec.WithLabelValues(a.Facts.Kind.String(), a.Decision.Action.String()).Add(float64(max(a.Count, 1)))
	return nil
}

// Vec returns the counter vector, for tests and for exporting it elsewhere.
func (m *MetricsSink) Vec() *prometheus.CounterVec { return m.vec }
