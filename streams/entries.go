package streams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/logcap/logcap/event"
)

// Derived chunks (processor outputs) carry NDJSON, one event.Entry per line, and say so in
// a header so that a consumer never has to guess from the subject.
const (
	HdrFormat    = "Logcap-Format"
	FormatNDJSON = "ndjson"
)

// Entries decodes one stored message into its entries, the same way for every consumer
// (processors, sinks, replay): see EntriesRaw.
func Entries(subject string, h nats.Header, data []byte) ([]event.Entry, error) {
	es, _, err := decodeEntries(subject, h, data, false)
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
// Continued) are joined back into one entry. A derived chunk (header Logcap-Format: ndjson,
// or any subject outside logs.>) is one JSON entry per line.
func EntriesRaw(subject string, h nats.Header, data []byte) ([]event.Entry, [][]byte, error) {
	return decodeEntries(subject, h, data, true)
}

func decodeEntries(subject string, h nats.Header, data []byte, wantRaw bool) ([]event.Entry, [][]byte, error) {
	if h.Get(HdrFormat) == FormatNDJSON || !strings.HasPrefix(subject, LogsPrefix+".") {
		es, err := DecodeNDJSON(data)
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
	j := joiner{wantRaw: wantRaw, entries: make([]event.Entry, 0, n)}
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
	e.Message = string(msg)
	j.entries = append(j.entries, e)
	if j.wantRaw {
		j.raws = append(j.raws, raw)
	}
}

// end closes a chunk that ends inside a split line, longer than a chunk can hold: its parts
// here are one entry that continues in the next chunk.
func (j *joiner) end() {
	if j.pending {
		j.first.Continued = true
		j.emit(j.first, j.msg, j.raw)
	}
}

// DecodeNDJSON reads a derived chunk: one event.Entry JSON document per line. Numbers in
// fields become int64 when they are integers that fit, float64 otherwise, and json.Number
// for integers beyond int64, as the json step makes them, so a second processor sees the
// same types as the first.
func DecodeNDJSON(data []byte) ([]event.Entry, error) {
	if out, ok := decodeNDJSONStream(data); ok {
		return out, nil
	}
	return decodeNDJSONLines(data)
}

// decodeNDJSONStream reads the whole chunk with one json.Decoder: a Decoder per line was
// 29% of the CPU of file → json → file sink (the sink decodes the derived chunks). It gives
// up (false) on anything the line-by-line reading could judge differently — any error, two
// documents on one line, a document across lines — and that reading then decides, with its
// error naming the line.
func decodeNDJSONStream(data []byte) ([]event.Entry, bool) {
	out := make([]event.Entry, 0, bytes.Count(data, []byte{'\n'})+1)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	prev := 0
	for {
		var e event.Entry
		if err := dec.Decode(&e); err != nil {
			return out, errors.Is(err, io.EOF)
		}
		end := int(dec.InputOffset())
		if end <= prev || end > len(data) {
			return nil, false
		}
		seg := data[prev:end]
		start := 0
		for start < len(seg) && isJSONSpace(seg[start]) {
			start++
		}
		if bytes.IndexByte(seg[start:], '\n') >= 0 || len(out) > 0 && bytes.IndexByte(seg[:start], '\n') < 0 {
			return nil, false
		}
		prev = end
		for k, v := range e.Fields {
			e.Fields[k] = numbers(v)
		}
		out = append(out, e)
	}
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// decodeNDJSONLines reads a chunk line by line, each line one document and nothing else.
func decodeNDJSONLines(data []byte) ([]event.Entry, error) {
	out := make([]event.Entry, 0, bytes.Count(data, []byte{'\n'})+1)
	line := 0
	for len(data) > 0 {
		line++
		n := bytes.IndexByte(data, '\n')
		var l []byte
		if n < 0 {
			l, data = data, nil
		} else {
			l, data = data[:n], data[n+1:]
		}
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(l))
		dec.UseNumber()
		var e event.Entry
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("line %d: data after the entry", line)
		}
		for k, v := range e.Fields {
			e.Fields[k] = numbers(v)
		}
		out = append(out, e)
	}
	return out, nil
}

func numbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		s := string(t)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return i
			}
			return t
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) {
			return f
		}
		return t
	case map[string]any:
		for k, x := range t {
			t[k] = numbers(x)
		}
	case []any:
		for i, x := range t {
			t[i] = numbers(x)
		}
	}
	return v
}

// AppendNDJSON appends e as one JSON line (with its '\n'). HTML characters are not escaped,
// so `nats sub` shows messages as they were. Invalid UTF-8 in strings becomes U+FFFD: JSON
// cannot carry it (the raw bytes stay in LOGS). A field JSON cannot encode (NaN) is an error.
func AppendNDJSON(dst []byte, e *event.Entry) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil { // Encode ends the document with '\n'
		return dst, fmt.Errorf("encode entry: %w", err)
	}
	return buf.Bytes(), nil
}

// DerivedMsg builds a derived chunk: the entries as NDJSON on subject, with msgID as its
// Nats-Msg-Id (from the input's stream and sequence, so that a redelivery or a rebuild of
// the same input can never store it twice).
func DerivedMsg(subject, msgID string, entries []event.Entry) (*nats.Msg, error) {
	var data []byte
	var err error
	for i := range entries {
		if data, err = AppendNDJSON(data, &entries[i]); err != nil {
			return nil, fmt.Errorf("derived chunk %s: entry %d: %w", msgID, i, err)
		}
	}
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set(HdrMsgID, msgID)
	m.Header.Set(HdrFormat, FormatNDJSON)
	m.Header.Set(HdrLines, strconv.Itoa(len(entries)))
	return m, nil
}
