// Package retry is logcap's one back-off: every loop that retries something (a publish, a
// Docker stream, stream provisioning, a sink's batch, a fetch) waits through it, so the
// delays have one definition and one test. It starts no goroutine: Wait blocks until the
// delay is over or the context is done.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Jitter says how a delay is randomised.
type Jitter int

const (
	// None waits the exponential delay itself: one loop alone (a source's publisher, a
	// container's stream), where lockstep with others is no concern.
	None Jitter = iota
	// Full waits uniformly in [0, d]: many sinks or consumers failing together do not
	// retry in lockstep.
	Full
	// Equal waits d/2 plus uniformly up to d/2: never less than half the delay, spread
	// enough that many agents do not stampede a recovering NATS cluster.
	Equal
)

// Policy is an exponential back-off: Initial before the first retry, doubled per attempt,
// capped at Max, randomised by Jitter. The zero Policy never waits.
type Policy struct {
	Initial, Max time.Duration
	Jitter       Jitter
}

// Delay is the wait before retry number attempt (0 for the first retry).
func (p Policy) Delay(attempt int) time.Duration {
	if p.Initial <= 0 || p.Max <= 0 {
		return 0
	}
	attempt = max(attempt, 0)
	d := p.Max
	// Shifting by 62 or more overflows int64; by then the cap has long been reached.
	if attempt < 62 {
		if s := p.Initial << attempt; s > 0 && s>>attempt == p.Initial && s < p.Max {
			d = s
		}
	}
	switch p.Jitter {
	case Full:
		return time.Duration(rand.Int64N(int64(d) + 1))
	case Equal:
		return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	}
	return d
}

// Sleep waits d, or until ctx is done; false means ctx is done.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Backoff is one retry loop's state: how many times it has waited since the last Reset.
type Backoff struct {
	Policy
	attempt int
}

// New starts a retry loop under p.
func (p Policy) New() *Backoff { return &Backoff{Policy: p} }

// Wait waits the next delay; false means ctx is done.
func (b *Backoff) Wait(ctx context.Context) bool {
	d := b.Delay(b.attempt)
	b.attempt++
	return Sleep(ctx, d)
}

// Next returns the next delay without waiting it (for a caller that waits otherwise, e.g.
// probing a destination meanwhile) and counts the attempt.
func (b *Backoff) Next() time.Duration {
	d := b.Delay(b.attempt)
	b.attempt++
	return d
}

// Attempts is the number of waits since the last Reset.
func (b *Backoff) Attempts() int { return b.attempt }

// Reset starts the delays again from Initial: the thing retried has worked.
func (b *Backoff) Reset() { b.attempt = 0 }

// Until calls fn until it succeeds or ctx is done, waiting between failures; each call gets
// a context bounded by attemptTimeout (0: none). onErr, if set, is told of every failure
// before the wait. It returns nil, or ctx's error once ctx is done.
func (p Policy) Until(ctx context.Context, attemptTimeout time.Duration, fn func(ctx context.Context) error, onErr func(attempt int, err error)) error {
	b := p.New()
	for {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if attemptTimeout > 0 {
			actx, cancel = context.WithTimeout(ctx, attemptTimeout)
		}
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if onErr != nil {
			onErr(b.Attempts(), err)
		}
		if !b.Wait(ctx) {
			return ctx.Err()
		}
	}
}
