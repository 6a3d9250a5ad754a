package streams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/internal/jsonscan"
)

// FormatLinesJSON is the default format of a derived chunk (issue 17): the entries'
// messages first, one per line and unescaped, as `nats sub --raw` shows a raw chunk; then
// one JSON object per entry, in the same order, with what the entry has beyond them:
//
//	{"level":"info","msg":"done"}
//	{"level":"warn","msg":"slow"}
//	{"fields_from":"json"}
//	{"time":"2026-12-06T10:00:03Z","fields_from":"json"}
//
// An object has the keys of the entry's NDJSON document (FormatNDJSON) but message, and
// only those that differ from what the chunk implies:
//   - host, kind and source: the subject's (a derived chunk's subject is
//     <prefix>.<kind>.<host>.<source>, the input's);
//   - time: the previous entry's + 1 ns; for the first, the chunk's Logcap-Read-Time (a
//     file chunk's entries are at its read time + their index in ns);
//   - fields: "fields_from":"json" stands for fields that are exactly the message parsed
//     as a JSON object (event.FieldsFromJSON, jsonscan.Parse), as a json step leaves them.
//
// Logcap-Lines gives the number of entries, so the two halves need no separator. A chunk
// with a message that holds a newline or is not UTF-8 (NDJSON would turn it into U+FFFD)
// is written as NDJSON instead, whose entries read back the same. For JSON lines through a
// json step it stores 1.1× the input's bytes where NDJSON stored 2.8× (a second, escaped
// copy of each message, its fields again, time, host, kind and source), and a sink that
// writes raw lines reads the messages without decoding JSON. The fields of "fields_from"
// are what jsonscan.Parse makes of the message, for chunks stored long ago too: its number
// rules are part of this format.
const FormatLinesJSON = config.OutputLinesJSON

// keyFieldsFrom is the bit of the "fields_from" key of a lines+json object.
const keyFieldsFrom = keyContinued << 1

// derivedDefaults is what a lines+json chunk's entries have unless their objects say
// otherwise.
type derivedDefaults struct {
	kind, host, source string
	time               time.Time // the first entry's; the next one's is the previous + 1 ns
}

// defaultsOf is the defaults of a derived chunk on subject with headers h: the last three
// tokens of the subject, decoded (a route's prefix may hold dots; none when the subject is
// not of that shape), and the Logcap-Read-Time header (zero when absent or unreadable). A
// dead letter's subject is the original's (Logcap-Orig-Subject).
func defaultsOf(subject string, h nats.Header) derivedDefaults {
	var d derivedDefaults
	if orig := h.Get(HdrDLSubject); orig != "" {
		subject = orig
	}
	if v := h.Get(HdrReadTime); v != "" {
		d.time, _ = time.Parse(time.RFC3339Nano, v)
	}
	i := strings.LastIndexByte(subject, '.')
	if i < 0 {
		return d
	}
	j := strings.LastIndexByte(subject[:i], '.')
	if j < 0 {
		return d
	}
	k := strings.LastIndexByte(subject[:j], '.')
	host, err1 := DecodeToken(subject[j+1 : i])
	source, err2 := DecodeToken(subject[i+1:])
	if k < 0 || err1 != nil || err2 != nil {
		return d
	}
	d.kind, d.host, d.source = subject[k+1:j], host, source
	return d
}

