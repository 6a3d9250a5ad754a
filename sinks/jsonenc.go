package sinks

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/internal/jsonscan"
)

// The JSON the HTTP-family sinks send, appended by hand into a reused buffer: json.Marshal
// of an entry (reflection, a fresh slice per record, a map encoder for Fields) was ~40% of
// the elasticsearch sink's CPU into VictoriaLogs (#15). The output is byte for byte what
// encoding/json writes for the same values (HTML characters, invalid UTF-8, U+2028/2029
// escaped alike), which FuzzAppendEntryJSON checks.

// appendEntryJSON appends e as encoding/json marshals event.Entry (time, host, kind,
// source, stream, message, fields, continued), with "idKey":"id" last when idKey is set
// (quoted JSON, see idFieldKey).
func appendEntryJSON(dst []byte, e *event.Entry, idKey string, id []byte) ([]byte, error) {
	return appendDocJSON(dst, `{"time":`, e, true, idKey, id)
}

// appendESDocJSON appends an Elasticsearch document: the entry with its time under
// @timestamp (as Elastic's data streams and Kibana expect) and no continued flag.
func appendESDocJSON(dst []byte, e *event.Entry, idKey string, id []byte) ([]byte, error) {
	return appendDocJSON(dst, `{"@timestamp":`, e, false, idKey, id)
}

// appendDocJSON appends e's document, opened by open (its time key).
func appendDocJSON(dst []byte, open string, e *event.Entry, continued bool, idKey string, id []byte) ([]byte, error) {
	dst = append(dst, open...)
	var err error
	if dst, err = appendTimeJSON(dst, e.Time); err != nil {
		return dst, err
	}
	dst = appendOrigin(dst, e)
	if len(e.Fields) > 0 {
		dst = append(dst, `,"fields":`...)
		if dst, err = appendMapJSON(dst, e.Fields); err != nil {
			return dst, err
		}
	}
	if continued && e.Continued {
		dst = append(dst, `,"continued":true`...)
	}
	return appendIDField(dst, idKey, id), nil
}

// appendOrigin appends host, kind, source, stream (when set) and message.
func appendOrigin(dst []byte, e *event.Entry) []byte {
	dst = append(dst, `,"host":`...)
	dst = jsonscan.AppendStringHTML(dst, e.Host)
	dst = append(dst, `,"kind":`...)
	dst = jsonscan.AppendStringHTML(dst, e.Kind)
	dst = append(dst, `,"source":`...)
	dst = jsonscan.AppendStringHTML(dst, e.Source)
	if e.Stream != "" {
		dst = append(dst, `,"stream":`...)
		dst = jsonscan.AppendStringHTML(dst, e.Stream)
	}
	dst = append(dst, `,"message":`...)
	return jsonscan.AppendStringHTML(dst, e.Message)
}

// appendIDField closes the object, with "key":"id" before the brace when key is set. An ID
// is <stream>-<seq>-<index>: nothing in it needs escaping.
func appendIDField(dst []byte, key string, id []byte) []byte {
	if key != "" {
		dst = append(dst, ',')
		dst = append(dst, key...)
		dst = append(dst, ':', '"')
		dst = append(dst, id...)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// appendTimeJSON is time.Time's MarshalJSON, its error included.
func appendTimeJSON(dst []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y >= 10000 {
		return dst, fmt.Errorf("time %v: year outside of range [0,9999]", y)
	}
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"'), nil
}

// appendMapJSON appends m with its keys sorted, as encoding/json does.
func appendMapJSON(dst []byte, m map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonscan.AppendStringHTML(dst, k)
		dst = append(dst, ':')
		if dst, err = appendAnyJSON(dst, m[k]); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// appendAnyJSON appends the values a step puts into Fields (what encoding/json decodes
// into an any, plus integers); anything else goes through json.Marshal.
func appendAnyJSON(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return jsonscan.AppendStringHTML(dst, v), nil
	case bool:
		return strconv.AppendBool(dst, v), nil
	case float64:
		return appendFloatJSON(dst, v)
	case int:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(dst, v, 10), nil
	case map[string]any:
		if v == nil {
			return append(dst, "null"...), nil
		}
		return appendMapJSON(dst, v)
	case []any:
		if v == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		var err error
		for i, x := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendAnyJSON(dst, x); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// appendFloatJSON is encoding/json's float64 encoding (ES6 number-to-string).
func appendFloatJSON(dst []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, fmt.Errorf("json: unsupported value: %s", strconv.FormatFloat(f, 'g', -1, 64))
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

// bodyEstimate is about the size of a request body of batch: its messages and origins and
// room for the rest of each document. A body grown from empty by doubling copied itself
// twice over (growslice was 8% of the elasticsearch sink's CPU): the pooled buffers do not
// keep their memory across garbage collections, which come every few requests.
func bodyEstimate(batch []Record) int {
	n := 0
	for i := range batch {
		e := &batch[i].Entry
		n += len(e.Message) + len(e.Host) + len(e.Kind) + len(e.Source) + len(e.Stream) + 160
	}
	return min(n+n/16, maxKeptBuffer)
}
