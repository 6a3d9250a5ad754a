package filemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/logcap/logcap/retry"
	"github.com/logcap/logcap/streams"
)

func (m *Monitor) posKey(id FileID) string { return streams.PositionKey(m.d.Host, id.Dev, id.Ino) }

func (m *Monitor) kvGet(ctx context.Context, id FileID) (*streams.FilePosition, error) {
	var e jetstream.KeyValueEntry
	err := m.untilNATS(ctx, func() error {
		var err error
		e, err = m.kv.Get(ctx, m.posKey(id))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("positions %s: %w", m.posKey(id), err)
		}
		return nil
	})
	if err != nil || e == nil {
		return nil, err
	}
	r, err := streams.DecodeFilePosition(e.Value())
	if err != nil {
		return nil, fmt.Errorf("positions %s: %w", m.posKey(id), err)
	}
	return r, nil
}

// untilNATS runs op, a NATS request, until it succeeds or ctx is done, trying again at once
// when the connection comes back. Only placing a file waits here: the file is held open
// meanwhile (hold.go), so a rotation during the outage cannot take its lines away.
func (m *Monitor) untilNATS(ctx context.Context, op func() error) error {
	return streams.UntilNATS(ctx, m.d.JS.Conn(), natsRetry, op, func(err error) {
		m.log.Warn("file monitor: NATS request failed; retrying until it answers", zap.Error(err))
	})
}

// natsRetry paces the requests to a NATS that does not answer (a reconnect cuts it short).
var natsRetry = retry.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

func (m *Monitor) kvPut(ctx context.Context, id FileID, r streams.FilePosition) error {
	if _, err := m.kv.Put(ctx, m.posKey(id), r.Encode()); err != nil {
		return fmt.Errorf("positions %s: %w", m.posKey(id), err)
	}
	return nil
}

func (m *Monitor) setup(ctx context.Context) error {
	if mp := m.d.JS.Conn().MaxPayload(); mp > 0 && int64(m.cfg.MaxChunkBytes)+8192 > mp {
		// An external NATS left at its 1 MB default: smaller chunks work just as well.
		m.cfg.MaxChunkBytes = int(mp - 8192)
		m.log.Warn("max_chunk_bytes lowered to fit the server's max_payload (headers need up to 8 KiB more)",
			zap.Int64("max_payload", mp), zap.Int("max_chunk_bytes", m.cfg.MaxChunkBytes))
	}
	kv, err := m.d.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: streams.PositionsBucket, History: 1, Storage: jetstream.FileStorage, Replicas: m.d.KVReplicas})
	if err != nil {
		return fmt.Errorf("file source %s: kv %s: %w", m.name, streams.PositionsBucket, err)
	}
	m.kv = kv
	_, err = kv.Get(ctx, m.markerKey())
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		m.firstStart = true
	case err != nil:
		return fmt.Errorf("file source %s: kv %s: %w", m.name, streams.PositionsBucket, err)
	}
	if m.fps != nil {
		if err := m.loadContent(ctx); err != nil {
			return fmt.Errorf("file source %s: kv %s: %w", m.name, streams.PositionsBucket, err)
		}
	}
	return nil
}

func (m *Monitor) markerKey() string { return streams.SourceMarkerKey(m.d.Host, m.name) }

// lastChunk returns the last chunk published for source, and its stream sequence.
func (m *Monitor) lastChunk(ctx context.Context, source string) (*streams.Chunk, uint64, error) {
	subj := m.subjectOf(source)
	var last *jetstream.RawStreamMsg
	if err := m.untilNATS(ctx, func() (err error) {
		last, err = streams.LastMsg(ctx, m.d.JS, m.d.Stream, subj)
		return err
	}); err != nil || last == nil {
		return nil, 0, err
	}
	lc, err := streams.DecodeChunk(last.Subject, last.Header, last.Data)
	if err != nil || lc.File == nil {
		return nil, 0, fmt.Errorf("last message of %s: %v", subj, err)
	}
	return lc, last.Sequence, nil
}

func (m *Monitor) putPos(ctx context.Context, f *file, s *subject) {
	r := streams.FilePosition{Source: s.source, FP: f.tl.FP(), End: f.tl.Offset(), Seq: s.pub.LastSeq()}
	if f.tl.Done() {
		r.GzipDone, r.GzipSize = true, f.tl.Size()
	}
	if err := m.kvPut(ctx, f.id, r); err != nil {
		if ctx.Err() == nil {
			m.log.Warn("file monitor: position not saved (the stream still has it)", zap.Error(err))
		}
		return
	}
	f.kvDirty, f.kvAt = false, time.Now()
}