// appendLinesJSON appends the lines+json payload of entries to dst. ok=false: an entry it
// cannot write that way (see FormatLinesJSON), or a value appendEntry does not handle;
// nothing of dst's length is used then.
func appendLinesJSON(dst []byte, def derivedDefaults, entries []event.Entry) ([]byte, bool) {
	n := len(dst)
	for i := range entries {
		m := entries[i].Message
		if strings.IndexByte(m, '\n') >= 0 || !utf8.ValidString(m) {
			return dst[:n], false
		}
		dst = append(dst, m...)
		dst = append(dst, '\n')
	}
	next := def.time
	for i := range entries {
		e := &entries[i]
		start := len(dst)
		dst = append(dst, '{')
		if !e.Time.Equal(next) || e.Time.Location() != next.Location() {
			var ok bool
			dst = append(dst, `"time":`...)
			if dst, ok = jsonscan.AppendTime(dst, e.Time); !ok {
				return dst[:n], false
			}
		}
		next = e.Time.Add(1)
		for _, kv := range [...]struct{ key, v, def string }{
			{`"host":`, e.Host, def.host}, {`"kind":`, e.Kind, def.kind}, {`"source":`, e.Source, def.source},
		} {
			if kv.v != kv.def {
				dst = appendKey(dst, start, kv.key)
				dst = jsonscan.AppendString(dst, kv.v)
			}
		}
		if e.Stream != "" {
			dst = appendKey(dst, start, `"stream":`)
			dst = jsonscan.AppendString(dst, e.Stream)
		}
		switch {
		case e.FieldsFrom == event.FieldsFromJSON:
			dst = appendKey(dst, start, `"fields_from":"json"`)
		case len(e.Fields) == 0:
		default:
			var ok bool
			dst = appendKey(dst, start, `"fields":`)
			if dst, ok = jsonscan.AppendMap(dst, e.Fields); !ok {
				return dst[:n], false
			}
		}
		if e.Continued {
			dst = appendKey(dst, start, `"continued":true`)
		}
		dst = append(dst, '}', '\n')
	}
	return dst, true
}

// FieldsOf is e's fields. An entry a json step left with FieldsFrom and no fields (the steps
// after it in its processor read what they needed from the message: processors/lazy.go) has
// them parsed from its message now; the json step checked that they parse (jsonscan.Members).
func FieldsOf(e *event.Entry) map[string]any {
	if len(e.Fields) > 0 || e.FieldsFrom != event.FieldsFromJSON {
		return e.Fields
	}
	m, _ := jsonscan.Parse(e.Message)
	return m
}

// estimateLinesJSON is a first size for the lines+json of entries: the messages, and the
// objects as if each were a fields_from.
func estimateLinesJSON(entries []event.Entry) int {
	n := 0
	for i := range entries {
		n += len(entries[i].Message) + 24
	}
	return n
}

// appendKey appends key to the object begun at start, after a comma unless it is the first.
func appendKey(dst []byte, start int, key string) []byte {
	if len(dst) > start+1 {
		dst = append(dst, ',')
	}
	return append(dst, key...)
}

// decodeLinesJSON reads a lines+json chunk of n entries. The entries' strings share data's
// memory (see Entries). noFields: no fields are built (those given are checked). An object
// jsonscan is not sure of is read by encoding/json, which decides.
func decodeLinesJSON(def derivedDefaults, data []byte, n int, noFields bool) ([]event.Entry, error) {
	if n < 0 || n > len(data)/4 { // an entry is 4 bytes at least: "\n" and "{}\n"
		return nil, fmt.Errorf("%s %d: not a count of entries for %d bytes", HdrLines, n, len(data))
	}
	s := payloadString(data)
	out := make([]event.Entry, n)
	for i := range out {
		k := strings.IndexByte(s, '\n')
		if k < 0 {
			return nil, fmt.Errorf("message %d of %d: no end of line", i+1, n)
		}
		out[i].Message, s = s[:k], s[k+1:]
	}
	var d jsonscan.Decoder
	d.ReserveArena(len(s))
	next := def.time
	for i := range out {
		k := strings.IndexByte(s, '\n')
		if k < 0 {
			return nil, fmt.Errorf("entry %d of %d: no object (%d bytes left)", i+1, n, len(s))
		}
		line := s[:k]
		s = s[k+1:]
		e := &out[i]
		msg := e.Message
		d.Reset(line)
		seen, ok := decodeEntry(&d, e, noFields, true)
		if ok {
			d.SkipSpace()
			ok = d.Pos() == len(line) && seen&keyMessage == 0
		}
		if !ok {
			*e = event.Entry{} // encoding/json decides, and its error names the entry
			var err error
			if seen, err = decodeObjectStd(line, e); err != nil {
				return nil, fmt.Errorf("entry %d of %d: %w", i+1, n, err)
			}
		}
		e.Message = msg
		if err := fillDefaults(e, seen, def, next, noFields); err != nil {
			return nil, fmt.Errorf("entry %d of %d: %w", i+1, n, err)
		}
		next = e.Time.Add(1)
	}
	if len(bytes.TrimSpace(data[len(data)-len(s):])) > 0 {
		return nil, fmt.Errorf("%d bytes after the %d entries %s counts", len(s), n, HdrLines)
	}
	return out, nil
}

