package retention

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/modules/admin"
	"github.com/logcap/logcap/modules/lifecycle"
	"github.com/logcap/logcap/modules/natsd"
)

// interval is how often the guard looks at LOGS: its state and its consumers' ack floors.
const interval = time.Second

// Module provides the guard of LOGS and runs it.
var Module = fx.Module("retention", fx.Provide(newGuard), fx.Invoke(run))

func newGuard(cfg *config.Config, client *natsd.Client, reg prometheus.Registerer, log *zap.Logger) (*Guard, error) {
	return NewGuard(client.LogsStream, Mode(cfg.Streams.Logs.WhenFull), reg, log.Named("retention"))
}

type params struct {
	fx.In
	LC     fx.Lifecycle
	Guard  *Guard
	Client *natsd.Client
	Checks *admin.Checks `optional:"true"`
	Log    *zap.Logger
}

func run(p params) {
	if p.Checks != nil {
		p.Checks.Add(p.Guard.NotReady)
	}
	g := lifecycle.New("retention", p.Log)
	lifecycle.StartHook(p.LC, g, func(context.Context, *lifecycle.Closers) error {
		return g.Go(fmt.Sprintf("retention: guard %s", p.Client.LogsStream), func(ctx context.Context) error {
			if err := p.Client.WaitReady(ctx); err != nil {
				return nil
			}
			return p.Guard.Run(ctx, p.Client.JS, interval) // the connection exists once ready
		})
	})
}
