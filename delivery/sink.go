package delivery

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/logcap/logcap/retry"
	"github.com/logcap/logcap/sinks"
	"github.com/logcap/logcap/streams"
)

const (
	// checkTimeout bounds one health probe of a destination that is down.
	checkTimeout = 5 * time.Second
	// maxProbeInterval caps the spacing of the probes of a destination that is down,
	// whatever the sink's backoff cap (30 s by default): delivery resumes within about
	// 3 s of its return (with the default 500 ms initial backoff: ≤ 3.25 s between
	// probes), at the cost of one cheap request every 1.5–3 s while it is down.
	maxProbeInterval = 3 * time.Second
	// downLogInterval spaces the warnings while a destination stays down.
	downLogInterval = 30 * time.Second
)

// ProbeObserver, when the Observer implements it, is told about every failed probe of a
// destination that is down, with how long it has been down (a metric, e.g.).
type ProbeObserver interface {
	ProbeFailed(downFor time.Duration)
}

// Batch is a sink's batch in hand: its messages, their records, and what is still to write.
type Batch struct {
	msgs    []*Msg
	recs    []sinks.Record
	owner   []int // record → message
	left    []int // per message: records not yet accepted
	settled []bool
	// noFields: records of derived chunks come without Fields (Stage.NoFields).
	noFields bool
}

// Records decodes a message into sink records (streams.EntriesRaw): Stream, Seq and Index
// from where it is stored, so a record's ID is the same whether a sink got it live or from
// a replay; Raw the entry's original bytes for raw chunks.
func Records(m *Msg) ([]sinks.Record, error) {
	var b Batch
	if _, err := b.Add(m); err != nil {
		return nil, err
	}
	return b.recs, nil
}

// Add decodes m and adds its records; it returns how many. A message that cannot be
// decoded is not added.
func (b *Batch) Add(m *Msg) (int, error) {
	decode := streams.EntriesRaw
	if b.noFields {
		decode = streams.EntriesRawNoFields
	}
	ents, raws, err := decode(m.Subject, m.Header, m.Data)
	if err != nil {
		return 0, fmt.Errorf("%s seq %d: decode: %w", m.Stream, m.Seq, err)
	}
	mi := len(b.msgs)
	b.msgs, b.left, b.settled = append(b.msgs, m), append(b.left, len(ents)), append(b.settled, false)
	var id string
	if v := m.Header[streams.HdrMsgID]; len(v) > 0 {
		id = v[0]
	}
	for j := range ents {
		rec := sinks.Record{Entry: ents[j], Stream: m.Stream, Seq: m.Seq, Index: j, MsgID: id, Header: m.Header}
		if raws != nil {
			rec.Raw = raws[j]
		}
		b.recs = append(b.recs, rec)
		b.owner = append(b.owner, mi)
	}
	return len(ents), nil
}

// Len is the number of records in the batch.
func (b *Batch) Len() int { return len(b.recs) }

// Reset empties the batch, keeping its memory.
func (b *Batch) Reset() {
	b.msgs, b.recs, b.owner, b.left, b.settled = b.msgs[:0], b.recs[:0], b.owner[:0], b.left[:0], b.settled[:0]
}

// NewBatch decodes fetched messages into a batch; one that cannot be decoded goes to dead
// letters at once.
func (s *Stage) NewBatch(ctx context.Context, msgs []*Msg) *Batch {
	// Sized from the chunks' line counts: growing a slice of ~5,000 records per 1 MiB chunk
	// by doubling was a quarter of the allocations of the file → file benchmark.
	n := 0
	for _, m := range msgs {
		if v := m.Header[streams.HdrLines]; len(v) > 0 {
			if l, err := strconv.Atoi(v[0]); err == nil && l > 0 {
				n += l
			}
		}
	}
	b := &Batch{msgs: make([]*Msg, 0, len(msgs)), recs: make([]sinks.Record, 0, n), owner: make([]int, 0, n), noFields: s.NoFields}
	for _, m := range msgs {
		if _, err := b.Add(m); err != nil {
			_ = s.DeadLetter(ctx, m, err)
		}
	}
	return b
}

