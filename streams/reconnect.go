package streams

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/logcap/logcap/retry"
)

// Reconnects wakes a loop that retries a NATS request when the connection comes back, so
// that it does not sleep out a back-off that outlasted the outage (a file rotated every
// second cannot wait 5 s more). The zero value (no connection) only waits.
type Reconnects struct {
	nc *nats.Conn
	ch chan nats.Status
}

// WatchReconnects starts watching nc (nil: never wakes early). Call Stop when done.
func WatchReconnects(nc *nats.Conn) *Reconnects {
	r := &Reconnects{nc: nc}
	if nc != nil {
		r.ch = nc.StatusChanged(nats.CONNECTED)
	}
	return r
}

// Wait waits for d, ctx, or a reconnect, and reports whether a reconnect woke it.
func (r *Reconnects) Wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-r.ch:
		return true
	}
	return false
}

// Stop stops watching.
func (r *Reconnects) Stop() {
	if r.nc != nil {
		r.nc.RemoveStatusListener(r.ch)
	}
}

// UntilNATS runs op, a NATS request, until it succeeds or ctx is done: between failures it
// waits as p says, or less when nc reconnects (then the delays start over). onFirst is told
// of the first failure (for one log line). It returns nil, or op's last error once ctx is
// done.
func UntilNATS(ctx context.Context, nc *nats.Conn, p retry.Policy, op func() error, onFirst func(error)) error {
	var rc *Reconnects
	backoff := p.New()
	for {
		err := op()
		if err == nil || ctx.Err() != nil {
			return err
		}
		if rc == nil {
			onFirst(err)
			rc = WatchReconnects(nc)
			defer rc.Stop()
		}
		if rc.Wait(ctx, backoff.Next()) {
			backoff.Reset()
		}
		if ctx.Err() != nil {
			return err
		}
	}
}
