package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/multierr"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/memlimit"
	"github.com/logcap/logcap/modules/admin"
	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/streams"
)

// Runtime is a running logcap whose sources, processors and sinks a reload can replace
// without touching NATS. It is two fx apps: the core (embedded server, connection, admin,
// registry, gates, retention guard), started once, and the components, built from the
// core's values and rebuilt on each reload. fx cannot restart part of one app, hence two.
// Every component is a durable consumer or keeps its position in the stream or KV, so
// stopping them gracefully and starting them again loses and duplicates nothing.
type Runtime struct {
	log   *zap.Logger
	extra []fx.Option

	mu        sync.Mutex // held by Start, Reload and Stop: one at a time
	cfg       *config.Config
	core      *fx.App
	comps     *fx.App
	compReg   *scopedRegisterer
	shared    shared
	reloadMu  sync.Mutex    // guards what /readyz reads below
	checks    *admin.Checks // the current components' readiness conditions
	reloading bool
}

// shared are the core's values the components are built with.
type shared struct {
	fx.In
	Client *natsd.Client
	Checks *admin.Checks
	Reg    prometheus.Registerer
	Gate   streams.Gate `name:"sources" optional:"true"`
	// Memory is memory_limit's gate (nil: none); the processors wait on it too.
	Memory *memlimit.MemoryGate `optional:"true"`
}

// NewRuntime returns a Runtime for cfg; nothing runs before Start. Extra options (tests)
// go into every components app.
func NewRuntime(cfg *config.Config, log *zap.Logger, extra ...fx.Option) *Runtime {
	return &Runtime{cfg: cfg, log: log, extra: extra}
}

// Start starts the core, then the components.
func (r *Runtime) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.core = fx.New(common(r.cfg, r.log), coreModules, fx.Invoke(func(s shared) {
		r.shared = s
		s.Checks.Add(r.notReady)
	}))
	if err := r.core.Err(); err != nil {
		return fmt.Errorf("assemble: %w", err)
	}
	if err := r.core.Start(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if err := r.startComponents(ctx, r.cfg); err != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), r.cfg.ShutdownTimeout.D())
		defer cancel()
		return errors.Join(err, r.core.Stop(stopCtx))
	}
	return nil
}

// Wait is the core app's shutdown channel (fx.Shutdowner).
func (r *Runtime) Wait() <-chan fx.ShutdownSignal { return r.core.Wait() }

// Stop stops the components, then the core, within ctx.
func (r *Runtime) Stop(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.core == nil {
		return nil // never started
	}
	// One line, as fx joins its hooks' errors: the last line of stderr names all that hung.
	return multierr.Combine(r.stopComponents(ctx), r.core.Stop(ctx))
}

// startComponents builds and starts the components of cfg on the core's values. On failure
// nothing of them is left: no goroutine, no metric.
func (r *Runtime) startComponents(ctx context.Context, cfg *config.Config) error {
	checks := &admin.Checks{}
	reg := &scopedRegisterer{reg: r.shared.Reg}
	opts := []fx.Option{
		common(cfg, r.log),
		fx.Supply(r.shared.Client, checks),
		fx.Provide(func() prometheus.Registerer { return reg }),
		componentModules,
		fx.Options(r.extra...),
	}
	if r.shared.Memory != nil {
		opts = append(opts, fx.Supply(r.shared.Memory))
	}
	if r.shared.Gate != nil {
		gate := r.shared.Gate
		opts = append(opts, fx.Provide(fx.Annotate(func() streams.Gate { return gate }, fx.ResultTags(`name:"sources"`))))
	}
	a := fx.New(opts...)
	if err := a.Err(); err != nil {
		reg.unregisterAll()
		return fmt.Errorf("assemble: %w", err)
	}
	if err := a.Start(ctx); err != nil {
		reg.unregisterAll() // fx stopped what had started
		return fmt.Errorf("start: %w", err)
	}
	r.comps, r.compReg = a, reg
	r.reloadMu.Lock()
	r.checks = checks
	r.reloadMu.Unlock()
	return nil
}