// Deliver writes the batch in hand to sink until every message is acked or dead-lettered,
// or stop is done. It does not fetch meanwhile: while the destination is down, messages
// wait in the stream and memory holds one batch. Writes and dead letters run under ctx,
// which outlives stop by the grace period (lifecycle.WithGrace). The error says that a stop
// had to cut a write still in progress after the grace period (a destination that does not
// answer): the stop was not clean, and the user must learn which sink hung. With FailFast,
// a permanent failure, the last failed attempt or a stop ends Deliver with an error.
func (s *Stage) Deliver(stop, ctx context.Context, sink sinks.Sink, b *Batch) error {
	todo := make([]int, len(b.recs))
	for i := range todo {
		todo[i] = i
	}
	b.ackDone()
	for attempt := 0; ; {
		retryRecs, lastErr, waitHint, err := s.writeAll(ctx, sink, b, todo)
		if err != nil {
			return err
		}
		b.ackDone()
		todo = todo[:0]
		for _, ri := range retryRecs {
			if !b.settled[b.owner[ri]] {
				todo = append(todo, ri)
			}
		}
		if len(todo) == 0 {
			s.obs().Healthy(true)
			return nil
		}
		if ctx.Err() != nil {
			return s.cut(b, lastErr)
		}
		attempt++
		if attempt >= s.MaxDeliver {
			return s.giveUp(ctx, b, attempt, lastErr)
		}
		delay := s.Retry.Delay(attempt - 1)
		if waitHint > 0 {
			delay = waitHint
		}
		s.obs().Retrying(attempt, delay, lastErr)
		s.obs().Healthy(false)
		s.log().Warn("write failed; retrying the batch in hand", zap.Int("attempt", attempt), zap.Int("records", len(todo)),
			zap.Duration("in", delay), zap.Error(lastErr))
		if s.FailFast {
			if !retry.Sleep(stop, delay) {
				return fmt.Errorf("sink %s: %w (last error: %w)", s.Name, stop.Err(), lastErr)
			}
		} else if !s.waitHealthy(stop, sink, b, delay) {
			// Stopped during an outage that was already logged: a clean stop.
			b.nakHeld()
			return nil
		}
	}
}

// writeAll writes the records todo in parts of MaxEntries and sorts the failures: accepted
// records count down their message, a permanent failure dead-letters its message, the
// others are returned to retry with the last error and the longest Retry-After asked for.
// Once ctx is done, the parts not written yet are returned to retry.
func (s *Stage) writeAll(ctx context.Context, sink sinks.Sink, b *Batch, todo []int) (retryRecs []int, lastErr error, waitHint time.Duration, err error) {
	part := s.MaxEntries
	if part <= 0 {
		part = max(len(todo), 1)
	}
	for start := 0; start < len(todo); start += part {
		recs := todo[start:min(start+part, len(todo))]
		failed, werr := s.write(ctx, sink, b, recs)
		if werr != nil {
			lastErr = werr
			waitHint = max(waitHint, retryAfter(werr))
		}
		for k, ri := range recs {
			ferr, bad := failed[k]
			mi := b.owner[ri]
			switch {
			case b.settled[mi]:
			case !bad:
				b.left[mi]--
			case errors.Is(ferr, sinks.ErrPermanent):
				b.settled[mi] = true
				if s.FailFast {
					return nil, nil, 0, fmt.Errorf("sink %s: record %s: %w", s.Name, b.recs[ri].ID(), ferr)
				}
				_ = s.DeadLetter(ctx, b.msgs[mi], ferr)
			default:
				retryRecs = append(retryRecs, ri)
				waitHint = max(waitHint, retryAfter(ferr))
				lastErr = ferr
			}
		}
		if ctx.Err() != nil {
			retryRecs = append(retryRecs, todo[min(start+part, len(todo)):]...)
			break
		}
	}
	return retryRecs, lastErr, waitHint, nil
}

func retryAfter(err error) time.Duration {
	var ra *sinks.RetryAfterError
	if errors.As(err, &ra) {
		return ra.After
	}
	return 0
}

// write sends the records todo (indexes into b.recs) in one Write and returns the failed
// ones by their position in todo. A whole-batch error fails every record with it.
func (s *Stage) write(ctx context.Context, sink sinks.Sink, b *Batch, todo []int) (map[int]error, error) {
	var recs []sinks.Record
	if len(todo) > 0 && todo[len(todo)-1]-todo[0] == len(todo)-1 {
		// todo is a run of b.recs (always on a first attempt: it is in order, without
		// gaps): no copy. A sink does not keep the slice beyond Write.
		recs = b.recs[todo[0] : todo[0]+len(todo)]
	} else {
		recs = make([]sinks.Record, len(todo))
		for k, ri := range todo {
			recs[k] = b.recs[ri]
		}
	}
	began := time.Now()
	err := sink.Write(ctx, recs)
	took := time.Since(began)
	failed := map[int]error{}
	var partial *sinks.PartialError
	switch {
	case err == nil:
	case errors.As(err, &partial):
		for k, e := range partial.Failed {
			if k >= 0 && k < len(recs) {
				failed[k] = e
			}
		}
	default:
		for k := range recs {
			failed[k] = err
		}
	}
	n, bytes := 0, 0
	for k := range recs {
		if _, bad := failed[k]; !bad {
			n++
			bytes += len(recs[k].Message)
		}
	}
	s.obs().Wrote(n, bytes, took)
	return failed, err
}

