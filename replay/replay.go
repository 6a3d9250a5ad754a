// Package replay reads a stored range of a stream (LOGS or a processor's derived stream)
// through an ephemeral ordered consumer and hands it to an output: raw bytes to a writer, or
// records to a sink from the configuration. It is what `logcap replay` runs. It starts no
// goroutine of its own: Run blocks until the range is read, or ctx is cancelled.
package replay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Spec says what to replay.
type Spec struct {
	Stream  string // default "LOGS"
	Subject string // subject filter; "" = every subject of the stream
	// Start point: StartSeq if > 0, else Since if not zero, else the stream's first message.
	StartSeq uint64
	Since    time.Time
	// Until, when not zero, ends the replay before the first message stored after it.
	Until time.Time
	// Follow keeps reading new messages until ctx is cancelled. Without it the replay ends
	// at the stream's last sequence as it was when Run began.
	Follow bool
	// FlushIdle is how long Run waits for more messages before it flushes what the output
	// holds (default 200ms): a quiet stream under --follow still reaches the sink promptly.
	FlushIdle time.Duration
	// PullMaxBytes bounds each pull by bytes, not by count: chunks can be up to 1 MiB
	// (DESIGN.md: count-based pulls of big chunks collapse). Default 8 MiB.
	PullMaxBytes int
}

// Msg is one stored message.
type Msg struct {
	Stream, Subject string
	Header          nats.Header
	Data            []byte
	Seq             uint64
	Time            time.Time // when the stream stored it
}

// Output receives the replayed messages in stream order.
type Output interface {
	// Add takes one message and returns how many entries it carried. It may buffer; what it
	// buffers must be written by the next Flush.
	Add(ctx context.Context, m Msg) (entries int, err error)
	// Flush writes what Add buffered.
	Flush(ctx context.Context) error
}

// Stats describes a replay.
type Stats struct {
	Stream            string
	Messages, Entries int64
	Bytes             int64  // payload bytes read
	FirstSeq, LastSeq uint64 // of the messages replayed
	EndSeq            uint64 // the stream's last sequence when the replay began
	Took              time.Duration
	Interrupted       bool // ctx was cancelled before the end (how every --follow ends)

	// Input is set by Rebuild: the stream the processor derives from. Messages then counts
	// input messages processed, Derived and Bytes what the derived stream holds.
	Input   string
	Derived int64
}

// Summary is the line printed when a replay ends.
func (s Stats) Summary() string {
	if s.Input != "" {
		return fmt.Sprintf("rebuilt %s from %s: %d input messages processed; %s holds %d messages (%d bytes); in %v",
			s.Stream, s.Input, s.Messages, s.Stream, s.Derived, s.Bytes, s.Took.Round(time.Millisecond))
	}
	rng := "(nothing in range)"
	if s.Messages > 0 {
		rng = fmt.Sprintf("seq %d..%d", s.FirstSeq, s.LastSeq)
	}
	return fmt.Sprintf("replayed %d entries (%d bytes) from %s %s in %v", s.Entries, s.Bytes, s.Stream, rng, s.Took.Round(time.Millisecond))
}

// Progress is told how a replay advances. total is the number of messages the replay
// expects to read in all (-1 when unknown: --follow).
type Progress interface {
	Update(s Stats, total int64)
	Done(s Stats)
}

// ErrStreamNotFound is returned when the stream does not exist.
var ErrStreamNotFound = jetstream.ErrStreamNotFound

