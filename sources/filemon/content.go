package filemon

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/logcap/logcap/streams"
)

// The content index (include_compressed only) answers "did logcap read a file with these
// first bytes, and how far?" for a gzip file seen for the first time: logrotate's compress
// writes x.log.1.gz from x.log.1, a file logcap read (or is still reading) under its own
// identity. Like Vector, a gzip file is recognised by the fingerprint of its decompressed
// first bytes, and continues from that file's position instead of being read again.
//
// Keys are fingerprints: the one of a file's first FingerprintBytes once it has that many
// (read from the file at the start, from a later scan, or from the reads), and those of the
// last few committed positions below that (a file shorter than 1 KiB). A key leads to the
// content's generation (a file from its start, or from a truncation to the next): where
// logcap got in it, and whether it is still being read. Generations no longer read stay
// for the last retiredMax keys; at start, the positions KV seeds the index.

// retiredMax bounds the keys of generations no longer read (170 B each, measured).
const retiredMax = 16384

// shortKeysMax bounds the fingerprints of committed positions below 1 KiB kept per
// generation: a short gzip copy is recognised if its length was one of the last few.
const shortKeysMax = 8

type contentPos struct {
	source string   // the subject's source path
	end    int64    // committed position
	live   bool     // a tailer still reads it: it will go further
	full   string   // fingerprint of the first FingerprintBytes, once known
	short  []string // fingerprints of the last committed positions below 1 KiB
}

type retiredKey struct {
	key string
	pos *contentPos
}

// headKeys are the index keys of a file placed at offset.
type headKeys struct {
	full  string // fingerprint of its first 1 KiB, when it has that many
	short string // fingerprint of its first offset bytes, when offset is below 1 KiB
	n     int64
}

// keysOf reads the index keys of the open file f placed at offset; head is its first
// min(offset, 1 KiB) bytes.
func (m *Monitor) keysOf(f *os.File, offset int64, head []byte) headKeys {
	var k headKeys
	if m.fps == nil {
		return k
	}
	if full, _ := readHead(f, FingerprintBytes); len(full) == FingerprintBytes {
		k.full = Fingerprint(full)
	}
	if offset > 0 && offset < FingerprintBytes && int64(len(head)) >= offset {
		k.short, k.n = Fingerprint(head[:offset]), offset
	}
	return k
}

// newContentLocked starts the index entry of a file read from offset under source.
func (m *Monitor) newContentLocked(source string, offset int64, k headKeys) *contentPos {
	if m.fps == nil {
		return nil
	}
	c := &contentPos{source: source, end: offset, live: true}
	if k.full != "" {
		m.addKeyLocked(c, k.full, FingerprintBytes)
	}
	if k.short != "" {
		m.addKeyLocked(c, k.short, k.n)
	}
	return c
}

// addKeyLocked makes fp (the fingerprint of c's first n bytes) lead to c.
func (m *Monitor) addKeyLocked(c *contentPos, fp string, n int64) {
	if n >= FingerprintBytes {
		if c.full == fp {
			return
		}
		if c.full != "" && m.fps[c.full] == c {
			delete(m.fps, c.full)
		}
		c.full = fp
	} else {
		if slices.Contains(c.short, fp) {
			return
		}
		c.short = append(c.short, fp)
		if len(c.short) > shortKeysMax {
			if m.fps[c.short[0]] == c {
				delete(m.fps, c.short[0])
			}
			c.short = slices.Delete(c.short, 0, 1)
		}
	}
	m.fps[fp] = c
	if !c.live {
		m.retireKeyLocked(fp, c)
	}
}

// committedLocked records a published chunk of the generation c: it ends at end and the
// fingerprint of its file's first min(end, 1 KiB) bytes is fp.
func (m *Monitor) committedLocked(c *contentPos, fp string, end int64) {
	if c == nil {
		return
	}
	c.end = max(c.end, end)
	m.addKeyLocked(c, fp, min(end, FingerprintBytes))
}

// rememberRotated records the exact end of the file a subject published last and that is
// no longer at its path (rotated while logcap was stopped), read from the subject's last
// chunk before the new file publishes: more exact than its KV record, which may lag.
func (m *Monitor) rememberRotated(source string, pos *streams.FilePos) {
	if m.fps == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.fps[pos.Fingerprint]; c == nil || !c.live && c.end < pos.End {
		m.addKeyLocked(&contentPos{source: source, end: pos.End}, pos.Fingerprint, min(pos.End, FingerprintBytes))
	}
}

// retireLocked marks c as no longer read: its end is final.
func (m *Monitor) retireLocked(c *contentPos) {
	if c == nil || !c.live {
		return
	}
	c.live = false
	for _, k := range append(slices.Clip(c.short), c.full) {
		if k != "" && m.fps[k] == c {
			m.retireKeyLocked(k, c)
		}
	}
}

func (m *Monitor) retireKeyLocked(k string, c *contentPos) {
	m.retired = append(m.retired, retiredKey{k, c})
	for len(m.retired) > retiredMax {
		old := m.retired[0]
		m.retired[0] = retiredKey{}
		m.retired = m.retired[1:]
		if m.fps[old.key] == old.pos {
			delete(m.fps, old.key)
		}
	}
}

// loadContent seeds the index with the positions this host recorded in the KV bucket
// (oldest first, so the newest retiredMax stay): a gzip copy of a file read before a
// restart is recognised after it.
func (m *Monitor) loadContent(ctx context.Context) error {
	w, err := m.kv.Watch(ctx, streams.PositionsOf(m.d.Host), jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("positions: %w", err)
	}
	defer w.Stop()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("positions: watch closed")
			}
			if e == nil { // every current value was delivered
				m.log.Debug("file monitor: content index seeded from the positions KV", zap.Int("positions", n))
				return nil
			}
			r, err := streams.DecodeFilePosition(e.Value())
			if err != nil || r.FP == "" || r.End <= 0 {
				continue
			}
			n++
			m.mu.Lock()
			if old := m.fps[r.FP]; old == nil || old.end < r.End {
				m.addKeyLocked(&contentPos{source: r.Source, end: r.End}, r.FP, min(r.End, FingerprintBytes))
			}
			m.mu.Unlock()
		}
	}
}
