package streams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/internal/jsonscan"
)

// DecodeNDJSON reads a derived chunk: one event.Entry JSON document per line. Numbers in
// fields become int64 when they are integers that fit, float64 otherwise, and json.Number
// for integers beyond int64, as the json step makes them, so a second processor sees the
// same types as the first. The entries' strings may share data's memory (see Entries).
//
// The chunk is read by jsonscan (decodeNDJSONFast); whatever it is not sure of is read by
// encoding/json, first in one pass over the chunk (decodeNDJSONStream), and when that gives
// up too, line by line, whose error names the line.
func DecodeNDJSON(data []byte) ([]event.Entry, error) {
	return decodeNDJSON(data, false)
}

// decodeNDJSON is DecodeNDJSON; noFields: the fields objects are skipped (checked, not
// built) where jsonscan reads the chunk. The readings by encoding/json that decide what
// jsonscan is not sure of still build them: a rare path, and the same verdict.
func decodeNDJSON(data []byte, noFields bool) ([]event.Entry, error) {
	if out, ok := decodeNDJSONFast(data, noFields); ok {
		return out, nil
	}
	out, ok := decodeNDJSONStream(data)
	var err error
	if !ok {
		out, err = decodeNDJSONLines(data)
	}
	if noFields {
		for i := range out { // the same entries whichever reading answered
			out[i].Fields = nil
		}
	}
	return out, err
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
		jsonscan.ConvertNumbers(e.Fields)
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
		jsonscan.ConvertNumbers(e.Fields)
		out = append(out, e)
	}
	return out, nil
}

// AppendNDJSON appends e as one JSON line (with its '\n'). HTML characters are not escaped,
// so `nats sub` shows messages as they were. Invalid UTF-8 in strings becomes U+FFFD: JSON
// cannot carry it (the raw bytes stay in LOGS). A field JSON cannot encode (NaN) is an error.
// The bytes are encoding/json's, written by jsonscan without reflection (appendEntry); an
// entry it does not handle is written by encoding/json itself.
func AppendNDJSON(dst []byte, e *event.Entry) ([]byte, error) {
	if out, ok := appendEntry(dst, e); ok {
		return out, nil
	}
	return appendNDJSONStd(dst, e)
}

func appendNDJSONStd(dst []byte, e *event.Entry) ([]byte, error) {
	if fields := FieldsOf(e); len(e.Fields) == 0 && len(fields) > 0 {
		c := *e
		c.Fields = fields
		e = &c
	}
	buf := bytes.NewBuffer(dst)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil { // Encode ends the document with '\n'
		return dst, fmt.Errorf("encode entry: %w", err)
	}
	return buf.Bytes(), nil
}

// IdentityHeaders are the input chunk's headers a processor copies onto its derived chunks:
// what identifies the entries beyond their JSON (when they were read, the container and its
// image), for sinks that map it (the otlp sink's observed time and resource attributes).
var IdentityHeaders = []string{HdrReadTime, HdrContainer, HdrImage}

// DerivedMsg builds a derived chunk in the default format (FormatLinesJSON): the entries
// on subject, with msgID as its Nats-Msg-Id (from the input's stream and sequence, so that
// a redelivery or a rebuild of the same input can never store it twice).
func DerivedMsg(subject, msgID string, entries []event.Entry) (*nats.Msg, error) {
	data, format, err := AppendDerived(nil, FormatLinesJSON, subject, nil, msgID, entries)
	if err != nil {
		return nil, err
	}
	return DerivedMsgData(subject, msgID, format, len(entries), data), nil
}

// AppendDerived appends the payload of a derived chunk on subject with identity headers h
// (IdentityHeaders: its Logcap-Read-Time) to dst in format (FormatLinesJSON or
// FormatNDJSON), and returns the format it wrote: NDJSON when lines+json cannot carry the
// entries. A processor encodes all the chunks of a batch into one buffer it reuses.
func AppendDerived(dst []byte, format, subject string, h nats.Header, msgID string, entries []event.Entry) ([]byte, string, error) {
	if format == FormatLinesJSON {
		if cap(dst)-len(dst) < 64 {
			dst = slices.Grow(dst, estimateLinesJSON(entries))
		}
		if out, ok := appendLinesJSON(dst, defaultsOf(subject, h), entries); ok {
			return out, FormatLinesJSON, nil
		}
	}
	if cap(dst)-len(dst) < 64 {
		dst = slices.Grow(dst, estimate(entries))
	}
	for i := range entries {
		if out, ok := appendEntry(dst, &entries[i]); ok {
			dst = out
			continue
		}
		var err error
		if dst, err = appendNDJSONStd(dst, &entries[i]); err != nil {
			return dst, "", fmt.Errorf("derived chunk %s: entry %d: %w", msgID, i, err)
		}
	}
	return dst, FormatNDJSON, nil
}

// DerivedMsgData is the message of a derived chunk whose payload, in format, is data.
func DerivedMsgData(subject, msgID, format string, entries int, data []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set(HdrMsgID, msgID)
	m.Header.Set(HdrFormat, format)
	m.Header.Set(HdrLines, strconv.Itoa(entries))
	return m
}
