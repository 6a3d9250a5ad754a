// Package lifecycle owns every goroutine logcap runs; it holds every `go` statement (and
// context.AfterFunc that waits) of the project. A component starts work with
// Group.Go(name, fn), and the group's Stop cancels the work, waits for it bounded by the
// stop context, and names what did not finish. A module ties its group and the resources
// its goroutines use to fx with StartHook, which also cleans up a start that failed
// part-way.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"strings"
	"sync"

	"go.uber.org/zap"
)

// ErrStopped is returned by Go once the group is stopping: nothing starts after Stop.
var ErrStopped = errors.New("lifecycle: group is stopping")

// Group is a set of named goroutines with one owner. The zero value is not usable; use New.
type Group struct {
	name   string
	log    *zap.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	stopping bool
	running  map[int]string
	nextID   int
	wg       sync.WaitGroup
	done     chan struct{} // closed when the count reaches zero after Stop began
	errs     []error
}

// New returns a group whose goroutines' context is derived from context.Background: a
// worker's context must not derive from fx's OnStart context, which carries the start timeout.
func New(name string, log *zap.Logger) *Group {
	ctx, cancel := context.WithCancel(context.Background())
	return &Group{name: name, log: log.Named(name), ctx: ctx, cancel: cancel, running: map[int]string{}}
}

// Go runs fn in a goroutine named name (by convention "<component>: <action>", e.g.
// "filemon: read /var/log/app.log"). fn must return when ctx is cancelled. A non-nil error
// other than a cancellation is logged; a panic is recovered, logged with its stack and kept
// as an error for Stop to return — input must never crash a long-running logcap.
func (g *Group) Go(name string, fn func(ctx context.Context) error) error {
	g.mu.Lock()
	if g.stopping {
		g.mu.Unlock()
		return fmt.Errorf("%s: start %q: %w", g.name, name, ErrStopped)
	}
	id := g.nextID
	g.nextID++
	g.running[id] = name
	g.wg.Add(1)
	g.mu.Unlock()

	go func() {
		defer g.wg.Done()
		defer func() {
			g.mu.Lock()
			delete(g.running, id)
			g.mu.Unlock()
		}()
		defer func() {
			if r := recover(); r != nil {
				err := fmt.Errorf("%s: %s: panic: %v", g.name, name, r)
				g.log.Error("goroutine panicked", zap.String("goroutine", name), zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
				g.addErr(err)
			}
		}()
		// A goroutine that stops because the group does (its context, or a child it starts
		// refused with ErrStopped) has not failed.
		if err := fn(g.ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, ErrStopped) {
			g.log.Error("goroutine failed", zap.String("goroutine", name), zap.Error(err))
			g.addErr(fmt.Errorf("%s: %s: %w", g.name, name, err))
		}
	}()
	return nil
}

func (g *Group) addErr(err error) {
	g.mu.Lock()
	g.errs = append(g.errs, err)
	g.mu.Unlock()
}

// Context is the context the group's goroutines get: done once Stop begins.
func (g *Group) Context() context.Context { return g.ctx }

// Running lists the names of the goroutines still running, sorted.
func (g *Group) Running() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, 0, len(g.running))
	for _, n := range g.running {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Stop refuses new goroutines, cancels the running ones and waits for them until ctx is
// done. If some are still running then, it returns an error naming them. Stop may be called
// more than once; later calls wait again.
func (g *Group) Stop(ctx context.Context) error {
	g.mu.Lock()
	if !g.stopping {
		g.stopping = true
		g.done = make(chan struct{})
		done := g.done
		g.mu.Unlock()
		g.cancel()
		go func() { g.wg.Wait(); close(done) }()
	} else {
		g.mu.Unlock()
	}
	select {
	case <-g.done:
	case <-ctx.Done():
		names := g.Running()
		if len(names) == 0 { // finished just now
			<-g.done
			break
		}
		return fmt.Errorf("%s: stop: %d goroutine(s) still running after %v: %s", g.name, len(names), ctx.Err(), strings.Join(names, "; "))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.errs...)
}
