package dockermon

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the monitor's Prometheus collectors, shared by every docker source (label
// "source").
type Metrics struct {
	Followed   *prometheus.GaugeVec   // source
	Lines      *prometheus.CounterVec // source, container (name)
	Bytes      *prometheus.CounterVec // source, container
	Chunks     *prometheus.CounterVec // source
	Reconnects *prometheus.CounterVec // source, what: events | logs
	Events     *prometheus.CounterVec // source, action
	Joined     *prometheus.CounterVec // source: lines joined from Docker's 16 KiB parts
	CatchUp    *prometheus.CounterVec // source: lines written before the stream was attached
	Skipped    *prometheus.CounterVec // source: records already published, skipped on resume
}

// NewMetrics registers the collectors on reg (nil: not registered, for tests). Registering
// twice on one registry returns the collectors already there.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Followed:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "logcap_dockermon_containers_followed", Help: "Containers followed: from the start of a container's follower (before its log stream is opened) until its log was read to the end."}, []string{"source"}),
		Lines:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logcap_dockermon_lines_total", Help: "Lines published, per container name."}, []string{"source", "container"}),
		Bytes:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logcap_dockermon_bytes_total", Help: "Payload bytes published, per container name."}, []string{"source", "container"}),
		Chunks:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logcap_dockermon_chunks_total", Help: "Chunks published."}, []string{"source"}),
		Reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logcap_dockermon_reconnects_total", Help: "Events or log streams opened again after an error."}, []string{"source", "what"}),
		Events:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logcap_dockermon_events_total", Help: "Container events received."}, []string{"source", "action"}),
		Joined:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logcap_dockermon_joined_lines_total", Help: "Lines joined from Docker's 16 KiB parts."}, []string{"source"}),
		CatchUp:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logcap_dockermon_catchup_lines_total", Help: "Lines written before their stream was attached (caught up on start or resume)."}, []string{"source"}),
		Skipped:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logcap_dockermon_resume_skipped_total", Help: "Records already in LOGS, skipped when a stream resumed (since is inclusive)."}, []string{"source"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []any{&m.Followed, &m.Lines, &m.Bytes, &m.Chunks, &m.Reconnects, &m.Events, &m.Joined, &m.CatchUp, &m.Skipped} {
		if err := register(reg, c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func register(reg prometheus.Registerer, p any) error {
	switch v := p.(type) {
	case **prometheus.GaugeVec:
		err := reg.Register(*v)
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			*v = are.ExistingCollector.(*prometheus.GaugeVec)
			return nil
		}
		return err
	case **prometheus.CounterVec:
		err := reg.Register(*v)
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			*v = are.ExistingCollector.(*prometheus.CounterVec)
			return nil
		}
		return err
	}
	return nil
}
