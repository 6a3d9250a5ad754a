package streams

import (
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

// Derived chunks (processor outputs) say their format in a header, so that a consumer never
// has to guess from the subject: lines+json (FormatLinesJSON, the default), or NDJSON, one
// event.Entry per line (what logcap wrote before lines+json, and a processor's
// `output_format: ndjson`).
const (
	HdrFormat    = "Logcap-Format"
	FormatNDJSON = config.OutputNDJSON
)

// Entries decodes one stored message into its entries, the same way for every consumer
// (processors, sinks, replay): see EntriesRaw. The entries' strings may share data's memory:
// data must not change while they are in use (a message's payload never does).
func Entries(subject string, h nats.Header, data []byte) ([]event.Entry, error) {
	es, _, err := decodeEntries(subject, h, data, want{fields: true})
	return es, err
}

// EntriesRaw is Entries plus each entry's original bytes: for a raw chunk, the entry as read
// without its line terminator (for a Docker line, with its timestamp prefix; for the parts
// of a split line, the parts joined); nil for derived chunks, which have no original bytes.
// The raw bytes alias data.
//
// A raw LOGS chunk (subject logs.<kind>.<host>.<source>) gives, per entry: Host, Kind and
// Source from the subject; for a file, Message = the entry without its line terminator and
// Time = the chunk's read time + the entry's index in the chunk, in ns; for Docker, Time and Message from the `docker logs -t` prefix
// and Stream from the chunk's header. The parts of a line split at max_line_bytes (marked
// Continued) are joined back into one entry. A derived chunk (header Logcap-Format:
// lines+json or ndjson; ndjson for any subject outside logs.> without one) has no raw bytes.
func EntriesRaw(subject string, h nats.Header, data []byte) ([]event.Entry, [][]byte, error) {
	return decodeEntries(subject, h, data, want{raw: true, fields: true})
}

// EntriesRawNoFields is EntriesRaw for a consumer that does not read Fields (a sink writing
// raw lines): a derived chunk's fields objects are checked as JSON but not built, so its
// entries have no Fields. Building them was most of such a sink's decoding.
func EntriesRawNoFields(subject string, h nats.Header, data []byte) ([]event.Entry, [][]byte, error) {
	return decodeEntries(subject, h, data, want{raw: true})
}

// want says what a consumer reads of the entries beyond their message and metadata.
type want struct {
	raw    bool // the raw bytes of a raw chunk's entries
	fields bool // a derived entry's fields
}

// payloadString is a message's payload as a string without a copy: the strings of its
// entries are parts of it. A copy of every chunk was 5% of the CPU of file → json → file
// sink and as much again in the GC. Safe because a payload is never written to once
// received: nats.go gives every message a payload of its own, and logcap's consumers only
// read it (raw sinks write EntriesRaw's slices of it as they are).
func payloadString(data []byte) string {
	return unsafe.String(unsafe.SliceData(data), len(data))
}

func decodeEntries(subject string, h nats.Header, data []byte, w want) ([]event.Entry, [][]byte, error) {
	wantRaw := w.raw
	if h.Get(HdrFormat) == FormatLinesJSON {
		n, err := linesOf(h.Get(HdrLines))
		if err == nil {
			var es []event.Entry
			if es, err = decodeLinesJSON(defaultsOf(subject, h), data, n, !w.fields); err == nil {
				return es, nil, nil
			}
		}
		return nil, nil, fmt.Errorf("derived chunk (%s) on %s: %w", FormatLinesJSON, subject, err)
	}
	if h.Get(HdrFormat) == FormatNDJSON || !strings.HasPrefix(subject, LogsPrefix+".") {
		es, err := decodeNDJSON(data, !w.fields)
		if err != nil {
			return nil, nil, fmt.Errorf("derived chunk on %s: %w", subject, err)
		}
		return es, nil, nil
	}
	c, err := DecodeChunk(subject, h, data)
	if err != nil {
		return nil, nil, err
	}
	if c.Kind == KindKubernetes {
		es, raws := c.k8sEntries(wantRaw)
		return es, raws, nil
	}
	n := c.Lines
	if c.Entries != nil {
		n = len(c.Entries)
	}
	n = min(max(n, 1), len(data)+1) // a header is a hint, not a reason to allocate
	// The chunk as a string, which every entry's message is a part of: no allocation per
	// entry, and no copy of the chunk (payloadString).
	j := joiner{wantRaw: wantRaw, entries: make([]event.Entry, 0, n), data: data, str: payloadString(data)}
	if wantRaw {
		j.raws = make([][]byte, 0, n)
	}
	c.EachEntry(func(_ int, b []byte, continued bool) {
		e, part, body := c.entry(b, continued)
		j.add(e, part, body, continued)
	})
	j.end()
	if c.Kind != KindDocker && c.Kind != KindKubernetes && !c.ReadTime.IsZero() {
		// Entry i of a file chunk is at the read time + i ns: the entries of one source are
		// strictly ordered in time (a monitor's read times increase by more than a chunk's
		// entry count in ns), and the same on every decode, a redelivery's included.
		for i := range j.entries {
			j.entries[i].Time = c.ReadTime.Add(time.Duration(i))
		}
	}
	return j.entries, j.raws, nil
}

// entry reads one entry's bytes: the entry without its message, the bytes as read less the
// terminator (part), and the message (body: for Docker, what follows the timestamp).
func (c *Chunk) entry(b []byte, continued bool) (e event.Entry, part, body []byte) {
	e = event.Entry{Host: c.Host, Kind: c.Kind, Source: c.Source}
	// A split part ends where the monitor cut it: its last byte is content, not a
	// terminator (even a '\r' that happened to precede the cut '\n').
	part = b
	if !continued {
		part = TrimEOL(b)
	}
	body = part
	if c.Kind != KindDocker {
		e.Time = c.ReadTime
		return e, part, body
	}
	if c.Docker != nil {
		e.Stream = c.Docker.Stream
	}
	if continued {
		// A split part has no terminator to trim: its message is all after the timestamp.
		if ts, _, rest, err := CutDockerTimestamp(part); err == nil {
			e.Time, body = ts, rest
		} else if ts, _, ok := ParseDockerLine(part); ok {
			e.Time, body = ts, part[len(part):] // a timestamp alone
		}
	} else if ts, m, ok := ParseDockerLine(part); ok {
		e.Time, body = ts, m
	}
	return e, part, body
}

// joiner collects a chunk's entries, joining the parts of a line split at max_line_bytes
// (marked continued) back into one entry that keeps the first part's time and source.
type joiner struct {
	wantRaw bool
	data    []byte // the chunk, and
	str     string // its copy as a string
	entries []event.Entry
	raws    [][]byte
	msg     []byte // the message being assembled from the parts of a split line
	raw     []byte
	pending bool // msg holds parts of an entry that continues
	first   event.Entry
}

func (j *joiner) add(e event.Entry, part, body []byte, continued bool) {
	if !j.pending {
		j.first = e
		j.msg, j.raw = nil, nil
	}
	joined := continued || j.pending
	if joined {
		j.msg = append(j.msg, body...)
		if j.wantRaw {
			j.raw = append(j.raw, part...)
		}
	}
	j.pending = continued
	switch {
	case continued:
	case joined:
		j.emit(j.first, j.msg, j.raw)
		j.msg, j.raw = nil, nil
	default:
		j.emit(e, body, part)
	}
}

func (j *joiner) emit(e event.Entry, msg, raw []byte) {
	e.Message = j.message(msg)
	j.entries = append(j.entries, e)
	if j.wantRaw {
		j.raws = append(j.raws, raw)
	}
}

// message is msg as a string: a part of the chunk's string when msg is a part of the chunk
// (the parts of a split line are joined in a buffer of their own: those are copied).
func (j *joiner) message(msg []byte) string {
	if len(msg) == 0 {
		return ""
	}
	off := cap(j.data) - cap(msg)
	if off >= 0 && off+len(msg) <= len(j.data) && &j.data[off] == &msg[0] {
		return j.str[off : off+len(msg)]
	}
	return string(msg)
}

// end closes a chunk that ends inside a split line, longer than a chunk can hold: its parts
// here are one entry that continues in the next chunk.
func (j *joiner) end() {
	if j.pending {
		j.first.Continued = true
		j.emit(j.first, j.msg, j.raw)
	}
}
