// Package filemon runs the file sources (`type: file`): for each it builds the core monitor
// (sources/filemon) and runs its blocking functions in one lifecycle group: one discovery
// goroutine and a fixed pool of readers per source, whatever the number of files.
package filemon

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/modules/lifecycle"
	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/sources"
	core "github.com/logcap/logcap/sources/filemon"
	"github.com/logcap/logcap/streams"
)

// Type is the source type this module runs.
const Type = "file"

// Module runs every `type: file` source of the configuration.
var Module = fx.Module("filemon", fx.Invoke(start))

type params struct {
	fx.In
	LC     fx.Lifecycle
	Config *config.Config
	Client *natsd.Client
	Log    *zap.Logger
	Reg    prometheus.Registerer
	Gate   *streams.MemoryGate `optional:"true"` // nil: no memory_limit
}

// The file source registers here until sources/filemon (being rewritten) registers itself,
// as sources/dockermon does.
func init() {
	sources.Register(Type, func(src config.Component) (any, error) { return Decode(src) })
}

// Decode reads a file source's options strictly and applies the defaults.
func Decode(src config.Component) (core.Options, error) {
	var o core.Options
	if err := src.Options.Decode(&o, "name", "type"); err != nil {
		return o, fmt.Errorf("source %s: %w", src.Name, err)
	}
	o, err := o.WithDefaults()
	if err != nil {
		return o, fmt.Errorf("source %s: %w", src.Name, err)
	}
	return o, nil
}

func start(p params) error {
	srcs, opts, err := sources.Select[core.Options](p.Config, Type)
	if err != nil {
		return err
	}
	if len(srcs) == 0 {
		return nil
	}
	met, err := core.NewMetrics(p.Reg)
	if err != nil {
		return fmt.Errorf("filemon: metrics: %w", err)
	}
	g := lifecycle.New("filemon", p.Log)
	// The monitors are built at start, not at invoke time: the NATS connection they publish
	// on exists once natsd has started (its hook runs first). Their goroutines stop before
	// they are closed, a failed start included.
	lifecycle.StartHook(p.LC, g, func(_ context.Context, closers *lifecycle.Closers) error {
		for i, src := range srcs {
			m, err := core.New(src.Name, opts[i], core.Deps{
				JS: p.Client.JS, Stream: p.Client.LogsStream, Host: p.Config.Node, Log: p.Log,
				Metrics: met, KVReplicas: p.Config.Streams.Logs.Replicas, Gate: p.Gate,
			})
			if err != nil {
				return err
			}
			closers.Add(func() error { m.Close(); return nil })
			if err := g.Go("filemon: discover "+src.Name, p.Client.WhenReady(m.Discover)); err != nil {
				return err
			}
			for r := range m.Readers() {
				if err := g.Go(fmt.Sprintf("filemon: read %s #%d", src.Name, r), m.Read); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return nil
}
