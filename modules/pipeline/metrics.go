package pipeline

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logcap/logcap/processors"
)

type metrics struct {
	procIn, procOut, procDropped *prometheus.CounterVec // by processor
	procErrors                   *prometheus.CounterVec // chunks dead-lettered, by processor
	procMemWaits                 *prometheus.CounterVec // fetches held back by memory_limit
	pending                      *prometheus.GaugeVec   // by consumer
	deadLetters                  *prometheus.CounterVec // chunks, by consumer
	sinkEntries, sinkBytes       *prometheus.CounterVec // by sink
	sinkBatches, sinkRetries     *prometheus.CounterVec // by sink
	sinkLatency                  *prometheus.HistogramVec
	sinkHealthy                  *prometheus.GaugeVec
	sinkDown                     *prometheus.GaugeVec   // seconds, by sink
	sinkProbesFailed             *prometheus.CounterVec // by sink
	sinkRewound                  *prometheus.CounterVec // by sink
	sinkSkipped                  *prometheus.CounterVec // by sink
	stepCollector                *stepCollector
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	cv := func(name, help, label string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logcap_pipeline_" + name, Help: help}, []string{label})
	}
	m := &metrics{
		procIn:       cv("processor_entries_in_total", "Entries a processor read from its input.", "processor"),
		procOut:      cv("processor_entries_out_total", "Entries a processor published to its derived stream.", "processor"),
		procDropped:  cv("processor_entries_dropped_total", "Entries a processor's steps dropped.", "processor"),
		procErrors:   cv("processor_errors_total", "Input chunks a processor could not process (dead-lettered).", "processor"),
		procMemWaits: cv("processor_memory_waits_total", "Fetches a processor held back because the live heap was over memory_limit.", "processor"),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "logcap_pipeline_consumer_pending",
			Help: "Messages of the consumer's input not yet delivered (num_pending), sampled on each fetch."}, []string{"consumer"}),
		deadLetters: cv("dead_letters_total", "Messages a processor or sink sent to the dead-letter stream.", "consumer"),
		sinkEntries: cv("sink_entries_total", "Entries a sink delivered (the destination accepted them).", "sink"),
		sinkBytes:   cv("sink_bytes_total", "Message bytes of the entries a sink delivered.", "sink"),
		sinkBatches: cv("sink_batches_total", "Write calls that succeeded, in whole or in part.", "sink"),
		sinkRetries: cv("sink_retries_total", "Retries of a batch in hand after a transient failure.", "sink"),
		sinkLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "logcap_pipeline_sink_write_seconds",
			Help: "Duration of a sink's Write calls (destination latency).", Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)}, []string{"sink"}),
		sinkHealthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "logcap_pipeline_sink_healthy",
			Help: "1 while the sink's destination accepts writes, 0 while it fails."}, []string{"sink"}),
		sinkDown: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "logcap_pipeline_sink_down_seconds",
			Help: "How long the sink's destination has been down (failed health probes), as of the last probe; 0 once it answers."}, []string{"sink"}),
		sinkProbesFailed: cv("sink_probes_failed_total", "Health probes of a sink's destination that found it down.", "sink"),
		sinkRewound:      cv("sink_stream_rewound_total", "Times a sink found its stream gone backwards under its recorded position (a store whose end was lost) and wrote the re-used sequence numbers instead of skipping them.", "sink"),
		sinkSkipped:      cv("sink_skipped_total", "Messages a sink acked without writing them: redelivered after a crash lost their acks, at or below the ack floor it recorded (its delivered position).", "sink"),
		stepCollector: &stepCollector{desc: prometheus.NewDesc("logcap_pipeline_step_entries_total",
			"Entries per processor step by result: in, out, dropped, errors, unmatched.",
			[]string{"processor", "step", "type", "result"}, nil)},
	}
	for _, c := range []prometheus.Collector{m.procIn, m.procOut, m.procDropped, m.procErrors, m.procMemWaits, m.pending, m.deadLetters,
		m.sinkEntries, m.sinkBytes, m.sinkBatches, m.sinkRetries, m.sinkLatency, m.sinkHealthy, m.sinkDown, m.sinkProbesFailed, m.sinkRewound, m.sinkSkipped, m.stepCollector} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// stepCollector reads the chains' own counters at scrape time, so counting costs the hot
// path nothing beyond the chain's atomics.
type stepCollector struct {
	desc   *prometheus.Desc
	mu     sync.Mutex
	chains []namedChain
}

type namedChain struct {
	name  string
	chain *processors.Chain
}

func (c *stepCollector) add(name string, ch *processors.Chain) {
	c.mu.Lock()
	c.chains = append(c.chains, namedChain{name, ch})
	c.mu.Unlock()
}

func (c *stepCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *stepCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	chains := append([]namedChain(nil), c.chains...)
	c.mu.Unlock()
	for _, nc := range chains {
		for _, s := range nc.chain.Stats() {
			idx := strconv.Itoa(s.Index)
			for _, r := range []struct {
				result string
				v      uint64
			}{{"in", s.In}, {"out", s.Out}, {"dropped", s.Dropped}, {"errors", s.Errors}, {"unmatched", s.Unmatched}} {
				ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(r.v), nc.name, idx, s.Type, r.result)
			}
		}
	}
}
