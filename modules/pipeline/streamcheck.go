package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/logcap/logcap/sinks"
	"github.com/logcap/logcap/streams"
)

// streamCheck answers a sink's question before it skips records as written (sinks.StreamCheck):
// is the message it recorded at seq still there? A message gone from a stream whose last
// sequence is below seq, or another message at seq, means the stream went backwards; the sink
// then writes what it would have skipped, and that is said and counted.
func (r *sinkRunner) streamCheck(js jetstream.JetStream) sinks.StreamCheck {
	return func(ctx context.Context, stream string, seq uint64, id string) (bool, error) {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return false, fmt.Errorf("stream %s: %w", stream, err)
		}
		m, err := s.GetMsg(ctx, seq)
		var now string
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			now = "no message"
		case err != nil:
			return false, fmt.Errorf("stream %s seq %d: %w", stream, seq, err)
		case id != "" && m.Header.Get(streams.HdrMsgID) != id:
			now = "message " + m.Header.Get(streams.HdrMsgID)
		default:
			return true, nil
		}
		r.pl.m.sinkRewound.WithLabelValues(r.cfg.Name).Inc()
		r.log.Warn("the input stream went backwards under the sink's position (its end was lost: a damaged store): writing the re-used sequence numbers instead of skipping them",
			zap.String("stream", stream), zap.Uint64("seq", seq), zap.String("recorded", id), zap.String("found", now))
		return false, nil
	}
}
