package dockermon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/logcap/logcap/retry"
	"github.com/logcap/logcap/streams"
)

// Spawner runs fn in a goroutine named name that has an owner (lifecycle.Group.Go); it
// returns an error, and does not run fn, once the owner is stopping.
type Spawner func(name string, fn func(ctx context.Context) error) error

// Config is one docker source.
type Config struct {
	Source string       // the source's name in the config file, for logs and metrics
	Host   string       // the node token in subjects
	Stream string       // the raw stream, LOGS
	Gate   streams.Gate // holds publishes back (memory_limit, when_full); nil: never
	Options
}

// Monitor discovers containers and follows each running one. Goroutines: one per followed
// container (its Follow) plus one for Run (events and reconcile), all started through the
// Spawner; the Docker client adds one for the events stream and net/http two per open
// connection (so three per followed container in all, measured by the churn test).
type Monitor struct {
	cfg     Config
	cli     *client.Client
	js      jetstream.JetStream
	spawn   Spawner
	log     *zap.Logger
	metrics *Metrics

	mu      sync.Mutex
	byID    map[string]*follow
	byName  map[string]*follow
	pending map[string]Target    // by id: to start once a follower for its id or name ends
	hints   map[string]*Position // by id: position of a renamed container's last follower
}

type follow struct {
	t       Target
	cancel  context.CancelFunc
	stopped bool // cancel asked before the goroutine ran
}

// New returns a monitor; Run starts it.
func New(cfg Config, cli *client.Client, js jetstream.JetStream, spawn Spawner, log *zap.Logger, metrics *Metrics) (*Monitor, error) {
	if err := cfg.Options.ApplyDefaults(); err != nil {
		return nil, fmt.Errorf("docker source %s: %w", cfg.Source, err)
	}
	if cfg.Stream == "" {
		cfg.Stream = "LOGS"
	}
	if metrics == nil {
		metrics, _ = NewMetrics(nil)
	}
	if spawn == nil {
		spawn = func(name string, _ func(context.Context) error) error {
			return fmt.Errorf("start %q: monitor has no spawner", name)
		}
	}
	return &Monitor{
		cfg: cfg, cli: cli, js: js, spawn: spawn, log: log.With(zap.String("source", cfg.Source)), metrics: metrics,
		byID: map[string]*follow{}, byName: map[string]*follow{}, pending: map[string]Target{}, hints: map[string]*Position{},
	}, nil
}

// Following lists the names of the containers followed now.
func (m *Monitor) Following() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.byName))
	for n := range m.byName {
		out = append(out, n)
	}
	return out
}

// Run follows the events stream and reconciles with the container list after every
// (re)connect and every reconcile_interval, until ctx is done. Errors reaching the daemon
// are retried with backoff, never returned.
func (m *Monitor) Run(ctx context.Context) error {
	backoff := streamRetry.New()
	var since time.Time
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			m.metrics.Reconnects.WithLabelValues(m.cfg.Source, "events").Inc()
		}
		started := time.Now()
		err := m.session(ctx, &since)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > time.Minute {
			backoff.Reset()
		}
		d := backoff.Next()
		m.log.Warn("docker events: reconnecting", zap.Error(err), zap.Duration("backoff", d))
		if !retry.Sleep(ctx, d) {
			return nil
		}
	}
}

// streamRetry spaces the reconnects of the events stream and of a container's log stream,
// and the reads of a resume position while NATS is away: 100ms doubling to 5s.
var streamRetry = retry.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

// eventsAnswerTimeout bounds the wait for the daemon to answer an events request (a
// variable for the tests).
var eventsAnswerTimeout = 30 * time.Second

// session is one connection to the events stream.
func (m *Monitor) session(ctx context.Context, since *time.Time) error {
	ectx, cancel := context.WithCancel(ctx)
	// Cancelling ends the client's event goroutine and closes the response body.
	defer cancel()
	opts := client.EventsListOptions{Filters: client.Filters{}.Add("type", string(events.ContainerEventType))}
	if !since.IsZero() {
		opts.Since = fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond())
	}
	// Events returns once the daemon has answered the request's headers. A daemon that
	// accepts and never answers (hung) would keep it, and the monitor, waiting in silence:
	// after eventsAnswerTimeout the request is cancelled, and Run logs and retries.
	noAnswer := time.AfterFunc(eventsAnswerTimeout, cancel)
	res := m.cli.Events(ectx, opts)
	if !noAnswer.Stop() {
		return fmt.Errorf("docker events: no answer from the daemon in %v", eventsAnswerTimeout)
	}
	// Subscribed first, then listed: a container that starts in between is in one or both.
	if err := m.Reconcile(ctx); err != nil {
		return err
	}
	tick := time.NewTicker(m.cfg.ReconcileInterval.D())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-res.Err:
			if err == nil {
				err = errors.New("events stream closed")
			}
			return fmt.Errorf("docker events: %w", err)
		case msg := <-res.Messages:
			if msg.TimeNano > 0 {
				*since = time.Unix(0, msg.TimeNano)
			}
			m.handle(ctx, msg)
		case <-tick.C:
			if err := m.Reconcile(ctx); err != nil {
				return err
			}
		}
	}
}

