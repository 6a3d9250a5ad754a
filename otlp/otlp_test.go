package otlp

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

func sample() *Logs {
	return &Logs{Resources: []ResourceLogs{{
		Attrs:     []KV{{Key: "host.name", Value: "web-1"}, {Key: "service.name", Value: "shop"}},
		SchemaURL: "https://opentelemetry.io/schemas/1.30.0",
		Scopes: []ScopeLogs{{
			Name: "app", Version: "1.2", Attrs: []KV{{Key: "lib", Value: true}},
			Records: []Record{
				{Time: 1700000000123456789, Observed: 1700000000223456789, SeverityNumber: SeverityWarn, SeverityText: "WARN",
					Body: "hello ünïcode", Flags: 1, TraceID: bytes.Repeat([]byte{0xab}, 16), SpanID: bytes.Repeat([]byte{0xcd}, 8),
					EventName: "checkout", Attrs: []KV{
						{Key: "s", Value: "x"}, {Key: "b", Value: false}, {Key: "i", Value: int64(-42)},
						{Key: "big", Value: int64(math.MaxInt64)}, {Key: "f", Value: 1.5},
						{Key: "arr", Value: []any{"a", int64(1), []any{}}},
						{Key: "kv", Value: []KV{{Key: "in", Value: "ner"}}}, {Key: "raw", Value: []byte{0, 1, 2}},
						{Key: "empty", Value: nil},
					}},
				{Body: []KV{{Key: "structured", Value: int64(1)}}},
				{},
			},
		}},
	}, {Scopes: []ScopeLogs{{Records: []Record{{Body: "second resource"}}}}}}}
}

// Protobuf and OTLP/JSON each round-trip every kind of value, id, time and severity.
func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		encode func(*Logs) []byte
		decode func([]byte) (*Logs, error)
	}{
		{"protobuf", func(l *Logs) []byte { return AppendProto(nil, l) }, DecodeProto},
		{"json", func(l *Logs) []byte {
			b, err := AppendJSON(nil, l)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}, DecodeJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := sample()
			got, err := tc.decode(tc.encode(want))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, want)
			}
			if got.Count() != 4 {
				t.Fatalf("Count = %d, want 4", got.Count())
			}
		})
	}
}

