// Package filemon runs the file sources (`type: file`): for each it builds the core monitor
// (sources/filemon) and runs its blocking functions in one lifecycle group: one discovery
// goroutine and a fixed pool of readers per source, whatever the number of files.
package filemon

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/modules/admin"
	"github.com/logcap/logcap/modules/lifecycle"
	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/sources"
	core "github.com/logcap/logcap/sources/filemon"
	"github.com/logcap/logcap/streams"
)

// Type is the source type this module runs.
const Type = core.Type

// Module runs every `type: file` source of the configuration.
var Module = fx.Module("filemon", fx.Invoke(start))

// Params are what a module running monitors of the file monitor's core needs (this one,
// and modules/kubernetes).
type Params struct {
	fx.In
	LC     fx.Lifecycle
	Config *config.Config
	Client *natsd.Client
	Log    *zap.Logger
	Reg    prometheus.Registerer
	Gate   streams.Gate  `name:"sources" optional:"true"` // memory_limit, when_full
	Checks *admin.Checks `optional:"true"`                // readiness: a source that lost a file says so
}

func start(p Params) error {
	srcs, opts, err := sources.Select[core.Options](p.Config, Type)
	if err != nil {
		return err
	}
	return Run(p, "filemon", srcs, func(i int, d core.Deps) (*core.Monitor, error) {
		return core.New(srcs[i].Name, opts[i], d)
	})
}

// Run builds a monitor for each of srcs with build at start (its Deps filled in) and runs
// its tasks in one lifecycle group named group.
func Run(p Params, group string, srcs []config.Component, build func(i int, d core.Deps) (*core.Monitor, error)) error {
	if len(srcs) == 0 {
		return nil
	}
	met, err := core.NewMetrics(p.Reg)
	if err != nil {
		return fmt.Errorf("%s: metrics: %w", group, err)
	}
	dataDir, _ := filepath.Abs(p.Config.DataDir)
	g := lifecycle.New(group, p.Log)
	// The monitors are built at start, not at invoke time: the NATS connection they publish
	// on exists once natsd has started (its hook runs first). Their goroutines stop before
	// they are closed, a failed start included.
	lifecycle.StartHook(p.LC, g, func(_ context.Context, closers *lifecycle.Closers) error {
		for i, src := range srcs {
			m, err := build(i, core.Deps{
				JS: p.Client.JS, Stream: p.Client.LogsStream, Host: p.Config.Node, Log: p.Log,
				Metrics: met, KVReplicas: p.Config.Streams.Logs.Replicas, Gate: p.Gate, DataDir: dataDir,
			})
			if err != nil {
				return err
			}
			closers.Add(func() error { m.Close(); return nil })
			if p.Checks != nil {
				p.Checks.Add(m.NotReady)
			}
			for _, t := range m.Tasks() {
				run := t.Run
				if t.Name == "discover" { // nothing to discover into before NATS first answers
					run = p.Client.WhenReady(m.Discover)
				}
				if err := g.Go(fmt.Sprintf("%s: %s %s", group, t.Name, src.Name), run); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return nil
}
