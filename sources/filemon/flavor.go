package filemon

import (
	"time"

	"github.com/logcap/logcap/streams"
)

// Flavor is what a source built on the file monitor changes in it: the subjects' kind and
// source token, the identity its chunks carry, and how a file's bytes become entries. The
// Kubernetes source (sources/kubernetes) is the file monitor with a flavor: it keeps the
// tailing, identity, positions, rotation, gzip and outage handling unchanged.
type Flavor struct {
	Kind string // subjects' kind (streams.KindKubernetes)
	// Describe names the subject of a file first found at path: its source token and the
	// identity headers of its chunks.
	Describe func(path string) (source string, k8s *streams.PodRef)
	// Framer, when set, makes the chunks' payloads instead of the plain line splitter.
	Framer Framer
}

// Framer turns what a tailer read into the next chunk's payload, for files whose lines are
// not entries as they stand (a container runtime's CRI log).
type Framer interface {
	// Frame reads buf, the bytes after the committed offset, and appends the next chunk's
	// payload to dst. consumed is how much of buf it covers: the committed offset moves
	// there, so it must never be inside an entry (or the entry must be given out as parts
	// marked continued). flush: nothing more is coming soon (idle past partial_flush, or
	// the file ended): what is open is given out as parts. A zero Framed: nothing yet.
	Frame(buf []byte, flush bool, maxLine, maxChunk int, dst []byte) Framed
}

// Framed is one chunk's payload as a Framer made it.
type Framed struct {
	Data      []byte
	Consumed  int   // bytes of buf covered
	Entries   int   // entries in Data, one per '\n'-terminated line
	Continued []int // indexes of entries that continue in a later entry
	Malformed int   // lines that were not in the expected format, kept as they were
}

// subjectKind is the kind of the monitor's subjects.
func (c *TailConfig) subjectKind() string {
	if c.Flavor != nil && c.Flavor.Kind != "" {
		return c.Flavor.Kind
	}
	return streams.KindFile
}

// subjectOf is the LOGS subject of the subject whose files were first found at path.
func (m *Monitor) subjectOf(path string) string {
	src := path
	if fl := m.cfg.Flavor; fl != nil {
		src, _ = fl.Describe(path)
	}
	return streams.SourceSubject(m.cfg.subjectKind(), m.d.Host, src)
}

// newChunk starts the next chunk of the tailer, read at now.
func (t *Tailer) newChunk(now time.Time) *streams.Chunk {
	c := &streams.Chunk{Kind: t.cfg.subjectKind(), Host: t.cfg.Host, Source: t.subjSrc, ReadTime: now, K8s: t.k8s}
	if now.Before(t.notBefore) {
		c.ReadTime = t.notBefore
	}
	return c
}

// frame makes the next chunk with the flavor's framer; nil when nothing is ready.
func (t *Tailer) frame(now time.Time, flush bool) *streams.Chunk {
	fr := t.cfg.Flavor.Framer.Frame(t.buf, flush, t.cfg.MaxLineBytes, t.cfg.MaxChunkBytes, t.out[:0])
	t.out = fr.Data
	if fr.Consumed == 0 {
		return nil
	}
	c := t.newChunk(now)
	c.Data, c.Lines, c.Continued = fr.Data, fr.Entries, fr.Continued
	t.SplitLines += len(fr.Continued)
	t.Malformed += fr.Malformed
	end := t.offset + int64(fr.Consumed)
	c.File = &streams.FilePos{Dev: t.ID.Dev, Ino: t.ID.Ino, Fingerprint: Fingerprint(t.head[:min(int64(len(t.head)), end)]), Start: t.offset, End: end}
	t.pending = c
	return c
}
