package app

import (
	"context"
	"os"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/memlimit"
)

// newMemoryGate builds the gate the sources publish through, from memory_limit, and sets the
// Go runtime's soft limit to memlimit.SoftLimit of it (unless GOMEMLIMIT is set): the embedded
// server's released buffers are garbage that only a collection frees, and without the soft
// limit the next collection comes only when the heap has doubled.
//
// It also starts memlimit's GC tuner (unless GOGC is set): a lower GOGC while the live heap
// is small, so an idle logcap does not keep a heap twice its size.
func newMemoryGate(lc fx.Lifecycle, cfg *config.Config, reg prometheus.Registerer, log *zap.Logger) (*memlimit.MemoryGate, error) {
	var limit uint64
	if cfg.MemoryLimit != nil {
		limit = uint64(*cfg.MemoryLimit)
	}
	g := memlimit.NewMemoryGate(limit)
	if g == nil {
		return nil, nil
	}
	if os.Getenv("GOMEMLIMIT") == "" { // the user's own soft limit wins
		debug.SetMemoryLimit(int64(memlimit.SoftLimit(limit)))
	}
	if os.Getenv("GOGC") == "" { // the user's own GOGC wins
		var tuner *memlimit.GCTuner
		lc.Append(fx.Hook{
			OnStart: func(context.Context) error { tuner = memlimit.StartGCTuner(); return nil },
			OnStop:  func(context.Context) error { tuner.Stop(); return nil },
		})
	}
	log.Info("memory limit", zap.Stringer("memory_limit", *cfg.MemoryLimit))
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logcap_memory_limit_bytes",
			Help: "memory_limit: the live heap above which the sources stop reading."},
			func() float64 { return float64(limit) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logcap_memory_held_publishes",
			Help: "Source publishes held back now because the live heap is over memory_limit."},
			func() float64 { return float64(g.Waiting()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "logcap_memory_held_seconds_total",
			Help: "Time source publishes spent held back by memory_limit."},
			func() float64 { return g.Held().Seconds() }),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return g, nil
}
