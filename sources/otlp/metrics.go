package otlp

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the otlp sources took and refused.
type Metrics struct {
	requests *prometheus.CounterVec
	records  prometheus.Counter
	rejected prometheus.Counter
}

// NewMetrics registers the sources' metrics on reg (nil: unregistered, for tests).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logcap_otlp_requests_total",
			Help: "OTLP export requests answered, by HTTP status."}, []string{"code"}),
		records: prometheus.NewCounter(prometheus.CounterOpts{Name: "logcap_otlp_records_total",
			Help: "OTLP log records stored in LOGS."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "logcap_otlp_records_rejected_total",
			Help: "OTLP log records refused in a partial success (bigger than max_chunk_bytes)."}),
	}
	if reg == nil {
		return m, nil
	}
	if err := reg.Register(m.requests); err != nil {
		return nil, err
	}
	for _, c := range []*prometheus.Counter{&m.records, &m.rejected} {
		if err := reg.Register(*c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) request(status, records int, rejected int64) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(strconv.Itoa(status)).Inc()
	m.records.Add(float64(records))
	m.rejected.Add(float64(rejected))
}
