// Package retention keeps LOGS' limits from deleting what a durable consumer has not acked
// yet. LOGS uses limits retention: when max_bytes (or max_msgs) is reached, JetStream
// discards the oldest messages, delivered or not. With `streams.logs.when_full: block` (the
// default: a file is its own buffer, Docker keeps its json-file log) the guard holds the
// sources' publishes back while the stream is nearly full and the oldest unacked message of
// a durable consumer is among the oldest tenth; `drop_oldest` keeps capturing. In both modes
// every message discarded before a durable consumer acked it is counted, logged and reported
// by /readyz.
//
// Measured before this guard: max_bytes 8MiB, an http sink down for 25 s, 440,000 lines:
// 358,722 discarded before any sink had them, /readyz ready, no log line, no metric.
package retention

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Mode is what happens when the stream is full.
type Mode string

const (
	// Block holds the sources back rather than let limits discard unacked messages.
	Block Mode = "block"
	// DropOldest keeps capturing; discarded unacked messages are counted.
	DropOldest Mode = "drop_oldest"
)

// Thresholds of the block decision: hold when the stream is at least fullAt of a limit and
// the oldest unacked message of a durable consumer is within the oldest dangerAt of it.
const (
	fullAt   = 0.90
	dangerAt = 0.10
	// reportFor is how long /readyz reports a discard after it happened.
	reportFor = 5 * time.Minute
)

// State is what a decision needs: the stream's limits and state, and each durable
// consumer's ack floor (the stream sequence below which it has acked everything).
type State struct {
	MaxBytes, MaxMsgs int64
	MaxMsgSize        int32
	Bytes, Msgs       uint64
	FirstSeq, LastSeq uint64
	AckFloors         map[string]uint64 // durable consumer → ack floor (stream sequence)
}

// Decide reports whether the sources must wait, and why (the consumer furthest behind).
func Decide(s State) (hold bool, why string) {
	full := s.MaxBytes > 0 && float64(s.Bytes) >= fullAt*float64(s.MaxBytes) ||
		s.MaxMsgs > 0 && float64(s.Msgs) >= fullAt*float64(s.MaxMsgs)
	if !full || s.Msgs == 0 {
		return false, ""
	}
	var slowest string
	floor := s.LastSeq
	for name, f := range s.AckFloors {
		if f < floor {
			slowest, floor = name, f
		}
	}
	if slowest == "" {
		return false, "" // every durable consumer has acked everything
	}
	oldestUnacked := max(floor+1, s.FirstSeq)
	if float64(oldestUnacked-s.FirstSeq) >= dangerAt*float64(s.Msgs) {
		return false, ""
	}
	return true, fmt.Sprintf("stream is %.0f%% full and consumer %s has not acked sequence %d (first %d, last %d)",
		100*fullRatio(s), slowest, oldestUnacked, s.FirstSeq, s.LastSeq)
}

func fullRatio(s State) float64 {
	r := 0.0
	if s.MaxBytes > 0 {
		r = float64(s.Bytes) / float64(s.MaxBytes)
	}
	if s.MaxMsgs > 0 {
		r = max(r, float64(s.Msgs)/float64(s.MaxMsgs))
	}
	return r
}

// Guard watches one stream. It is a gate for the sources' publishers (Wait), and it counts
// what limits discarded before a durable consumer acked it. It starts no goroutine: the
// module runs Run.
type Guard struct {
	stream string
	mode   Mode
	log    *zap.Logger
	met    metrics

	refreshMu sync.Mutex // one look at the stream at a time

	mu        sync.Mutex
	js        jetstream.JetStream // nil until Run
	held      chan struct{}       // open while the sources are held; nil when not
	heldSince time.Time
	why       string
	allowance int               // publishes that may go before the next look
	counted   map[string]uint64 // consumer → discards counted up to this sequence
	lost      uint64
	lastLoss  string
	lostAt    time.Time
}

type metrics struct {
	discarded *prometheus.CounterVec
	held      prometheus.Gauge
	heldSecs  prometheus.Counter
	full      prometheus.Gauge
}

