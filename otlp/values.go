package otlp

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
)

// Normalize turns a Go value from an entry's fields (as JSON decoding and processors make
// them) into a Value: integers become int64, floats float64, maps key-value lists sorted
// by key, slices arrays, json.Number an int64 or float64, time.Time an RFC 3339 string, and
// anything else its fmt %v string.
func Normalize(v any) any {
	switch t := v.(type) {
	case nil, string, bool, int64, float64, []byte, []KV:
		return v
	case int:
		return int64(t)
	case int8:
		return int64(t)
	case int16:
		return int64(t)
	case int32:
		return int64(t)
	case uint:
		return uintValue(uint64(t))
	case uint8:
		return int64(t)
	case uint16:
		return int64(t)
	case uint32:
		return int64(t)
	case uint64:
		return uintValue(t)
	case float32:
		return float64(t)
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		if f, err := t.Float64(); err == nil {
			return f
		}
		return string(t)
	case map[string]any:
		return FromMap(t, nil)
	case []any:
		out := make([]any, len(t))
		for i := range t {
			out[i] = Normalize(t[i])
		}
		return out
	case []string:
		out := make([]any, len(t))
		for i := range t {
			out[i] = t[i]
		}
		return out
	case time.Time:
		return t.UTC().Format(time.RFC3339Nano)
	default:
		return fmt.Sprint(v)
	}
}

// uintValue keeps a uint64 beyond int64 exact, as a string: OTLP has no unsigned integer.
func uintValue(u uint64) any {
	if u > math.MaxInt64 {
		return strconv.FormatUint(u, 10)
	}
	return int64(u)
}

// FromMap is m as attributes sorted by key (so one entry always encodes the same), less the
// keys skip reports.
func FromMap(m map[string]any, skip func(string) bool) []KV {
	keys := make([]string, 0, len(m))
	for k := range m {
		if skip == nil || !skip(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]KV, len(keys))
	for i, k := range keys {
		out[i] = KV{Key: k, Value: Normalize(m[k])}
	}
	return out
}

// ToField turns a Value into what an entry's fields hold (what JSON can carry): key-value
// lists become maps (a repeated key: the last wins), bytes base64 strings, and NaN and the
// infinities the strings "NaN", "Infinity" and "-Infinity".
func ToField(v any) any {
	switch t := v.(type) {
	case float64:
		switch {
		case math.IsNaN(t):
			return "NaN"
		case math.IsInf(t, 1):
			return "Infinity"
		case math.IsInf(t, -1):
			return "-Infinity"
		}
		return t
	case []byte:
		return base64.StdEncoding.EncodeToString(t)
	case []any:
		out := make([]any, len(t))
		for i := range t {
			out[i] = ToField(t[i])
		}
		return out
	case []KV:
		return ToMap(t)
	default:
		return v
	}
}

// ToMap is kvs as a map of field values (ToField).
func ToMap(kvs []KV) map[string]any {
	m := make(map[string]any, len(kvs))
	for i := range kvs {
		m[kvs[i].Key] = ToField(kvs[i].Value)
	}
	return m
}

// String is a Value as a log line: a string as it is, anything else as JSON (a key-value
// list as an object).
func String(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	}
	b, err := json.Marshal(ToField(v))
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