// stopComponents stops the running components (if any) and takes their metrics out of the
// registry, so the next ones register theirs afresh (their counters start at zero again, as
// after a restart; rate() takes that as a reset).
func (r *Runtime) stopComponents(ctx context.Context) error {
	if r.comps == nil {
		return nil
	}
	err := r.comps.Stop(ctx)
	r.compReg.unregisterAll()
	r.comps, r.compReg = nil, nil
	r.reloadMu.Lock()
	r.checks = nil
	r.reloadMu.Unlock()
	return err
}

// notReady is the components' part of /readyz: not ready while a reload has them stopped.
func (r *Runtime) notReady() string {
	r.reloadMu.Lock()
	checks, reloading := r.checks, r.reloading
	r.reloadMu.Unlock()
	if reloading {
		return "reloading the configuration: sources, processors and sinks are restarting"
	}
	if checks == nil {
		return "sources, processors and sinks not running"
	}
	return checks.NotReady()
}

func (r *Runtime) setReloading(on bool) {
	r.reloadMu.Lock()
	r.reloading = on
	r.reloadMu.Unlock()
}

// ErrNeedsRestart is returned by Reload for a change it cannot apply.
var ErrNeedsRestart = errors.New("needs a restart")

// Reload replaces the running sources, processors and sinks with those of cfg (already
// validated), leaving NATS and the admin endpoint running. A change to any other key is
// refused (ErrNeedsRestart) and the running configuration stays. If cfg's components fail
// to start, the previous ones are started again and the error returned; only if those fail
// too is the error fatal (Fatal reports it).
func (r *Runtime) Reload(cfg *config.Config) (Change, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	change, err := Diff(r.cfg, cfg)
	if err != nil {
		return change, err
	}
	if len(change.Restart) > 0 {
		return change, fmt.Errorf("%w: %s changed; a reload applies only sources, processors and sinks",
			ErrNeedsRestart, strings.Join(change.Restart, ", "))
	}
	if change.Empty() {
		return change, nil
	}
	r.setReloading(true)
	defer r.setReloading(false)
	timeout := r.cfg.ShutdownTimeout.D()
	stopCtx, cancel := context.WithTimeout(context.Background(), timeout)
	stopErr := r.stopComponents(stopCtx)
	cancel()
	if stopErr != nil {
		r.log.Warn("reload: stopping the previous sources, processors and sinks", zap.Error(stopErr))
	}
	if err := r.startWithin(cfg); err != nil {
		if again := r.startWithin(r.cfg); again != nil {
			return change, &FatalError{fmt.Errorf("reload: %w; restarting the previous components: %w", err, again)}
		}
		return change, fmt.Errorf("reload: %w (the previous sources, processors and sinks run again)", err)
	}
	r.cfg = cfg
	return change, nil
}

// startTimeout bounds the start of a components app, as `run` bounds the first start.
const startTimeout = 60 * time.Second

func (r *Runtime) startWithin(cfg *config.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	return r.startComponents(ctx, cfg)
}

// FatalError is a reload failure that left no components running.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

// Note sets the line /readyz shows under its answer (what the last reload did).
func (r *Runtime) Note(note string) { r.shared.Checks.SetNote(note) }

// scopedRegisterer registers on the core's registry and remembers what, so that a
// components app's metrics leave the registry with it.
type scopedRegisterer struct {
	reg prometheus.Registerer
	mu  sync.Mutex
	cs  []prometheus.Collector
}

func (s *scopedRegisterer) Register(c prometheus.Collector) error {
	if err := s.reg.Register(c); err != nil {
		return err
	}
	s.mu.Lock()
	s.cs = append(s.cs, c)
	s.mu.Unlock()
	return nil
}

func (s *scopedRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := s.Register(c); err != nil {
			panic(err) // prometheus' own contract for MustRegister
		}
	}
}

func (s *scopedRegisterer) Unregister(c prometheus.Collector) bool {
	return s.reg.Unregister(c)
}

func (s *scopedRegisterer) unregisterAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.cs {
		s.reg.Unregister(c)
	}
	s.cs = nil
}
