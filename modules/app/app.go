// Package app assembles logcap from its modules for a given configuration: the one place
// that knows every module, so cmd stays flag wiring only.
package app

import (
	"fmt"
	"os"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/memlimit"
	"github.com/logcap/logcap/modules/admin"
	"github.com/logcap/logcap/modules/dockermon"
	"github.com/logcap/logcap/modules/filemon"
	"github.com/logcap/logcap/modules/kubernetes"
	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/modules/pipeline"
	"github.com/logcap/logcap/modules/retention"
	"github.com/logcap/logcap/streams"
)

// Options returns the fx options of a whole logcap for cfg. Extra options (tests) come last.
func Options(cfg *config.Config, log *zap.Logger, extra ...fx.Option) fx.Option {
	return fx.Options(
		fx.Supply(cfg, log),
		fx.WithLogger(func() fxevent.Logger {
			l := &fxevent.ZapLogger{Logger: log.Named("fx")}
			l.UseLogLevel(zapcore.DebugLevel)
			return l
		}),
		// The whole stop is bounded: monitors, publishers, consumers, sinks, the connection
		// and the embedded server share shutdown_timeout.
		fx.StopTimeout(cfg.ShutdownTimeout.D()),
		fx.Provide(newMemoryGate),
		fx.Provide(fx.Annotate(sourcesGate, fx.ResultTags(`name:"sources"`))),
		natsd.Module,
		admin.Module,
		fx.Invoke(storeReadiness),
		retention.Module,
		filemon.Module,
		kubernetes.Module,
		dockermon.Module,
		pipeline.Module,
		fx.Options(extra...),
	)
}

// New builds the fx app for cfg.
func New(cfg *config.Config, log *zap.Logger, extra ...fx.Option) *fx.App {
	return fx.New(Options(cfg, log, extra...))
}

// NewLogger builds logcap's logger: JSON by default, console when stderr is a terminal
// (format overrides), at the given level.
func NewLogger(level, format string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	if format == "" {
		format = "json"
		if term.IsTerminal(int(os.Stderr.Fd())) {
			format = "console"
		}
	}
	var zc zap.Config
	switch format {
	case "json":
		zc = zap.NewProductionConfig()
		zc.EncoderConfig.TimeKey = "time"
		zc.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	case "console":
		zc = zap.NewDevelopmentConfig()
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
	default:
		return nil, fmt.Errorf("log format %q: want json or console", format)
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.Sampling = nil // a log agent must not drop its own errors
	zc.DisableStacktrace = true
	return zc.Build()
}

// sourcesGate is what the sources publish through: the store's free space (embedded), the
// memory budget, then LOGS' when_full.
func sourcesGate(client *natsd.Client, mem *memlimit.MemoryGate, guard *retention.Guard) streams.Gate {
	var gs streams.Gates
	if client.Space != nil {
		gs = append(gs, client.Space)
	}
	if mem != nil {
		gs = append(gs, mem)
	}
	return append(gs, guard)
}

// storeReadiness makes /readyz say when the embedded server's disk is full.
func storeReadiness(client *natsd.Client, checks *admin.Checks) {
	if client.Space != nil {
		checks.Add(client.Space.NotReady)
	}
}
