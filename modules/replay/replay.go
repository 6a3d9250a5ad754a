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
	if spec.Stream == "" {
		spec.Stream = "LOGS"
	}
	if spec.FlushIdle <= 0 {
		spec.FlushIdle = 200 * time.Millisecond
	}
	if spec.PullMaxBytes <= 0 {
		spec.PullMaxBytes = 8 << 20
	}
	st.Stream = spec.Stream
	opened := false // no summary for a stream that could not be read at all
	defer func() {
		if !opened {
			return
		}
		// A cancel must not lose what was read: flush with a bounded context of its own.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if ferr := out.Flush(fctx); ferr != nil && err == nil {
			err = ferr
		}
		st.Took = time.Since(began)
		if prog != nil {
			prog.Done(st)
		}
	}()

	stream, err := js.Stream(ctx, spec.Stream)
	if err != nil {
		return st, fmt.Errorf("stream %s: %w", spec.Stream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return st, fmt.Errorf("stream %s: info: %w", spec.Stream, err)
	}
	st.EndSeq = info.State.LastSeq
	opened = true
	if !spec.Follow && (st.EndSeq == 0 || spec.StartSeq > st.EndSeq) {
		return st, nil
	}

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
		return st, fmt.Errorf("stream %s: ordered consumer: %w", spec.Stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxBytes(spec.PullMaxBytes))
	if err != nil {
		return st, fmt.Errorf("stream %s: consume: %w", spec.Stream, err)
	}
	defer it.Stop()

	total := int64(-1)
	if !spec.Follow {
		ci, err := cons.Info(ctx)
		if err != nil {
			return st, fmt.Errorf("stream %s: consumer info: %w", spec.Stream, err)
		}
		if ci.NumPending == 0 && ci.Delivered.Consumer == 0 {
			return st, nil // nothing matches from the start point
		}
		total = int64(ci.NumPending + ci.Delivered.Consumer)
	}
	if prog != nil {
		prog.Update(st, total)
	}

	interrupted := func() (Stats, error) {
		st.Interrupted = true
		if spec.Follow {
			return st, nil
		}
		return st, fmt.Errorf("interrupted after %d entries: %w", st.Entries, ctx.Err())
	}
	buffered := false
	for {
		// Checked before every message, not only when Next waits: a fast stream keeps Next
		// answering from its buffer and would outrun a cancel.
		if ctx.Err() != nil {
			return interrupted()
		}
		nctx, cancel := ctx, context.CancelFunc(func() {})
		if buffered {
			nctx, cancel = context.WithTimeout(ctx, spec.FlushIdle)
		}
		m, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return interrupted()
			}
			if buffered && errors.Is(err, context.DeadlineExceeded) {
				if err := out.Flush(ctx); err != nil {
					return st, err
				}
				buffered = false
				continue
			}
			return st, fmt.Errorf("stream %s: next message: %w", spec.Stream, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return st, fmt.Errorf("stream %s: message metadata: %w", spec.Stream, err)
		}
		seq := meta.Sequence.Stream
		if !spec.Follow && seq > st.EndSeq {
			return st, nil // stored after the replay began
		}
		if !spec.Until.IsZero() && meta.Timestamp.After(spec.Until) {
			return st, nil
		}
		n, err := out.Add(ctx, Msg{Stream: spec.Stream, Subject: m.Subject(), Header: m.Headers(), Data: m.Data(), Seq: seq, Time: meta.Timestamp})
		if err != nil {
			return st, err
		}
		buffered = true
		if st.Messages == 0 {
			st.FirstSeq = seq
		}
		st.LastSeq = seq
		st.Messages++
		st.Entries += int64(n)
		st.Bytes += int64(len(m.Data()))
		if !spec.Follow {
			total = st.Messages + int64(meta.NumPending)
		}
		if prog != nil {
			prog.Update(st, total)
		}
		// NumPending counts what matches and is stored now; anything stored later has a
		// sequence past EndSeq, so none left means done.
		if !spec.Follow && (seq >= st.EndSeq || meta.NumPending == 0) {
			return st, nil
		}
	}
}
