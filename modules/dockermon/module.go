// Package dockermon is the fx glue of the Docker container monitor: for every source of
// type docker it builds the core (sources/dockermon) and runs it under one lifecycle group.
package dockermon

import (
	"context"
	"fmt"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/modules/lifecycle"
	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/sources"
	core "github.com/logcap/logcap/sources/dockermon"
	"github.com/logcap/logcap/streams"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// Type is the source type this module handles.
const Type = core.Type

// Module follows the containers of every `type: docker` source.
var Module = fx.Module("dockermon", fx.Invoke(start))

// Params are the module's dependencies.
type Params struct {
	fx.In
	Lifecycle fx.Lifecycle
	Config    *config.Config
	NATS      *natsd.Client
	Log       *zap.Logger
	Registry  prometheus.Registerer
	Gate      streams.Gate `name:"sources" optional:"true"` // memory_limit, when_full
}

func start(p Params) error {
	srcs, opts, err := sources.Select[core.Options](p.Config, Type)
	if err != nil {
		return err
	}
	if len(srcs) == 0 {
		return nil
	}
	metrics, err := core.NewMetrics(p.Registry)
	if err != nil {
		return fmt.Errorf("dockermon: metrics: %w", err)
	}
	g := lifecycle.New("dockermon", p.Log)
	// Built at start, not at invoke time: the NATS connection exists once natsd started.
	// The readers stop before the clients close (a failed start included).
	lifecycle.StartHook(p.Lifecycle, g, func(_ context.Context, closers *lifecycle.Closers) error {
		for i, s := range srcs {
			cli, err := core.NewClient(opts[i])
			if err != nil {
				return fmt.Errorf("source %s: %w", s.Name, err)
			}
			closers.Add(cli.Close)
			mon, err := core.New(core.Config{Source: s.Name, Host: p.Config.Node, Stream: p.NATS.LogsStream, Gate: p.Gate, Options: opts[i]},
				cli, p.NATS.JS, g.Go, p.Log.Named("dockermon"), metrics)
			if err != nil {
				return err // names the source
			}
			if err := g.Go("dockermon: events "+s.Name, p.NATS.WhenReady(mon.Run)); err != nil {
				return err
			}
		}
		return nil
	})
	return nil
}
