package lifecycle

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/fx"
)

// Closers is a stack of resources a module's start built (Docker clients, watchers, sinks):
// Close closes them in reverse order, each once.
type Closers struct {
	mu  sync.Mutex
	fns []func() error
}

// Add pushes close, to run before everything added earlier.
func (c *Closers) Add(close func() error) {
	c.mu.Lock()
	c.fns = append(c.fns, close)
	c.mu.Unlock()
}

// Close runs the closers in reverse order and forgets them; it returns their errors joined.
func (c *Closers) Close() error {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	var errs []error
	for i := len(fns) - 1; i >= 0; i-- {
		errs = append(errs, fns[i]())
	}
	return errors.Join(errs...)
}

// StartHook gives a module's group and resources one fx hook. OnStart runs start, which
// builds resources (registering each with Closers.Add) and starts goroutines on g. If start
// fails part-way, fx runs no OnStop for this hook (it only stops hooks whose OnStart
// succeeded), so StartHook cleans up itself before returning start's error: it stops g
// (bounded by the start context) and then closes the resources in reverse order. OnStop
// does the same, bounded by fx's stop context: the goroutines are gone before anything
// they use is closed.
func StartHook(lc fx.Lifecycle, g *Group, start func(ctx context.Context, c *Closers) error) {
	var c Closers
	stop := func(ctx context.Context) error {
		err := g.Stop(ctx)
		return errors.Join(err, c.Close())
	}
	lc.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			if err := start(ctx, &c); err != nil {
				return errors.Join(err, stop(ctx))
			}
			return nil
		},
		OnStop: stop,
	})
}

// WithGrace returns a context that outlives parent by grace: work in hand when a stop
// begins (a sink's batch) may finish within it; after that its I/O is cancelled. The wait
// runs in a goroutine of this package (context.AfterFunc), gone once cancel is called.
func WithGrace(parent context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	stop := context.AfterFunc(parent, func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-ctx.Done():
		}
	})
	return ctx, func() {
		stop()
		cancel()
	}
}
