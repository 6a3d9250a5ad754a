package replay

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/logcap/logcap/delivery"
	"github.com/logcap/logcap/retry"
	"github.com/logcap/logcap/sinks"
	"github.com/logcap/logcap/streams"
)

// RawOutput writes every message's payload as stored: for LOGS the source's bytes (a
// file's lines, or `docker logs --timestamps` lines), for a derived stream its NDJSON. A
// derived chunk stored as lines+json (streams.FormatLinesJSON, its two halves no one
// reads as they stand) is written as the NDJSON of its entries, as logcap stored derived
// chunks before lines+json.
type RawOutput struct {
	w   *bufio.Writer
	buf []byte
}

// NewRawOutput writes to w; Flush flushes its buffer (it does not fsync or close w).
func NewRawOutput(w io.Writer) *RawOutput { return &RawOutput{w: bufio.NewWriterSize(w, 256<<10)} }

func (o *RawOutput) Add(_ context.Context, m Msg) (int, error) {
	data := m.Data
	if m.Header.Get(streams.HdrFormat) == streams.FormatLinesJSON {
		es, err := streams.Entries(m.Subject, m.Header, m.Data)
		if err != nil {
			return 0, fmt.Errorf("%s seq %d: %w", m.Stream, m.Seq, err)
		}
		o.buf = o.buf[:0]
		for i := range es {
			if o.buf, err = streams.AppendNDJSON(o.buf, &es[i]); err != nil {
				return 0, fmt.Errorf("%s seq %d: %w", m.Stream, m.Seq, err)
			}
		}
		data = o.buf
	}
	if _, err := o.w.Write(data); err != nil {
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

// SinkOutput writes records to a sink in batches through the delivery engine (the one the
// pipeline's sinks use): transient errors are retried with back-off or after the
// destination's Retry-After, a partial failure retries only the failed records. A permanent
// error, or a transient one that outlasts MaxAttempts, ends the replay: a replay is run by a
// person who should see it, not a dead-letter stream (delivery.Stage.FailFast).
type SinkOutput struct {
	Sink sinks.Sink
	Name string
	// MaxEntries and MaxBytes bound a batch (defaults 1000 and 4 MiB); MaxEntries also bounds
	// every Write, when one message holds more entries than that.
	MaxEntries, MaxBytes int
	// MaxAttempts bounds the writes of one batch (default 8: about a minute of backoff).
	MaxAttempts int
	// BackoffBase and BackoffMax shape the retry delays (defaults 200ms and 10s).
	BackoffBase, BackoffMax time.Duration
	// OnRetry, if set, is told about every failed attempt that will be retried.
	OnRetry func(attempt int, err error, wait time.Duration)

	batch delivery.Batch
	bytes int
}

func (o *SinkOutput) Add(ctx context.Context, m Msg) (int, error) {
	n, err := o.batch.Add(&delivery.Msg{Stream: m.Stream, Subject: m.Subject, Header: m.Header, Data: m.Data, Seq: m.Seq, Time: m.Time})
	if err != nil {
		return 0, err
	}
	o.bytes += len(m.Data)
	if o.batch.Len() >= cmp0(o.MaxEntries, 1000) || o.bytes >= cmp0(o.MaxBytes, 4<<20) {
		if err := o.Flush(ctx); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func (o *SinkOutput) Flush(ctx context.Context) error {
	if o.batch.Len() == 0 {
		return nil
	}
	stage := delivery.Stage{
		Name: o.Name, Obs: onRetry(o.OnRetry), MaxDeliver: cmp0(o.MaxAttempts, 8), FailFast: true, MaxEntries: cmp0(o.MaxEntries, 1000),
		Retry: retry.Policy{Initial: cmpD(o.BackoffBase, 200*time.Millisecond), Max: cmpD(o.BackoffMax, 10*time.Second), Jitter: retry.Full},
	}
	err := stage.Deliver(ctx, ctx, o.Sink, &o.batch)
	o.batch.Reset()
	o.bytes = 0
	return err
}

// onRetry tells a SinkOutput's OnRetry about the engine's retries.
type onRetry func(attempt int, err error, wait time.Duration)

func (f onRetry) Retrying(attempt int, wait time.Duration, err error) {
	if f != nil {
		f(attempt, err, wait)
	}
}
func (onRetry) Fetched(uint64)                {}
func (onRetry) Wrote(int, int, time.Duration) {}
func (onRetry) Healthy(bool)                  {}
func (onRetry) DeadLettered()                 {}

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