// Run replays spec into out. It returns when the range is read (nil), when ctx is cancelled
// (nil with Stats.Interrupted when following, ctx's error otherwise), or on the first
// error. What out buffered is flushed before Run returns, even after a cancel.
func Run(ctx context.Context, js jetstream.JetStream, spec Spec, out Output, prog Progress) (st Stats, err error) {
	began := time.Now()
	r := &run{spec: spec.withDefaults(), out: out, prog: prog, total: -1}
	r.st.Stream = r.spec.Stream
	stream, err := js.Stream(ctx, r.spec.Stream)
	if err != nil {
		return r.st, fmt.Errorf("stream %s: %w", r.spec.Stream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return r.st, fmt.Errorf("stream %s: info: %w", r.spec.Stream, err)
	}
	r.st.EndSeq = info.State.LastSeq
	// The stream is open: a summary is due, and what out buffered is flushed, even after a
	// cancel (no summary for a stream that could not be read at all).
	defer func() {
		err = r.finish(ctx, began, err)
		st = r.st
	}()
	if !r.spec.Follow && (r.st.EndSeq == 0 || r.spec.StartSeq > r.st.EndSeq) {
		return r.st, nil
	}
	it, err := r.consume(ctx, stream)
	if err != nil || it == nil {
		return r.st, err
	}
	defer it.Stop()
	return r.st, r.read(ctx, it)
}

func (s Spec) withDefaults() Spec {
	if s.Stream == "" {
		s.Stream = "LOGS"
	}
	if s.FlushIdle <= 0 {
		s.FlushIdle = 200 * time.Millisecond
	}
	if s.PullMaxBytes <= 0 {
		s.PullMaxBytes = 8 << 20
	}
	return s
}

// run is one replay in progress.
type run struct {
	spec  Spec
	out   Output
	prog  Progress
	st    Stats
	total int64 // messages expected in all; -1: unknown (--follow)
}

// finish flushes what out buffered, with a bounded context of its own (a cancel must not
// lose what was read), and tells the progress the replay is done.
func (r *run) finish(ctx context.Context, began time.Time, err error) error {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if ferr := r.out.Flush(fctx); ferr != nil && err == nil {
		err = ferr
	}
	r.st.Took = time.Since(began)
	if r.prog != nil {
		r.prog.Done(r.st)
	}
	return err
}

// consume opens an ordered consumer from the start point; nil when nothing matches.
func (r *run) consume(ctx context.Context, stream jetstream.Stream) (jetstream.MessagesContext, error) {
	spec := r.spec
	cc := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if spec.Subject != "" {
		cc.FilterSubjects = []string{spec.Subject}
	}
	switch {
	case spec.StartSeq > 0:
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, spec.StartSeq
	case !spec.Since.IsZero():
		t := spec.Since
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	cons, err := stream.OrderedConsumer(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("stream %s: ordered consumer: %w", spec.Stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxBytes(spec.PullMaxBytes))
	if err != nil {
		return nil, fmt.Errorf("stream %s: consume: %w", spec.Stream, err)
	}
	if !spec.Follow {
		ci, err := cons.Info(ctx)
		if err != nil {
			it.Stop()
			return nil, fmt.Errorf("stream %s: consumer info: %w", spec.Stream, err)
		}
		if ci.NumPending == 0 && ci.Delivered.Consumer == 0 {
			it.Stop()
			return nil, nil // nothing matches from the start point
		}
		r.total = int64(ci.NumPending + ci.Delivered.Consumer)
	}
	if r.prog != nil {
		r.prog.Update(r.st, r.total)
	}
	return it, nil
}

// read hands the messages to out until the range is read, ctx is done or an error; out is
// flushed whenever the stream is quiet for FlushIdle.
func (r *run) read(ctx context.Context, it jetstream.MessagesContext) error {
	buffered := false
	for {
		// Checked before every message, not only when Next waits: a fast stream keeps Next
		// answering from its buffer and would outrun a cancel.
		if ctx.Err() != nil {
			return r.interrupted(ctx)
		}
		nctx, cancel := ctx, context.CancelFunc(func() {})
		if buffered {
			nctx, cancel = context.WithTimeout(ctx, r.spec.FlushIdle)
		}
		m, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
			return r.interrupted(ctx)
		case err != nil && buffered && errors.Is(err, context.DeadlineExceeded):
			if err := r.out.Flush(ctx); err != nil {
				return err
			}
			buffered = false
			continue
		case err != nil:
			return fmt.Errorf("stream %s: next message: %w", r.spec.Stream, err)
		}
		done, err := r.add(ctx, m)
		if err != nil || done {
			return err
		}
		buffered = true
	}
}

// add hands one message to out; done: the range is read.
func (r *run) add(ctx context.Context, m jetstream.Msg) (done bool, err error) {
	spec := r.spec
	meta, err := m.Metadata()
	if err != nil {
		return false, fmt.Errorf("stream %s: message metadata: %w", spec.Stream, err)
	}
	seq := meta.Sequence.Stream
	if !spec.Follow && seq > r.st.EndSeq {
		return true, nil // stored after the replay began
	}
	if !spec.Until.IsZero() && meta.Timestamp.After(spec.Until) {
		return true, nil
	}
	n, err := r.out.Add(ctx, Msg{Stream: spec.Stream, Subject: m.Subject(), Header: m.Headers(), Data: m.Data(), Seq: seq, Time: meta.Timestamp})
	if err != nil {
		return false, err
	}
	if r.st.Messages == 0 {
		r.st.FirstSeq = seq
	}
	r.st.LastSeq = seq
	r.st.Messages++
	r.st.Entries += int64(n)
	r.st.Bytes += int64(len(m.Data()))
	if !spec.Follow {
		r.total = r.st.Messages + int64(meta.NumPending)
	}
	if r.prog != nil {
		r.prog.Update(r.st, r.total)
	}
	// NumPending counts what matches and is stored now; anything stored later has a
	// sequence past EndSeq, so none left means done.
	return !spec.Follow && (seq >= r.st.EndSeq || meta.NumPending == 0), nil
}

func (r *run) interrupted(ctx context.Context) error {
	r.st.Interrupted = true
	if r.spec.Follow {
		return nil
	}
	return fmt.Errorf("interrupted after %d entries: %w", r.st.Entries, ctx.Err())
}
