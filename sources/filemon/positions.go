package filemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/logcap/logcap/retry"
	"github.com/logcap/logcap/streams"
)

// PositionsBucket is the KV bucket of file positions: the fallback for when retention has
// removed a file's last message from LOGS, and the memory of which subject a renamed file
// belongs to.
const PositionsBucket = "logcap_positions"

func kvToken(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	if b.Len() == 0 {
		return "="
	}
	return b.String()
}

func (m *Monitor) posKey(id FileID) string {
	return fmt.Sprintf("pos.%s.%d.%d", kvToken(m.d.Host), id.Dev, id.Ino)
}

type posRecord struct {
	Source string `json:"source"`
	FP     string `json:"fp"`
	End    int64  `json:"end"`
	// Seq is the stream sequence of the subject's last chunk when End was recorded. A record
	// whose Seq is above the subject's last message in the stream outlived the stream's end
	// (a store damaged by a crash or a power loss): the stream, not the record, says where the
	// lines still to publish start. 0 in records written before it was kept.
	Seq uint64 `json:"seq,omitempty"`
	// a gzip file read as far as it goes (to its end, or given up) at this compressed size
	GzipDone bool  `json:"gzip_done,omitempty"`
	GzipSize int64 `json:"gzip_size,omitempty"`
}

func (m *Monitor) kvGet(ctx context.Context, id FileID) (*posRecord, error) {
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
	var r posRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, fmt.Errorf("positions %s: %w", m.posKey(id), err)
	}
	return &r, nil
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

func (m *Monitor) kvPut(ctx context.Context, id FileID, r posRecord) error {
	b, _ := json.Marshal(r)
	if _, err := m.kv.Put(ctx, m.posKey(id), b); err != nil {
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
	kv, err := m.d.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: PositionsBucket, History: 1, Storage: jetstream.FileStorage, Replicas: m.d.KVReplicas})
	if err != nil {
		return fmt.Errorf("file source %s: kv %s: %w", m.name, PositionsBucket, err)
	}
	m.kv = kv
	_, err = kv.Get(ctx, m.markerKey())
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		m.firstStart = true
	case err != nil:
		return fmt.Errorf("file source %s: kv %s: %w", m.name, PositionsBucket, err)
	}
	if m.fps != nil {
		if err := m.loadContent(ctx); err != nil {
			return fmt.Errorf("file source %s: kv %s: %w", m.name, PositionsBucket, err)
		}
	}
	return nil
}

func (m *Monitor) markerKey() string {
	return fmt.Sprintf("source.%s.%s", kvToken(m.d.Host), kvToken(m.name))
}

// lastChunk returns the last chunk published for source, and its stream sequence.
func (m *Monitor) lastChunk(ctx context.Context, source string) (*streams.Chunk, uint64, error) {
	subj := streams.SourceSubject(streams.KindFile, m.d.Host, source)
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
	r := posRecord{Source: s.source, FP: f.tl.FP(), End: f.tl.Offset(), Seq: s.pub.LastSeq()}
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
