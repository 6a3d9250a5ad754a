package otlp

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// maxDepth bounds the nesting of AnyValue arrays and key-value lists a decoder follows: a
// hostile payload of nested lists must not exhaust the stack.
const maxDepth = 64

// AppendProto appends l as an ExportLogsServiceRequest (the bytes of a LogsData).
func AppendProto(b []byte, l *Logs) []byte {
	for i := range l.Resources {
		b = appendMsg(b, 1, func(b []byte) []byte { return appendResourceLogs(b, &l.Resources[i]) })
	}
	return b
}

// appendMsg appends a length-delimited field whose content fn appends; the length is
// written in front of it afterwards (content longer than 127 bytes is moved up by the
// length's extra bytes), so nothing is encoded twice.
func appendMsg(b []byte, num protowire.Number, fn func([]byte) []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	start := len(b)
	b = fn(b)
	n := len(b) - start
	sz := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, sz)...)
	copy(b[start+sz:], b[start:start+n])
	protowire.AppendVarint(b[start:start], uint64(n))
	return b
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendResourceLogs(b []byte, r *ResourceLogs) []byte {
	if len(r.Attrs) > 0 {
		b = appendMsg(b, 1, func(b []byte) []byte { return appendKVs(b, 1, r.Attrs) })
	}
	for i := range r.Scopes {
		b = appendMsg(b, 2, func(b []byte) []byte { return appendScopeLogs(b, &r.Scopes[i]) })
	}
	return appendString(b, 3, r.SchemaURL)
}

func appendScopeLogs(b []byte, s *ScopeLogs) []byte {
	if s.Name != "" || s.Version != "" || len(s.Attrs) > 0 {
		b = appendMsg(b, 1, func(b []byte) []byte {
			b = appendString(b, 1, s.Name)
			b = appendString(b, 2, s.Version)
			return appendKVs(b, 3, s.Attrs)
		})
	}
	for i := range s.Records {
		b = appendMsg(b, 2, func(b []byte) []byte { return appendRecord(b, &s.Records[i]) })
	}
	return appendString(b, 3, s.SchemaURL)
}

func appendRecord(b []byte, r *Record) []byte {
	if r.Time != 0 {
		b = protowire.AppendTag(b, 1, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, r.Time)
	}
	if r.SeverityNumber != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(r.SeverityNumber)))
	}
	b = appendString(b, 3, r.SeverityText)
	if r.Body != nil {
		b = appendMsg(b, 5, func(b []byte) []byte { return appendValue(b, r.Body) })
	}
	b = appendKVs(b, 6, r.Attrs)
	if r.Flags != 0 {
		b = protowire.AppendTag(b, 8, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, r.Flags)
	}
	if len(r.TraceID) > 0 {
		b = protowire.AppendTag(b, 9, protowire.BytesType)
		b = protowire.AppendBytes(b, r.TraceID)
	}
	if len(r.SpanID) > 0 {
		b = protowire.AppendTag(b, 10, protowire.BytesType)
		b = protowire.AppendBytes(b, r.SpanID)
	}
	if r.Observed != 0 {
		b = protowire.AppendTag(b, 11, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, r.Observed)
	}
	return appendString(b, 12, r.EventName)
}

// appendKVs appends each attribute as a KeyValue in field num.
func appendKVs(b []byte, num protowire.Number, kvs []KV) []byte {
	for i := range kvs {
		b = appendMsg(b, num, func(b []byte) []byte {
			b = appendString(b, 1, kvs[i].Key)
			return appendMsg(b, 2, func(b []byte) []byte { return appendValue(b, kvs[i].Value) })
		})
	}
	return b
}

