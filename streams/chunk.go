package streams

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Header names of a chunk (DESIGN.md "Wire format"). They are public: users read them with
// `nats sub --stream LOGS -H` and scripts may depend on them.
const (
	HdrMsgID     = nats.MsgIdHdr      // Nats-Msg-Id: deterministic, source identity + start position
	HdrLines     = "Logcap-Lines"     // number of entries in the chunk
	HdrReadTime  = "Logcap-Read-Time" // when the monitor read the chunk, RFC 3339 nano
	HdrEntries   = "Logcap-Entries"   // entry lengths in bytes, when entries are not single lines
	HdrContinued = "Logcap-Continued" // indexes of entries that continue in the next entry (split lines)

	// File chunks.
	HdrDev    = "Logcap-Dev"    // device number of the file
	HdrIno    = "Logcap-Ino"    // inode number of the file
	HdrFP     = "Logcap-Fp"     // fingerprint of the file's first bytes, hex
	HdrOffset = "Logcap-Offset" // byte offset of the chunk's first byte in the file
	HdrEnd    = "Logcap-End"    // byte offset just past the chunk's last byte

	// Docker chunks.
	HdrContainer   = "Logcap-Container"     // container id
	HdrStream      = "Logcap-Stream"        // stdout or stderr
	HdrFirstTS     = "Logcap-First-Ts"      // timestamp of the first entry, RFC 3339 nano
	HdrLastTS      = "Logcap-Last-Ts"       // timestamp of the last entry, RFC 3339 nano
	HdrLastTSCount = "Logcap-Last-Ts-Count" // entries published so far (this chunk and before) carrying Last-Ts
)

// FilePos says where a file chunk came from.
type FilePos struct {
	Dev, Ino    uint64
	Fingerprint string // hex
	Start, End  int64  // byte offsets: [Start, End)
}

// DockerPos says where a Docker chunk came from.
type DockerPos struct {
	ContainerID     string
	Stream          string // stdout | stderr
	FirstTS, LastTS time.Time
	LastTSCount     int // entries with LastTS published up to and including this chunk
}

// Chunk is the unit logcap publishes to LOGS: one or more complete entries from one source,
// contiguous and in order (DESIGN.md: "A message is a chunk, not a line").
type Chunk struct {
	Kind, Host, Source string
	Data               []byte
	// Lines counts the entries in Data.
	Lines int
	// Entries, when not nil, partitions Data into entries by length (multiline entries, or
	// lines split at max_line_bytes). Nil means: one entry per '\n'-terminated line.
	Entries []int
	// Continued lists indexes of entries that continue in the next entry: the parts of a
	// line split at max_line_bytes.
	Continued []int
	ReadTime  time.Time
	File      *FilePos
	Docker    *DockerPos
	// K8s is a Kubernetes chunk's pod identity (its headers); File is its position.
	K8s *PodRef
}

// Subject is the chunk's LOGS subject.
func (c *Chunk) Subject() string { return SourceSubject(c.Kind, c.Host, c.Source) }

// MsgID is deterministic: the same source position always gives the same id, so a retried
// publish is dropped by JetStream's duplicate window instead of stored twice.
func (c *Chunk) MsgID() string {
	switch {
	case c.File != nil:
		return fmt.Sprintf("f:%s:%d:%d:%s:%d", c.Host, c.File.Dev, c.File.Ino, c.File.Fingerprint, c.File.Start)
	case c.Docker != nil:
		// The end position of the chunk's stream (last timestamp and how many entries carry
		// it) is unique per stream; the first timestamp alone is not (split lines share it).
		d := c.Docker
		return fmt.Sprintf("d:%s:%s:%s:%d:%d:%d", c.Host, d.ContainerID, d.Stream, d.FirstTS.UnixNano(), d.LastTS.UnixNano(), d.LastTSCount)
	}
	return ""
}

// Msg encodes the chunk as a NATS message.
func (c *Chunk) Msg() *nats.Msg {
	m := nats.NewMsg(c.Subject())
	m.Data = c.Data
	h := m.Header
	h.Set(HdrMsgID, c.MsgID())
	h.Set(HdrLines, strconv.Itoa(c.Lines))
	if !c.ReadTime.IsZero() {
		h.Set(HdrReadTime, c.ReadTime.UTC().Format(time.RFC3339Nano))
	}
	if c.Entries != nil {
		h.Set(HdrEntries, joinInts(c.Entries))
	}
	if len(c.Continued) > 0 {
		h.Set(HdrContinued, joinInts(c.Continued))
	}
	if f := c.File; f != nil {
		h.Set(HdrDev, strconv.FormatUint(f.Dev, 10))
		h.Set(HdrIno, strconv.FormatUint(f.Ino, 10))
		h.Set(HdrFP, f.Fingerprint)
		h.Set(HdrOffset, strconv.FormatInt(f.Start, 10))
		h.Set(HdrEnd, strconv.FormatInt(f.End, 10))
	}
	if c.K8s != nil {
		for k, v := range c.K8s.Header() {
			h[k] = v
		}
	}
	if d := c.Docker; d != nil {
		h.Set(HdrContainer, d.ContainerID)
		h.Set(HdrStream, d.Stream)
		h.Set(HdrFirstTS, d.FirstTS.UTC().Format(time.RFC3339Nano))
		h.Set(HdrLastTS, d.LastTS.UTC().Format(time.RFC3339Nano))
		h.Set(HdrLastTSCount, strconv.Itoa(d.LastTSCount))
	}
	return m
}