// giveUp dead-letters the messages still held after the last attempt (with FailFast: says so).
func (s *Stage) giveUp(ctx context.Context, b *Batch, attempts int, lastErr error) error {
	cause := fmt.Errorf("sink %s: gave up after %d attempts: %w", s.Name, attempts, lastErr)
	if s.FailFast {
		return cause
	}
	for mi, m := range b.msgs {
		if !b.settled[mi] && b.left[mi] > 0 {
			b.settled[mi] = true
			_ = s.DeadLetter(ctx, m, cause)
		}
	}
	return nil
}

// ackDone acks every message whose records were all accepted.
func (b *Batch) ackDone() {
	for mi, m := range b.msgs {
		if !b.settled[mi] && b.left[mi] == 0 {
			b.settled[mi] = true
			m.ack()
		}
	}
}

// nakHeld hands every message not settled yet back for redelivery at once.
func (b *Batch) nakHeld() (held int, nakErr error) {
	for mi, m := range b.msgs {
		if !b.settled[mi] {
			b.settled[mi] = true
			held++
			if err := m.nak(0); err != nil && nakErr == nil {
				nakErr = err
			}
		}
	}
	return held, nakErr
}

// cut hands back the messages of a write the stop cancelled and says so. The write's error
// is formatted, not wrapped: it holds context.Canceled, and the lifecycle group drops
// cancellations as clean.
func (s *Stage) cut(b *Batch, writeErr error) error {
	if s.FailFast {
		return fmt.Errorf("sink %s: %w", s.Name, writeErr)
	}
	held, nakErr := b.nakHeld()
	back := fmt.Sprintf("%d message(s) handed back for redelivery", held)
	if nakErr != nil {
		back = fmt.Sprintf("%d message(s) not acked (nak: %v): JetStream redelivers them after ack_wait %v", held, nakErr, s.AckWait)
	}
	return fmt.Errorf("%s sink %s: stop: write unanswered after the %v grace period, cancelled (%v); %s",
		s.Type, s.Name, s.Grace.Round(time.Millisecond), writeErr, back)
}

// waitHealthy waits delay, then probes the destination with Check until it answers, backing
// off between probes up to maxProbeInterval. Attempts are not counted while it is down (an
// outage is not the batch's fault). While it is down, a warning every downLogInterval says
// for how long, and a ProbeObserver hears of every failed probe. Meanwhile the held
// messages' ack wait is extended so that the stream does not hand them to another
// consumer. false: the stage is stopping.
func (s *Stage) waitHealthy(ctx context.Context, sink sinks.Sink, b *Batch, delay time.Duration) bool {
	ping := max(s.AckWait/3, 10*time.Millisecond)
	lastPing := time.Now()
	deadline := time.Now().Add(delay)
	pp := s.Retry
	pp.Initial = min(pp.Initial, maxProbeInterval)
	pp.Max = min(max(pp.Max, pp.Initial), maxProbeInterval)
	probes := pp.New()
	var downSince, lastLog time.Time
	for {
		if now := time.Now(); now.Before(deadline) {
			d := min(deadline.Sub(now), ping-now.Sub(lastPing))
			if !retry.Sleep(ctx, max(d, 0)) {
				return false
			}
			if time.Since(lastPing) >= ping {
				b.inProgress()
				lastPing = time.Now()
			}
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		err := sink.Check(cctx)
		cancel()
		if err == nil {
			if !downSince.IsZero() {
				s.log().Info("destination answers again; writing the batch in hand",
					zap.Duration("down_for", time.Since(downSince).Round(time.Millisecond)), zap.Int("probes_failed", probes.Attempts()))
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		now := time.Now()
		if downSince.IsZero() {
			downSince = now
		}
		s.obs().Healthy(false)
		if po, ok := s.obs().(ProbeObserver); ok {
			po.ProbeFailed(now.Sub(downSince))
		}
		if lastLog.IsZero() || now.Sub(lastLog) >= downLogInterval {
			lastLog = now
			s.log().Warn("destination down; waiting for it (fetching paused)", zap.Duration("down_for", now.Sub(downSince).Round(time.Second)),
				zap.Int("probes_failed", probes.Attempts()+1), zap.Int("records_held", b.Len()), zap.Error(err))
		}
		deadline = now.Add(probes.Next() + pp.Initial/2)
	}
}

func (b *Batch) inProgress() {
	for mi, m := range b.msgs {
		if !b.settled[mi] {
			m.inProgress()
		}
	}
}