// fillDefaults gives e what its object left out (seen: the keys it held): host, kind and
// source from def, time next, and its fields parsed from its message for fields_from.
func fillDefaults(e *event.Entry, seen int, def derivedDefaults, next time.Time, noFields bool) error {
	for _, f := range [...]struct {
		bit int
		dst *string
		def string
	}{{keyHost, &e.Host, def.host}, {keyKind, &e.Kind, def.kind}, {keySource, &e.Source, def.source}} {
		if seen&f.bit == 0 {
			*f.dst = f.def
		}
	}
	if seen&keyTime == 0 {
		e.Time = next
	}
	if seen&keyFieldsFrom == 0 {
		if noFields {
			e.Fields = nil // the fallback reading built them
		}
		return nil
	}
	if seen&keyFields != 0 {
		return errors.New("both fields and fields_from")
	}
	if noFields {
		e.Fields = nil
		return nil
	}
	m, err := jsonscan.Parse(e.Message)
	if err == nil && len(m) == 0 {
		err = errors.New("an empty object")
	}
	if err != nil {
		// Not written by logcap (its json step checked the message), or read by a Parse
		// that changed: the entry keeps its message and says so, as a json step would.
		m = map[string]any{"_error": "fields_from json: " + err.Error()}
		e.FieldsFrom = ""
	}
	e.Fields = m
	return nil
}

// linesJSONObject is a lines+json object as encoding/json reads it: a pointer tells a key
// given from one left out.
type linesJSONObject struct {
	Time       *time.Time      `json:"time"`
	Host       *string         `json:"host"`
	Kind       *string         `json:"kind"`
	Source     *string         `json:"source"`
	Stream     string          `json:"stream"`
	Message    json.RawMessage `json:"message"`
	Fields     json.RawMessage `json:"fields"`
	FieldsFrom *string         `json:"fields_from"`
	Continued  bool            `json:"continued"`
}

// decodeObjectStd reads one object of a lines+json chunk with encoding/json, as
// decodeNDJSONLines reads a line; seen has the bits of the keys it held.
func decodeObjectStd(line string, e *event.Entry) (seen int, err error) {
	if t := strings.TrimLeft(line, " \t\r"); !strings.HasPrefix(t, "{") {
		return 0, errors.New("not a JSON object")
	}
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	var o linesJSONObject
	if err := dec.Decode(&o); err != nil {
		return 0, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return 0, errors.New("data after the object")
	}
	if o.Message != nil {
		return 0, errors.New("a message in the object (the messages are the lines before)")
	}
	if o.Time != nil {
		e.Time, seen = *o.Time, seen|keyTime
	}
	for _, f := range [...]struct {
		v   *string
		dst *string
		bit int
	}{{o.Host, &e.Host, keyHost}, {o.Kind, &e.Kind, keyKind}, {o.Source, &e.Source, keySource}} {
		if f.v != nil {
			*f.dst, seen = *f.v, seen|f.bit
		}
	}
	e.Stream, e.Continued = o.Stream, o.Continued
	if o.Fields != nil {
		seen |= keyFields
		fd := json.NewDecoder(bytes.NewReader(o.Fields))
		fd.UseNumber()
		if err := fd.Decode(&e.Fields); err != nil {
			return 0, fmt.Errorf("fields: %w", err)
		}
		jsonscan.ConvertNumbers(e.Fields)
	}
	if o.FieldsFrom != nil {
		if *o.FieldsFrom != event.FieldsFromJSON {
			return 0, fmt.Errorf("fields_from %q: want %q", *o.FieldsFrom, event.FieldsFromJSON)
		}
		seen |= keyFieldsFrom
		e.FieldsFrom = event.FieldsFromJSON
	}
	return seen, nil
}

// linesOf is a derived chunk's Logcap-Lines.
func linesOf(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s %q: %w", HdrLines, v, err)
	}
	return n, nil
}