func (m *Monitor) handle(ctx context.Context, msg events.Message) {
	if msg.Type != events.ContainerEventType {
		return
	}
	m.metrics.Events.WithLabelValues(m.cfg.Source, string(msg.Action)).Inc()
	id := msg.Actor.ID
	switch msg.Action {
	case events.ActionStart, events.ActionRename:
		insp, err := m.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if cerrdefs.IsNotFound(err) {
			return // gone already: nothing left to read
		}
		if err != nil {
			m.log.Warn("inspect after event", zap.String("id", short(id)), zap.String("action", string(msg.Action)), zap.Error(err))
			return // the next reconcile repairs it
		}
		c := insp.Container
		t := Target{ID: c.ID, Name: name(c.Name)}
		if c.Config != nil {
			t.Image, t.Labels = c.Config.Image, c.Config.Labels
		}
		if msg.Action == events.ActionRename {
			m.rename(t)
		}
		m.consider(t)
	case events.ActionDestroy:
		m.mu.Lock()
		delete(m.pending, id)
		delete(m.hints, id)
		m.mu.Unlock()
	}
}

// Reconcile lists the running containers and follows those not followed yet: it repairs
// events the daemon dropped (it keeps 256) or that passed while the stream was down.
func (m *Monitor) Reconcile(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := m.cli.ContainerList(lctx, client.ContainerListOptions{})
	if err != nil {
		return fmt.Errorf("docker container list: %w", err)
	}
	for _, c := range res.Items {
		if len(c.Names) == 0 {
			continue
		}
		m.consider(Target{ID: c.ID, Name: name(c.Names[0]), Image: c.Image, Labels: c.Labels})
	}
	return nil
}

// rename stops the follower of a container whose name changed; its position goes to the
// follower under the new name, which starts when the old one has ended.
func (m *Monitor) rename(t Target) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f := m.byID[t.ID]; f != nil && f.t.Name != t.Name {
		f.stopped = true
		if f.cancel != nil {
			f.cancel()
		}
	}
}

// consider starts following t unless it is filtered out or followed already. One subject
// has one writer: a container whose name (or id) still has a follower waits for it to end.
func (m *Monitor) consider(t Target) {
	if !m.cfg.match(t) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if f := m.byID[t.ID]; f != nil {
		if f.t.Name != t.Name {
			m.pending[t.ID] = t
		}
		return
	}
	if m.byName[t.Name] != nil {
		m.pending[t.ID] = t
		return
	}
	m.startLocked(t)
}

func (m *Monitor) startLocked(t Target) {
	delete(m.pending, t.ID)
	f := &follow{t: t}
	m.byID[t.ID], m.byName[t.Name] = f, f
	hint := m.hints[t.ID]
	delete(m.hints, t.ID)
	err := m.spawn("dockermon: follow "+t.Name, func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		m.mu.Lock()
		f.cancel = cancel
		if f.stopped {
			cancel()
		}
		m.mu.Unlock()
		m.metrics.Followed.WithLabelValues(m.cfg.Source).Inc()
		pos, err := m.Follow(ctx, t, hint)
		m.metrics.Followed.WithLabelValues(m.cfg.Source).Dec()
		m.ended(f, pos)
		if f.stopped && errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	})
	if err != nil {
		delete(m.byID, t.ID)
		delete(m.byName, t.Name)
	}
}

// ended forgets a follower and starts what waited for it.
func (m *Monitor) ended(f *follow, pos Position) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.byID, f.t.ID)
	delete(m.byName, f.t.Name)
	if f.stopped && !pos.IsZero() {
		m.hints[f.t.ID] = &pos
	}
	if t, ok := m.pending[f.t.ID]; ok && m.byName[t.Name] == nil {
		m.startLocked(t)
	}
	for id, t := range m.pending {
		if t.Name == f.t.Name && m.byID[id] == nil && m.byName[t.Name] == nil {
			m.startLocked(t)
		}
	}
	m.metrics.Lines.DeleteLabelValues(m.cfg.Source, f.t.Name)
	m.metrics.Bytes.DeleteLabelValues(m.cfg.Source, f.t.Name)
}