// NewGuard returns a guard of stream in mode; its metrics are registered on reg.
func NewGuard(stream string, mode Mode, reg prometheus.Registerer, log *zap.Logger) (*Guard, error) {
	g := &Guard{stream: stream, mode: mode, log: log.With(zap.String("stream", stream)), counted: map[string]uint64{}}
	g.met = metrics{
		discarded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logcap_stream_discarded_unacked_total",
			Help: "Messages the stream's limits discarded before a durable consumer acked them."}, []string{"stream", "consumer"}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logcap_stream_sources_held",
			Help: "1 while the sources are held back because the stream is nearly full of unacked messages (when_full: block).", ConstLabels: prometheus.Labels{"stream": stream}}),
		heldSecs: prometheus.NewCounter(prometheus.CounterOpts{Name: "logcap_stream_sources_held_seconds_total",
			Help: "Time the sources were held back by when_full: block.", ConstLabels: prometheus.Labels{"stream": stream}}),
		full: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logcap_stream_full_ratio",
			Help: "The stream's bytes (or messages) over its limit, the larger.", ConstLabels: prometheus.Labels{"stream": stream}}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{g.met.discarded, g.met.held, g.met.heldSecs, g.met.full} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("retention metrics: %w", err)
			}
		}
	}
	return g, nil
}

// Wait lets a publish through, or holds it while the stream is nearly full of what a
// durable consumer has not acked (when_full: block). It looks at the stream again whenever
// the publishes let through since the last look could have filled what was left (a file read
// at 240 MB/s fills a small stream between two looks a second apart), and every
// heldRecheck while it holds. A nil guard, drop_oldest, and a guard not running yet never
// wait.
func (g *Guard) Wait(ctx context.Context) error {
	if g == nil || g.mode != Block {
		return nil
	}
	for {
		g.mu.Lock()
		held, js := g.held, g.js
		if js == nil || held == nil && g.allowance > 0 {
			g.allowance--
			g.mu.Unlock()
			return nil
		}
		g.mu.Unlock()
		if held == nil {
			g.refresh(ctx)
			continue
		}
		t := time.NewTimer(heldRecheck)
		select {
		case <-held:
		case <-t.C:
			g.refresh(ctx)
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}

// heldRecheck is how often held publishes look at the stream again.
const heldRecheck = 250 * time.Millisecond

// NotReady is "" unless the sources are held, or a discard happened within reportFor.
func (g *Guard) NotReady() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.held != nil:
		return fmt.Sprintf("stream %s: sources held (when_full: block): %s", g.stream, g.why)
	case g.lost > 0 && time.Since(g.lostAt) < reportFor:
		return fmt.Sprintf("stream %s: %d messages discarded by its limits before a consumer acked them, last %s ago: %s",
			g.stream, g.lost, time.Since(g.lostAt).Round(time.Second), g.lastLoss)
	}
	return ""
}