// appendValue appends the fields of an AnyValue. A type outside Value's is written as its
// fmt %v string, so the encoder never fails.
func appendValue(b []byte, v any) []byte {
	switch t := v.(type) {
	case nil:
		return b
	case string:
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		return protowire.AppendString(b, t)
	case bool:
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		return protowire.AppendVarint(b, protowire.EncodeBool(t))
	case int64:
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(t))
	case float64:
		b = protowire.AppendTag(b, 4, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, math.Float64bits(t))
	case []any:
		return appendMsg(b, 5, func(b []byte) []byte {
			for _, x := range t {
				b = appendMsg(b, 1, func(b []byte) []byte { return appendValue(b, x) })
			}
			return b
		})
	case []KV:
		return appendMsg(b, 6, func(b []byte) []byte { return appendKVs(b, 1, t) })
	case []byte:
		b = protowire.AppendTag(b, 7, protowire.BytesType)
		return protowire.AppendBytes(b, t)
	default:
		return appendValue(b, Normalize(v))
	}
}

// field is one decoded field: its number, wire type, and value (u for varint and fixed
// types, b for length-delimited ones).
type field struct {
	num protowire.Number
	typ protowire.Type
	u   uint64
	b   []byte
}

var errWireType = errors.New("wrong wire type")

// eachField calls fn for every field of the message b, in order. Unknown fields are passed
// on too: fn ignores what it does not know, as protobuf requires.
func eachField(b []byte, fn func(f field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.u, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			f.u, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.u = uint64(v)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// want checks a known field's wire type.
func (f field) want(t protowire.Type, what string) error {
	if f.typ != t {
		return fmt.Errorf("%s (field %d): %w %d", what, f.num, errWireType, f.typ)
	}
	return nil
}

// DecodeProto reads an ExportLogsServiceRequest.
func DecodeProto(b []byte) (*Logs, error) {
	l := &Logs{}
	err := eachField(b, func(f field) error {
		if f.num != 1 {
			return nil
		}
		if err := f.want(protowire.BytesType, "resource_logs"); err != nil {
			return err
		}
		r, err := decodeResourceLogs(f.b)
		if err != nil {
			return fmt.Errorf("resource_logs[%d]: %w", len(l.Resources), err)
		}
		l.Resources = append(l.Resources, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("protobuf: %w", err)
	}
	return l, nil
}

func decodeResourceLogs(b []byte) (ResourceLogs, error) {
	var r ResourceLogs
	err := eachField(b, func(f field) error {
		switch f.num {
		case 1:
			if err := f.want(protowire.BytesType, "resource"); err != nil {
				return err
			}
			return eachField(f.b, func(f field) error {
				if f.num != 1 {
					return nil
				}
				return decodeKVInto(&r.Attrs, f, "resource.attributes", 0)
			})
		case 2:
			if err := f.want(protowire.BytesType, "scope_logs"); err != nil {
				return err
			}
			s, err := decodeScopeLogs(f.b)
			if err != nil {
				return fmt.Errorf("scope_logs[%d]: %w", len(r.Scopes), err)
			}
			r.Scopes = append(r.Scopes, s)
		case 3:
			if err := f.want(protowire.BytesType, "schema_url"); err != nil {
				return err
			}
			r.SchemaURL = string(f.b)
		}
		return nil
	})
	return r, err
}

func decodeScopeLogs(b []byte) (ScopeLogs, error) {
	var s ScopeLogs
	err := eachField(b, func(f field) error {
		switch f.num {
		case 1:
			if err := f.want(protowire.BytesType, "scope"); err != nil {
				return err
			}
			return decodeScope(&s, f.b)
		case 2:
			if err := f.want(protowire.BytesType, "log_records"); err != nil {
				return err
			}
			r, err := decodeRecord(f.b)
			if err != nil {
				return fmt.Errorf("log_records[%d]: %w", len(s.Records), err)
			}
			s.Records = append(s.Records, r)
		case 3:
			if err := f.want(protowire.BytesType, "schema_url"); err != nil {
				return err
			}
			s.SchemaURL = string(f.b)
		}
		return nil
	})
	return s, err
}

func decodeScope(s *ScopeLogs, b []byte) error {
	return eachField(b, func(f field) error {
		switch f.num {
		case 1, 2:
			if err := f.want(protowire.BytesType, "scope name/version"); err != nil {
				return err
			}
			if f.num == 1 {
				s.Name = string(f.b)
			} else {
				s.Version = string(f.b)
			}
		case 3:
			return decodeKVInto(&s.Attrs, f, "scope.attributes", 0)
		}
		return nil
	})
}

func decodeRecord(b []byte) (Record, error) {
	var r Record
	err := eachField(b, func(f field) error {
		switch f.num {
		case 1, 11:
			if err := f.want(protowire.Fixed64Type, "time"); err != nil {
				return err
			}
			if f.num == 1 {
				r.Time = f.u
			} else {
				r.Observed = f.u
			}
		case 2:
			if err := f.want(protowire.VarintType, "severity_number"); err != nil {
				return err
			}
			r.SeverityNumber = int32(f.u)
		case 3, 9, 10, 12:
			if err := f.want(protowire.BytesType, "record bytes"); err != nil {
				return err
			}
			switch f.num {
			case 3:
				r.SeverityText = string(f.b)
			case 9:
				r.TraceID = slices.Clone(f.b)
			case 10:
				r.SpanID = slices.Clone(f.b)
			default:
				r.EventName = string(f.b)
			}
		case 5:
			if err := f.want(protowire.BytesType, "body"); err != nil {
				return err
			}
			v, err := decodeValue(f.b, 0)
			if err != nil {
				return fmt.Errorf("body: %w", err)
			}
			r.Body = v
		case 6:
			return decodeKVInto(&r.Attrs, f, "attributes", 0)
		case 8:
			if err := f.want(protowire.Fixed32Type, "flags"); err != nil {
				return err
			}
			r.Flags = uint32(f.u)
		}
		return nil
	})
	return r, err
}

// decodeKVInto decodes the KeyValue in f and appends it to kvs.
func decodeKVInto(kvs *[]KV, f field, what string, depth int) error {
	if err := f.want(protowire.BytesType, what); err != nil {
		return err
	}
	var kv KV
	err := eachField(f.b, func(f field) error {
		switch f.num {
		case 1:
			if err := f.want(protowire.BytesType, "key"); err != nil {
				return err
			}
			kv.Key = string(f.b)
		case 2:
			if err := f.want(protowire.BytesType, "value"); err != nil {
				return err
			}
			v, err := decodeValue(f.b, depth+1)
			if err != nil {
				return err
			}
			kv.Value = v
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s[%d]: %w", what, len(*kvs), err)
	}
	*kvs = append(*kvs, kv)
	return nil
}

// decodeValue reads an AnyValue; the last of its oneof fields wins, as in protobuf.
func decodeValue(b []byte, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("values nested deeper than %d", maxDepth)
	}
	var v any
	err := eachField(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = f.want(protowire.BytesType, "string_value")
			v = string(f.b)
		case 2:
			err = f.want(protowire.VarintType, "bool_value")
			v = f.u != 0
		case 3:
			err = f.want(protowire.VarintType, "int_value")
			v = int64(f.u)
		case 4:
			err = f.want(protowire.Fixed64Type, "double_value")
			v = math.Float64frombits(f.u)
		case 5:
			if err = f.want(protowire.BytesType, "array_value"); err == nil {
				v, err = decodeArray(f.b, depth)
			}
		case 6:
			if err = f.want(protowire.BytesType, "kvlist_value"); err == nil {
				v, err = decodeKVList(f.b, depth)
			}
		case 7:
			err = f.want(protowire.BytesType, "bytes_value")
			v = slices.Clone(f.b)
		}
		return err
	})
	return v, err
}

func decodeArray(b []byte, depth int) ([]any, error) {
	arr := []any{}
	err := eachField(b, func(f field) error {
		if f.num != 1 {
			return nil
		}
		if err := f.want(protowire.BytesType, "values"); err != nil {
			return err
		}
		x, err := decodeValue(f.b, depth+1)
		if err != nil {
			return fmt.Errorf("array[%d]: %w", len(arr), err)
		}
		arr = append(arr, x)
		return nil
	})
	return arr, err
}

func decodeKVList(b []byte, depth int) ([]KV, error) {
	kvs := []KV{}
	err := eachField(b, func(f field) error {
		if f.num != 1 {
			return nil
		}
		return decodeKVInto(&kvs, f, "kvlist", depth+1)
	})
	return kvs, err
}
