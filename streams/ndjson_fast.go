package streams

import (
	"bytes"
	"strings"

	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/internal/jsonscan"
)

// The keys of an entry's NDJSON document, in event.Entry's order (encoding/json's).
const (
	keyTime = 1 << iota
	keyHost
	keyKind
	keySource
	keyStream
	keyMessage
	keyFields
	keyContinued
)

// appendEntry writes e's NDJSON line as encoding/json writes event.Entry: fields in struct
// order, stream, fields and continued omitted when empty. ok=false: a value it does not
// handle; nothing of dst's length is used then.
func appendEntry(dst []byte, e *event.Entry) ([]byte, bool) {
	n := len(dst)
	dst = append(dst, `{"time":`...)
	dst, ok := jsonscan.AppendTime(dst, e.Time)
	if !ok {
		return dst[:n], false
	}
	dst = append(dst, `,"host":`...)
	dst = jsonscan.AppendString(dst, e.Host)
	dst = append(dst, `,"kind":`...)
	dst = jsonscan.AppendString(dst, e.Kind)
	dst = append(dst, `,"source":`...)
	dst = jsonscan.AppendString(dst, e.Source)
	if e.Stream != "" {
		dst = append(dst, `,"stream":`...)
		dst = jsonscan.AppendString(dst, e.Stream)
	}
	dst = append(dst, `,"message":`...)
	dst = jsonscan.AppendString(dst, e.Message)
	if fields := FieldsOf(e); len(fields) > 0 {
		dst = append(dst, `,"fields":`...)
		if dst, ok = jsonscan.AppendMap(dst, fields); !ok {
			return dst[:n], false
		}
	}
	if e.Continued {
		dst = append(dst, `,"continued":true`...)
	}
	return append(dst, '}', '\n'), true
}

// estimate is a first size for the NDJSON of entries: the messages escaped, the metadata
// and fields, from the first entry.
func estimate(entries []event.Entry) int {
	if len(entries) == 0 {
		return 0
	}
	one, _ := appendEntry(make([]byte, 0, 512), &entries[0])
	return (len(one) + len(one)/8) * len(entries)
}

// decodeNDJSONFast reads a derived chunk with jsonscan: the chunk as a string (payloadString,
// no copy), which every entry's strings share, and one buffer for the strings that had
// escapes. It answers only for what the line-by-line reading would read the same (one object
// per line, each key of event.Entry at most once, each with the type encoding/json writes
// there); false otherwise, and encoding/json decides. noFields: the fields objects are
// skipped, not built (the entries have no Fields).
func decodeNDJSONFast(data []byte, noFields bool) ([]event.Entry, bool) {
	s := payloadString(data)
	out := make([]event.Entry, 0, bytes.Count(data, []byte{'\n'})+1)
	var d jsonscan.Decoder
	d.ReserveArena(len(s))
	for len(s) > 0 {
		line := s
		if n := strings.IndexByte(s, '\n'); n >= 0 {
			line, s = s[:n], s[n+1:]
		} else {
			s = ""
		}
		d.Reset(line)
		d.SkipSpace()
		if d.Pos() == len(line) {
			continue // a blank line
		}
		out = append(out, event.Entry{})
		if _, ok := decodeEntry(&d, &out[len(out)-1], noFields, false); !ok {
			return nil, false
		}
		d.SkipSpace()
		if d.Pos() != len(line) {
			return nil, false
		}
	}
	return out, true
}

// decodeEntry reads one entry object; seen has the bits of the keys it held. linesJSON:
// an object of a lines+json chunk, which may hold fields_from.
func decodeEntry(d *jsonscan.Decoder, e *event.Entry, noFields, linesJSON bool) (seen int, ok bool) {
	if !d.Consume('{') {
		return 0, false
	}
	d.SkipSpace()
	if d.Consume('}') {
		return 0, true
	}
	for {
		d.SkipSpace()
		k, ok := d.String()
		if !ok {
			return seen, false
		}
		d.SkipSpace()
		if !d.Consume(':') {
			return seen, false
		}
		d.SkipSpace()
		bit, ok := decodeEntryField(d, e, k, noFields, linesJSON)
		if !ok || seen&bit != 0 {
			return seen, false
		}
		seen |= bit
		d.SkipSpace()
		if d.Consume(',') {
			continue
		}
		return seen, d.Consume('}')
	}
}

// decodeEntryField reads the value of key k into e.
func decodeEntryField(d *jsonscan.Decoder, e *event.Entry, k string, noFields, linesJSON bool) (int, bool) {
	var dst *string
	var bit int
	switch k {
	case "time":
		start := d.Pos()
		v, ok := d.String()
		// time.Time reads the raw bytes: an escape would mean something else to it.
		if !ok || strings.IndexByte(d.Consumed(start), '\\') >= 0 {
			return 0, false
		}
		var buf [64]byte
		return keyTime, e.Time.UnmarshalText(append(buf[:0], v...)) == nil
	case "host":
		dst, bit = &e.Host, keyHost
	case "kind":
		dst, bit = &e.Kind, keyKind
	case "source":
		dst, bit = &e.Source, keySource
	case "stream":
		dst, bit = &e.Stream, keyStream
	case "message":
		dst, bit = &e.Message, keyMessage
	case "fields":
		if noFields {
			// An object, as Object would read it (encoding/json reads null too: it decides).
			return keyFields, d.Peek() == '{' && d.Skip()
		}
		m, ok := d.Object()
		e.Fields = m
		return keyFields, ok
	case "fields_from":
		if !linesJSON || !d.Literal(`"json"`) {
			return 0, false
		}
		e.FieldsFrom = event.FieldsFromJSON
		return keyFieldsFrom, true
	case "continued":
		switch {
		case d.Literal("true"):
			e.Continued = true
		case d.Literal("false"):
		default:
			return 0, false
		}
		return keyContinued, true
	default:
		return 0, false
	}
	v, ok := d.String()
	*dst = v
	return bit, ok
}
