package filemon

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of all file sources, by `source` label.
type Metrics struct {
	Lines, Bytes, Chunks                     *prometheus.CounterVec
	Rotations, Truncations, SplitLines, Errs *prometheus.CounterVec
	GzipErrs, Lost, Malformed, Rewound       *prometheus.CounterVec
	MaxFiles                                 *prometheus.CounterVec
	FilesOpen, BytesBehind                   *prometheus.GaugeVec
	Publish                                  *prometheus.HistogramVec
}

// NewMetrics registers the file monitor's metrics on reg (a nil reg registers nothing).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	cv := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logcap_filemon_" + name, Help: help}, []string{"source"})
	}
	gv := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "logcap_filemon_" + name, Help: help}, []string{"source"})
	}
	m := &Metrics{
		Lines:       cv("lines_total", "Entries published (lines, multiline entries or parts of split lines)."),
		Bytes:       cv("bytes_total", "Bytes published."),
		Chunks:      cv("chunks_total", "Chunks published."),
		Rotations:   cv("rotations_total", "Files drained and closed because another file took their path, or they were removed."),
		Truncations: cv("truncations_total", "Files found truncated (copytruncate) and read again from the start."),
		SplitLines:  cv("split_lines_total", "Parts of lines longer than max_line_bytes that continue in the next entry."),
		Errs:        cv("errors_total", "Errors opening, reading or publishing files."),
		GzipErrs:    cv("gzip_errors_total", "Gzip files given up (include_compressed): corrupt, truncated for longer than close_removed_after, or named .gz without the gzip magic."),
		Lost:        cv("files_lost_total", "Files given up with lines unread: rotated away before they could be held (max_open_files), or while closed to stay under it."),
		Malformed:   cv("malformed_lines_total", "Lines of a container log (type: kubernetes) not in the CRI format: published as they were, one entry each."),
		Rewound:     cv("stream_rewound_total", "Files read again from the stream's position because the stream lost chunks the positions KV had seen (a store whose end was damaged by a crash)."),
		MaxFiles:    cv("max_files_reached_total", "Times a source reached max_files (a scan stopped there, or a new file was refused): the files the globs match beyond it are not read."),
		FilesOpen:   gv("files_open", "File descriptors held."),
		BytesBehind: gv("bytes_behind", "File sizes minus published positions, summed."),
		Publish: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "logcap_filemon_publish_seconds", Help: "Time from publish to JetStream ack per chunk.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"source"}),
	}
	if reg == nil {
		return m, nil
	}
	// A second module on the file monitor (modules/kubernetes) registers the same metrics:
	// it shares the collectors registered first.
	err := errors.Join(register(reg, &m.Lines), register(reg, &m.Bytes), register(reg, &m.Chunks),
		register(reg, &m.Rotations), register(reg, &m.Truncations), register(reg, &m.SplitLines),
		register(reg, &m.Errs), register(reg, &m.GzipErrs), register(reg, &m.Lost), register(reg, &m.Malformed), register(reg, &m.Rewound), register(reg, &m.MaxFiles),
		register(reg, &m.FilesOpen), register(reg, &m.BytesBehind), register(reg, &m.Publish))
	if err != nil {
		return nil, err
	}
	return m, nil
}

type sourceMetrics struct {
	lines, bytes, chunks, rotations, truncations, split, errs prometheus.Counter
	gzipErrs, lost, malformed, rewound, maxFiles              prometheus.Counter
	open, behind                                              prometheus.Gauge
	publish                                                   prometheus.Observer
}

func (m *Metrics) forSource(name string) sourceMetrics {
	return sourceMetrics{
		lines: m.Lines.WithLabelValues(name), bytes: m.Bytes.WithLabelValues(name), chunks: m.Chunks.WithLabelValues(name),
		rotations: m.Rotations.WithLabelValues(name), truncations: m.Truncations.WithLabelValues(name),
		split: m.SplitLines.WithLabelValues(name), errs: m.Errs.WithLabelValues(name),
		gzipErrs: m.GzipErrs.WithLabelValues(name), lost: m.Lost.WithLabelValues(name),
		malformed: m.Malformed.WithLabelValues(name), rewound: m.Rewound.WithLabelValues(name),
		maxFiles: m.MaxFiles.WithLabelValues(name),
		open:     m.FilesOpen.WithLabelValues(name), behind: m.BytesBehind.WithLabelValues(name),
		publish: m.Publish.WithLabelValues(name),
	}
}

// register registers *c, or points it at the same collector registered before.
func register[C prometheus.Collector](reg prometheus.Registerer, c *C) error {
	err := reg.Register(*c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if e, ok := are.ExistingCollector.(C); ok {
			*c = e
		}
		return nil
	}
	return err
}