// What senders really write: 64-bit integers as numbers or strings, enums as numbers, ids as
// hex, unknown keys ignored; and what must be refused, with the place named.
func TestDecodeJSON(t *testing.T) {
	for _, tc := range []struct {
		name, in, err string
		check         func(*Logs) bool
	}{
		{name: "numbers as numbers", in: `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":1700000000000000000,"body":{"intValue":7}}]}]}]}`,
			check: func(l *Logs) bool {
				r := l.Resources[0].Scopes[0].Records[0]
				return r.Time == 1700000000000000000 && r.Body == int64(7)
			}},
		{name: "numbers as strings", in: `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"5","body":{"intValue":"-7"}}]}]}]}`,
			check: func(l *Logs) bool {
				r := l.Resources[0].Scopes[0].Records[0]
				return r.Time == 5 && r.Body == int64(-7)
			}},
		{name: "NaN double", in: `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"doubleValue":"NaN"}}]}]}]}`,
			check: func(l *Logs) bool { f, _ := l.Resources[0].Scopes[0].Records[0].Body.(float64); return math.IsNaN(f) }},
		{name: "unknown keys", in: `{"resourceLogs":[],"x":1}`, check: func(l *Logs) bool { return l.Count() == 0 }},
		{name: "empty", in: `{}`, check: func(l *Logs) bool { return l.Count() == 0 }},
		{name: "not json", in: `hello`, err: "json:"},
		{name: "trailing data", in: `{} {}`, err: "data after"},
		{name: "bad trace id", in: `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"zz"}]}]}]}`, err: "resourceLogs[0]: scopeLogs[0].logRecords[0]: traceId"},
		{name: "bad int", in: `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"intValue":"1.5"}}]}]}]}`, err: "intValue"},
		{name: "bad time", in: `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"-1"}]}]}]}`, err: "unsigned"},
		{name: "bad bytes", in: `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"bytesValue":"!!"}}]}]}]}`, err: "bytesValue"},
		{name: "too deep", in: `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":` + strings.Repeat(`{"arrayValue":{"values":[`, 70) + strings.Repeat(`]}}`, 70) + `}]}]}]}`, err: "nested deeper"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := DecodeJSON([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || !tc.check(l) {
				t.Fatalf("got %+v, %v", l, err)
			}
		})
	}
}

// Malformed protobuf is refused with the place named: truncations, wrong wire types, a
// nesting bomb.
func TestDecodeProtoErrors(t *testing.T) {
	good := AppendProto(nil, sample())
	wrongType := protowire.AppendTag(nil, 1, protowire.VarintType)
	wrongType = protowire.AppendVarint(wrongType, 1)
	nested := []byte{}
	for range 100 {
		inner := nested
		nested = protowire.AppendTag(nil, 5, protowire.BytesType) // array_value
		arr := protowire.AppendTag(nil, 1, protowire.BytesType)
		arr = protowire.AppendBytes(arr, inner)
		nested = protowire.AppendBytes(nested, arr)
	}
	rec := protowire.AppendTag(nil, 5, protowire.BytesType)
	rec = protowire.AppendBytes(rec, nested)
	bomb := appendMsg(nil, 1, func(b []byte) []byte {
		return appendMsg(b, 2, func(b []byte) []byte {
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			return protowire.AppendBytes(b, rec)
		})
	})
	for _, tc := range []struct {
		name string
		in   []byte
		err  string
	}{
		{"truncated", good[:len(good)-3], "protobuf: field 1: unexpected EOF"},
		{"bad tag", []byte{0xff}, "tag"},
		{"wrong wire type", wrongType, "wrong wire type"},
		{"nesting bomb", bomb, "nested deeper"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeProto(tc.in); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
	if l, err := DecodeProto(nil); err != nil || l.Count() != 0 {
		t.Fatalf("empty request: %v, %v", l, err)
	}
}

func TestResponses(t *testing.T) {
	for _, p := range []PartialSuccess{{}, {Rejected: 3, Message: `too big "x"`}} {
		got, err := DecodeResponse(AppendResponse(nil, p))
		if err != nil || got != p {
			t.Fatalf("protobuf response %+v: got %+v, %v", p, got, err)
		}
		got, err = DecodeJSONResponse(AppendJSONResponse(nil, p))
		if err != nil || got != p {
			t.Fatalf("json response %+v: got %+v, %v", p, got, err)
		}
	}
}

// Fields from processors (maps, ints, json.Number, NaN) become values and back.
func TestFieldValues(t *testing.T) {
	kvs := FromMap(map[string]any{"b": 1, "a": map[string]any{"x": uint64(math.MaxUint64)}, "nan": math.NaN()}, nil)
	if kvs[0].Key != "a" || kvs[1].Key != "b" || kvs[1].Value != int64(1) {
		t.Fatalf("FromMap: %#v", kvs)
	}
	if inner := kvs[0].Value.([]KV); inner[0].Value != "18446744073709551615" {
		t.Fatalf("uint64 beyond int64: %#v", inner)
	}
	m := ToMap(kvs)
	if m["nan"] != "NaN" || m["a"].(map[string]any)["x"] != "18446744073709551615" {
		t.Fatalf("ToMap: %#v", m)
	}
	if s := String([]KV{{Key: "k", Value: []byte("hi")}}); s != `{"k":"aGk="}` {
		t.Fatalf("String = %s", s)
	}
}

// The decoders never panic, and what they accept encodes and decodes to the same value.
func FuzzDecodeProto(f *testing.F) {
	f.Add(AppendProto(nil, sample()))
	f.Add([]byte{})
	f.Add(AppendResponse(nil, PartialSuccess{Rejected: 1, Message: "x"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := DecodeProto(b)
		if err != nil {
			return
		}
		again, err := DecodeProto(AppendProto(nil, l))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if again.Count() != l.Count() {
			t.Fatalf("count %d, then %d", l.Count(), again.Count())
		}
		_, _ = DecodeResponse(b)
	})
}

func FuzzDecodeJSON(f *testing.F) {
	j, _ := AppendJSON(nil, sample())
	f.Add(j)
	f.Add([]byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"kvlistValue":{"values":[{"key":"a"}]}}}]}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := DecodeJSON(b)
		if err != nil {
			return
		}
		out, err := AppendJSON(nil, l)
		if err != nil {
			t.Fatalf("encode what was decoded: %v", err)
		}
		again, err := DecodeJSON(out)
		if err != nil || again.Count() != l.Count() {
			t.Fatalf("re-decode: %v (count %d, want %d)", err, again.Count(), l.Count())
		}
	})
}
