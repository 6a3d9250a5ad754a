package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/retry"
)

// ErrFenced means another writer published to this source's subject since our last chunk:
// a second agent, or a stale process, is tailing the same source. The publisher refuses to
// interleave with it.
var ErrFenced = errors.New("fenced: another writer published to this source")

// Publisher publishes the chunks of ONE source, one at a time, each conditional on the
// previous one (Nats-Expected-Last-Subject-Sequence), so a source's subject never has a gap
// and never two writers. Its ack is the source's commit: the position is what the stream holds.
// A Publisher is not safe for concurrent use; pipelining happens across sources.
type Publisher struct {
	js      jetstream.JetStream
	stream  string
	subject string
	lastSeq uint64
	lastID  string
	// AttemptTimeout bounds one publish attempt; a failed or timed-out attempt is retried
	// with the same msg id, so it cannot be stored twice.
	AttemptTimeout time.Duration
	// Backoff between attempts grows from MinBackoff to MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// OnRetry, if set, is told about every failed attempt (for logs and metrics).
	OnRetry func(attempt int, err error)
	// Gate, if set, holds the publish back (the memory budget, the stream's when_full).
	Gate Gate
}

// NewPublisher returns a publisher for subject whose last stored message has sequence
// lastSeq (0: none), as found by LastMsg.
func NewPublisher(js jetstream.JetStream, stream, subject string, lastSeq uint64) *Publisher {
	return &Publisher{
		js: js, stream: stream, subject: subject, lastSeq: lastSeq,
		AttemptTimeout: 5 * time.Second, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second,
	}
}

// LastSeq is the stream sequence of the last chunk this publisher knows stored.
func (p *Publisher) LastSeq() uint64 { return p.lastSeq }

// Publish stores msg (its subject must be the publisher's) and returns its ack. It retries
// until the chunk is stored, ctx is done, or the source is fenced. An attempt already sent
// runs to its end even when ctx is cancelled, so a stop waits for the pending ack instead of
// abandoning it (bounded by AttemptTimeout).
func (p *Publisher) Publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	if msg.Subject != p.subject {
		return nil, fmt.Errorf("publish: subject %q, publisher is for %q", msg.Subject, p.subject)
	}
	if p.Gate != nil {
		if err := p.Gate.Wait(ctx); err != nil {
			return nil, fmt.Errorf("publish %s: %w", p.subject, err)
		}
	}
	id := msg.Header.Get(nats.MsgIdHdr)
	backoff := retry.Policy{Initial: p.MinBackoff, Max: p.MaxBackoff}.New()
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.AttemptTimeout)
		ack, err := p.js.PublishMsg(actx, msg, jetstream.WithExpectLastSequencePerSubject(p.lastSeq))
		cancel()
		if err == nil {
			p.lastSeq, p.lastID = ack.Sequence, id
			return ack, nil
		}
		if isWrongLastSeq(err) {
			resynced, rerr := p.resync(ctx, id)
			if rerr != nil {
				return nil, rerr
			}
			if resynced != nil {
				return resynced, nil
			}
			continue // expected sequence corrected: try again at once
		}
		if p.OnRetry != nil {
			p.OnRetry(attempt, err)
		}
		if !backoff.Wait(ctx) {
			return nil, fmt.Errorf("publish %s: %w (last error: %v)", p.subject, ctx.Err(), err)
		}
	}
}

// resync runs when the stream's last sequence for the subject is not the one we expected.
// Three honest reasons: our own previous attempt was stored but its ack was lost after the
// duplicate window passed (the last message carries our id: done); retention removed all
// of the subject's messages (nothing there: start the subject afresh); or another writer
// published (fenced).
func (p *Publisher) resync(ctx context.Context, id string) (*jetstream.PubAck, error) {
	last, err := LastMsg(ctx, p.js, p.stream, p.subject)
	if err != nil {
		return nil, fmt.Errorf("publish %s: resync: %w", p.subject, err)
	}
	switch {
	case last == nil:
		p.lastSeq = 0
		return nil, nil
	case last.Header.Get(nats.MsgIdHdr) == id:
		p.lastSeq, p.lastID = last.Sequence, id
		return &jetstream.PubAck{Stream: p.stream, Sequence: last.Sequence, Duplicate: true}, nil
	}
	return nil, fmt.Errorf("publish %s: %w (stream has sequence %d with id %q, expected %d)",
		p.subject, ErrFenced, last.Sequence, last.Header.Get(nats.MsgIdHdr), p.lastSeq)
}

func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// LastMsg returns the last message stored on subject, or nil if there is none. It reads
// through the stream leader, so a lagging R3 follower cannot hand a monitor a stale position.
func LastMsg(ctx context.Context, js jetstream.JetStream, stream, subject string) (*jetstream.RawStreamMsg, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	// nats.go uses direct get when the stream allows it, and any replica answers those. A LOGS
	// logcap provisions does not, but one created elsewhere may (`nats stream add` does by
	// default). The handle and its info were fetched just now for this call alone: clearing
	// the flag on it only makes this read ask the leader.
	if info := s.CachedInfo(); info != nil {
		info.Config.AllowDirect = false
	}
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("last message on %s: %w", subject, err)
	}
	return m, nil
}