// Run checks the stream through js every interval until ctx is done (counting discards even
// while nothing is published), then releases the sources.
func (g *Guard) Run(ctx context.Context, js jetstream.JetStream, interval time.Duration) error {
	g.mu.Lock()
	g.js = js
	g.mu.Unlock()
	defer g.setHold(false, "")
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		g.refresh(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// refresh reads the stream's state, counts discards, decides whether to hold, and sets how
// many publishes may go before the next look. One refresh at a time; a caller that finds one
// running waits for it and uses its result.
func (g *Guard) refresh(ctx context.Context) {
	g.refreshMu.Lock()
	defer g.refreshMu.Unlock()
	s, err := g.state(ctx)
	if err != nil {
		if ctx.Err() == nil {
			g.log.Debug("retention: stream state not read", zap.Error(err))
		}
		g.mu.Lock()
		g.allowance = errAllowance // NATS away: the publishes fail on their own
		g.mu.Unlock()
		return
	}
	g.count(s)
	hold, why := Decide(s)
	if g.mode != Block {
		hold = false
	}
	g.met.full.Set(fullRatio(s))
	g.setHold(hold, why)
	g.mu.Lock()
	g.allowance = allowance(s)
	g.mu.Unlock()
}

// errAllowance is how many publishes go through after the stream state could not be read.
const errAllowance = 16

// allowance is how many publishes cannot fill the stream to the hold threshold: the room
// left divided by the largest message the stream takes; at least one (a stream near the
// threshold is looked at before every publish).
func allowance(s State) int {
	room := int64(1) << 62
	if s.MaxBytes > 0 {
		room = int64(fullAt*float64(s.MaxBytes)) - int64(s.Bytes)
		if s.MaxMsgSize > 0 {
			room /= int64(s.MaxMsgSize)
		}
	}
	if s.MaxMsgs > 0 {
		room = min(room, int64(fullAt*float64(s.MaxMsgs))-int64(s.Msgs))
	}
	return int(max(room, 1)) // at least the next publish: then look again
}

func (g *Guard) setHold(hold bool, why string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case hold && g.held == nil:
		g.held, g.why, g.heldSince = make(chan struct{}), why, time.Now()
		g.met.held.Set(1)
		g.log.Warn("retention: sources held back until consumers catch up (when_full: block)", zap.String("why", why))
	case hold:
		g.why = why
	case g.held != nil:
		close(g.held)
		g.held, g.why = nil, ""
		g.met.held.Set(0)
		g.met.heldSecs.Add(time.Since(g.heldSince).Seconds())
		g.log.Info("retention: sources released")
	}
}

// count adds what the stream discarded below a durable consumer's ack floor since the last
// look: the messages between the floor and the stream's first sequence were deleted unacked.
func (g *Guard) count(s State) {
	for name, floor := range s.AckFloors {
		// A consumer starts with its ack floor at the stream's first sequence - 1 (nats-server
		// sets it so when it is created): a floor further below means messages it had not
		// acked were deleted. counted avoids counting them twice.
		g.mu.Lock()
		from := max(floor, g.counted[name])
		g.mu.Unlock()
		if s.FirstSeq <= from+1 {
			continue
		}
		n := s.FirstSeq - 1 - from
		g.met.discarded.WithLabelValues(g.stream, name).Add(float64(n))
		msg := fmt.Sprintf("sequences %d to %d discarded before consumer %s acked them", from+1, s.FirstSeq-1, name)
		g.log.Error("retention: messages lost to the stream's limits", zap.String("consumer", name),
			zap.Uint64("messages", n), zap.Uint64("from_seq", from+1), zap.Uint64("to_seq", s.FirstSeq-1), zap.String("when_full", string(g.mode)))
		g.mu.Lock()
		g.counted[name] = s.FirstSeq - 1
		g.lost += n
		g.lastLoss, g.lostAt = msg, time.Now()
		g.mu.Unlock()
	}
}

// state reads the stream's limits and state and its durable consumers' ack floors.
func (g *Guard) state(ctx context.Context) (State, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	g.mu.Lock()
	js := g.js
	g.mu.Unlock()
	st, err := js.Stream(ctx, g.stream)
	if err != nil {
		return State{}, fmt.Errorf("stream %s: %w", g.stream, err)
	}
	info := st.CachedInfo()
	s := State{MaxBytes: info.Config.MaxBytes, MaxMsgs: info.Config.MaxMsgs, MaxMsgSize: info.Config.MaxMsgSize, Bytes: info.State.Bytes, Msgs: info.State.Msgs,
		FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq, AckFloors: map[string]uint64{}}
	lister := st.ListConsumers(ctx)
	for ci := range lister.Info() {
		if ci.Config.Durable == "" {
			continue // ephemeral: replay, nats sub --stream; they read what is there
		}
		s.AckFloors[ci.Name] = ci.AckFloor.Stream
	}
	if err := lister.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return State{}, fmt.Errorf("stream %s: consumers: %w", g.stream, err)
	}
	return s, nil
}