// FileMsg encodes a file chunk read in its file's generation gen (how many truncations of
// the file came before it). After a truncation the same start offset and first bytes can
// come again: from generation 1 on the msg id ends in ":g<gen>", so JetStream's duplicate
// window cannot mistake new lines for a retry.
func (c *Chunk) FileMsg(gen int) *nats.Msg {
	m := c.Msg()
	if gen > 0 {
		m.Header.Set(HdrMsgID, fmt.Sprintf("%s:g%d", c.MsgID(), gen))
	}
	return m
}

// DecodeChunk reads a chunk back from a stored message. It checks what it reads: a
// consumer must never split a chunk differently from the way the monitor wrote it.
func DecodeChunk(subject string, h nats.Header, data []byte) (*Chunk, error) {
	p, err := ParseSubject(subject)
	if err != nil {
		return nil, err
	}
	c := &Chunk{Kind: p.Kind, Host: p.Host, Source: p.Source, Data: data}
	var errs []error
	geti := func(k string) int64 {
		v := h.Get(k)
		if v == "" {
			return 0
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("header %s: %w", k, err))
		}
		return n
	}
	c.Lines = int(geti(HdrLines))
	if v := h.Get(HdrReadTime); v != "" {
		c.ReadTime, err = time.Parse(time.RFC3339Nano, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("header %s: %w", HdrReadTime, err))
		}
	}
	if v := h.Get(HdrEntries); v != "" {
		c.Entries, err = splitInts(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("header %s: %w", HdrEntries, err))
		}
		sum := 0
		for _, n := range c.Entries {
			sum += n
		}
		if sum != len(data) {
			errs = append(errs, fmt.Errorf("header %s: lengths add up to %d, payload has %d bytes", HdrEntries, sum, len(data)))
		}
	}
	if v := h.Get(HdrContinued); v != "" {
		c.Continued, err = splitInts(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("header %s: %w", HdrContinued, err))
		}
	}
	switch p.Kind {
	case KindFile, KindKubernetes:
		c.File = &FilePos{
			Dev: uint64(geti(HdrDev)), Ino: uint64(geti(HdrIno)), Fingerprint: h.Get(HdrFP),
			Start: geti(HdrOffset), End: geti(HdrEnd),
		}
		if r, ok := podRefFromHeader(h); ok && p.Kind == KindKubernetes {
			c.K8s = &r
		}
	case KindDocker:
		d := &DockerPos{ContainerID: h.Get(HdrContainer), Stream: h.Get(HdrStream), LastTSCount: int(geti(HdrLastTSCount))}
		for k, dst := range map[string]*time.Time{HdrFirstTS: &d.FirstTS, HdrLastTS: &d.LastTS} {
			if v := h.Get(k); v != "" {
				if *dst, err = time.Parse(time.RFC3339Nano, v); err != nil {
					errs = append(errs, fmt.Errorf("header %s: %w", k, err))
				}
			}
		}
		c.Docker = d
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("chunk on %s: %w", subject, errors.Join(errs...))
	}
	return c, nil
}

// EachEntry calls fn for every entry of the chunk in order, with the entry's bytes (its line
// terminator included, exactly as read) and whether it continues in the next entry. The
// bytes alias Data.
func (c *Chunk) EachEntry(fn func(i int, entry []byte, continued bool)) {
	cont := func(i int) bool {
		for _, j := range c.Continued {
			if j == i {
				return true
			}
		}
		return false
	}
	if c.Entries != nil {
		off := 0
		for i, n := range c.Entries {
			fn(i, c.Data[off:off+n], cont(i))
			off += n
		}
		return
	}
	data, i := c.Data, 0
	for len(data) > 0 {
		n := bytes.IndexByte(data, '\n') + 1
		if n == 0 {
			n = len(data)
		}
		fn(i, data[:n], cont(i))
		data, i = data[n:], i+1
	}
}

// TrimEOL removes a trailing "\n" or "\r\n".
func TrimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	return bytes.TrimSuffix(b, []byte{'\r'})
}

func joinInts(v []int) string {
	var b strings.Builder
	for i, n := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

func splitInts(s string) ([]int, error) {
	parts := strings.Split(s, ",")
	out := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad length %q", p)
		}
		out[i] = n
	}
	return out, nil
}
