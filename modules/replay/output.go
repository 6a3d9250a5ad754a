package replay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/logcap/logcap/sinks"
)

// RawOutput writes every message's payload exactly as stored: for LOGS the source's bytes
// (a file's lines, or `docker logs --timestamps` lines), for a derived stream its NDJSON.
type RawOutput struct {
	w *bufio.Writer
}

// NewRawOutput writes to w; Flush flushes its buffer (it does not fsync or close w).
func NewRawOutput(w io.Writer) *RawOutput { return &RawOutput{w: bufio.NewWriterSize(w, 256<<10)} }

func (o *RawOutput) Add(_ context.Context, m Msg) (int, error) {
	if _, err := o.w.Write(m.Data); err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	return countEntries(m), nil
}

func (o *RawOutput) Flush(context.Context) error {
	if err := o.w.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// SinkOutput writes records to a sink in batches, retrying transient errors with
// sinks.Backoff. A permanent error, or a transient one that outlasts MaxAttempts, ends the
// replay: a replay is run by a person who should see it, not a dead-letter stream.
type SinkOutput struct {
	Sink sinks.Sink
	Name string
	// MaxEntries and MaxBytes bound a batch (defaults 1000 and 4 MiB).
	MaxEntries, MaxBytes int
	// MaxAttempts bounds the writes of one batch (default 8: about a minute of backoff).
	MaxAttempts int
	// BackoffBase and BackoffMax shape the retry delays (defaults 200ms and 10s).
	BackoffBase, BackoffMax time.Duration
	// OnRetry, if set, is told about every failed attempt that will be retried.
	OnRetry func(attempt int, err error, wait time.Duration)

	batch []sinks.Record
	bytes int
}

func (o *SinkOutput) Add(ctx context.Context, m Msg) (int, error) {
	recs, err := Records(m)
	if err != nil {
		return 0, err
	}
	o.batch = append(o.batch, recs...)
	o.bytes += len(m.Data)
	if len(o.batch) >= cmp0(o.MaxEntries, 1000) || o.bytes >= cmp0(o.MaxBytes, 4<<20) {
		if err := o.Flush(ctx); err != nil {
			return 0, err
		}
	}
	return len(recs), nil
}

func (o *SinkOutput) Flush(ctx context.Context) error {
	if len(o.batch) == 0 {
		return nil
	}
	batch := o.batch
	for attempt := 0; ; attempt++ {
		err := o.Sink.Write(ctx, batch)
		if err == nil {
			o.batch, o.bytes = o.batch[:0], 0
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("sink %s: %w", o.Name, err)
		}
		var pe *sinks.PartialError
		if errors.As(err, &pe) {
			// Retry only what failed; a permanent failure of any record ends the replay.
			var retry []sinks.Record
			for _, i := range slices.Sorted(maps.Keys(pe.Failed)) {
				if errors.Is(pe.Failed[i], sinks.ErrPermanent) {
					return fmt.Errorf("sink %s: record %s: %w", o.Name, batch[i].ID(), pe.Failed[i])
				}
				retry = append(retry, batch[i])
			}
			batch = retry
			if len(batch) == 0 {
				o.batch, o.bytes = o.batch[:0], 0
				return nil
			}
		} else if errors.Is(err, sinks.ErrPermanent) {
			return fmt.Errorf("sink %s: %w", o.Name, err)
		}
		if attempt+1 >= cmp0(o.MaxAttempts, 8) {
			return fmt.Errorf("sink %s: giving up after %d attempts: %w", o.Name, attempt+1, err)
		}
		wait := sinks.Backoff(attempt, cmpD(o.BackoffBase, 200*time.Millisecond), cmpD(o.BackoffMax, 10*time.Second))
		if o.OnRetry != nil {
			o.OnRetry(attempt+1, err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("sink %s: %w (last error: %w)", o.Name, ctx.Err(), err)
		case <-t.C:
		}
	}
}

func cmp0(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func cmpD(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}
