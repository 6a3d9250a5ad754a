package otlp

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// OTLP/JSON (the OTLP specification, "JSON Protobuf Encoding"): the protobuf messages with
// lowerCamelCase keys, 64-bit integers as decimal strings (numbers accepted), enums as
// integers, trace and span ids as hex, bytes as base64.

type jsonLogs struct {
	ResourceLogs []jsonResourceLogs `json:"resourceLogs"`
}

type jsonResourceLogs struct {
	Resource  *jsonResource   `json:"resource,omitempty"`
	ScopeLogs []jsonScopeLogs `json:"scopeLogs,omitempty"`
	SchemaURL string          `json:"schemaUrl,omitempty"`
}

type jsonResource struct {
	Attributes []jsonKV `json:"attributes,omitempty"`
}

type jsonScopeLogs struct {
	Scope      *jsonScope   `json:"scope,omitempty"`
	LogRecords []jsonRecord `json:"logRecords,omitempty"`
	SchemaURL  string       `json:"schemaUrl,omitempty"`
}

type jsonScope struct {
	Name       string   `json:"name,omitempty"`
	Version    string   `json:"version,omitempty"`
	Attributes []jsonKV `json:"attributes,omitempty"`
}

type jsonRecord struct {
	TimeUnixNano         jsonUint64 `json:"timeUnixNano,omitempty"`
	ObservedTimeUnixNano jsonUint64 `json:"observedTimeUnixNano,omitempty"`
	SeverityNumber       int32      `json:"severityNumber,omitempty"`
	SeverityText         string     `json:"severityText,omitempty"`
	Body                 *jsonValue `json:"body,omitempty"`
	Attributes           []jsonKV   `json:"attributes,omitempty"`
	Flags                uint32     `json:"flags,omitempty"`
	TraceID              string     `json:"traceId,omitempty"`
	SpanID               string     `json:"spanId,omitempty"`
	EventName            string     `json:"eventName,omitempty"`
}

type jsonKV struct {
	Key   string     `json:"key"`
	Value *jsonValue `json:"value,omitempty"`
}

// jsonValue is an AnyValue: one of its keys is set.
type jsonValue struct {
	StringValue *string     `json:"stringValue,omitempty"`
	BoolValue   *bool       `json:"boolValue,omitempty"`
	IntValue    *jsonInt64  `json:"intValue,omitempty"`
	DoubleValue *jsonDouble `json:"doubleValue,omitempty"`
	ArrayValue  *jsonArray  `json:"arrayValue,omitempty"`
	KvlistValue *jsonKVList `json:"kvlistValue,omitempty"`
	BytesValue  *string     `json:"bytesValue,omitempty"`
}

type jsonArray struct {
	Values []jsonValue `json:"values"`
}

type jsonKVList struct {
	Values []jsonKV `json:"values"`
}

// jsonUint64 is a uint64 written as a decimal string, read from a string or a number.
type jsonUint64 uint64

func (u jsonUint64) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, strconv.FormatUint(uint64(u), 10)), nil
}

func (u *jsonUint64) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	v, err := strconv.ParseUint(string(unquote(b)), 10, 64)
	if err != nil {
		return fmt.Errorf("want an unsigned 64-bit integer, got %.40s", b)
	}
	*u = jsonUint64(v)
	return nil
}

// jsonInt64 is an int64 written as a decimal string, read from a string or a number.
type jsonInt64 int64

func (i jsonInt64) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, strconv.FormatInt(int64(i), 10)), nil
}

func (i *jsonInt64) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	v, err := strconv.ParseInt(string(unquote(b)), 10, 64)
	if err != nil {
		return fmt.Errorf("intValue: want a 64-bit integer, got %.40s", b)
	}
	*i = jsonInt64(v)
	return nil
}

// jsonDouble is a float64; NaN and the infinities are the strings protobuf's JSON uses.
type jsonDouble float64

func (d jsonDouble) MarshalJSON() ([]byte, error) {
	f := float64(d)
	switch {
	case math.IsNaN(f):
		return []byte(`"NaN"`), nil
	case math.IsInf(f, 1):
		return []byte(`"Infinity"`), nil
	case math.IsInf(f, -1):
		return []byte(`"-Infinity"`), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

func (d *jsonDouble) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s := string(unquote(b))
	switch s {
	case "NaN":
		*d = jsonDouble(math.NaN())
		return nil
	case "Infinity":
		*d = jsonDouble(math.Inf(1))
		return nil
	case "-Infinity":
		*d = jsonDouble(math.Inf(-1))
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("doubleValue: want a number, got %.40s", b)
	}
	*d = jsonDouble(f)
	return nil
}

func unquote(b []byte) []byte {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		return b[1 : len(b)-1]
	}
	return b
}

// DecodeJSON reads an ExportLogsServiceRequest in OTLP/JSON.
func DecodeJSON(b []byte) (*Logs, error) {
	var j jsonLogs
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("json: data after the request")
	}
	l := &Logs{Resources: make([]ResourceLogs, 0, len(j.ResourceLogs))}
	for i := range j.ResourceLogs {
		r, err := fromJSONResource(&j.ResourceLogs[i])
		if err != nil {
			return nil, fmt.Errorf("resourceLogs[%d]: %w", i, err)
		}
		l.Resources = append(l.Resources, r)
	}
	return l, nil
}

func fromJSONResource(jr *jsonResourceLogs) (ResourceLogs, error) {
	r := ResourceLogs{SchemaURL: jr.SchemaURL}
	var err error
	if jr.Resource != nil {
		if r.Attrs, err = fromJSONKVs(jr.Resource.Attributes, 0); err != nil {
			return r, fmt.Errorf("resource.attributes: %w", err)
		}
	}
	for k := range jr.ScopeLogs {
		js := &jr.ScopeLogs[k]
		s := ScopeLogs{SchemaURL: js.SchemaURL, Records: make([]Record, 0, len(js.LogRecords))}
		if js.Scope != nil {
			s.Name, s.Version = js.Scope.Name, js.Scope.Version
			if s.Attrs, err = fromJSONKVs(js.Scope.Attributes, 0); err != nil {
				return r, fmt.Errorf("scopeLogs[%d].scope.attributes: %w", k, err)
			}
		}
		for n := range js.LogRecords {
			rec, err := fromJSONRecord(&js.LogRecords[n])
			if err != nil {
				return r, fmt.Errorf("scopeLogs[%d].logRecords[%d]: %w", k, n, err)
			}
			s.Records = append(s.Records, rec)
		}
		r.Scopes = append(r.Scopes, s)
	}
	return r, nil
}

func fromJSONRecord(jr *jsonRecord) (Record, error) {
	r := Record{
		Time: uint64(jr.TimeUnixNano), Observed: uint64(jr.ObservedTimeUnixNano),
		SeverityNumber: jr.SeverityNumber, SeverityText: jr.SeverityText,
		Flags: jr.Flags, EventName: jr.EventName,
	}
	var err error
	if r.TraceID, err = hex.DecodeString(jr.TraceID); err != nil {
		return r, fmt.Errorf("traceId: want hex: %w", err)
	}
	if r.SpanID, err = hex.DecodeString(jr.SpanID); err != nil {
		return r, fmt.Errorf("spanId: want hex: %w", err)
	}
	if len(r.TraceID) == 0 {
		r.TraceID = nil
	}
	if len(r.SpanID) == 0 {
		r.SpanID = nil
	}
	if jr.Body != nil {
		if r.Body, err = fromJSONValue(jr.Body, 0); err != nil {
			return r, fmt.Errorf("body: %w", err)
		}
	}
	if r.Attrs, err = fromJSONKVs(jr.Attributes, 0); err != nil {
		return r, fmt.Errorf("attributes: %w", err)
	}
	return r, nil
}

func fromJSONKVs(jkv []jsonKV, depth int) ([]KV, error) {
	if len(jkv) == 0 {
		return nil, nil
	}
	out := make([]KV, 0, len(jkv))
	for i := range jkv {
		kv := KV{Key: jkv[i].Key}
		if jkv[i].Value != nil {
			v, err := fromJSONValue(jkv[i].Value, depth+1)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", jkv[i].Key, err)
			}
			kv.Value = v
		}
		out = append(out, kv)
	}
	return out, nil
}

func fromJSONValue(jv *jsonValue, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("values nested deeper than %d", maxDepth)
	}
	switch {
	case jv.StringValue != nil:
		return *jv.StringValue, nil
	case jv.BoolValue != nil:
		return *jv.BoolValue, nil
	case jv.IntValue != nil:
		return int64(*jv.IntValue), nil
	case jv.DoubleValue != nil:
		return float64(*jv.DoubleValue), nil
	case jv.ArrayValue != nil:
		arr := make([]any, 0, len(jv.ArrayValue.Values))
		for i := range jv.ArrayValue.Values {
			x, err := fromJSONValue(&jv.ArrayValue.Values[i], depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, x)
		}
		return arr, nil
	case jv.KvlistValue != nil:
		kvs, err := fromJSONKVs(jv.KvlistValue.Values, depth+1)
		if kvs == nil && err == nil {
			kvs = []KV{}
		}
		return kvs, err
	case jv.BytesValue != nil:
		b, err := base64.StdEncoding.DecodeString(*jv.BytesValue)
		if err != nil {
			return nil, fmt.Errorf("bytesValue: want base64: %w", err)
		}
		return b, nil
	}
	return nil, nil
}

// AppendJSON appends l in OTLP/JSON.
func AppendJSON(b []byte, l *Logs) ([]byte, error) {
	j := jsonLogs{ResourceLogs: make([]jsonResourceLogs, 0, len(l.Resources))}
	for i := range l.Resources {
		r := &l.Resources[i]
		jr := jsonResourceLogs{SchemaURL: r.SchemaURL}
		if len(r.Attrs) > 0 {
			jr.Resource = &jsonResource{Attributes: toJSONKVs(r.Attrs)}
		}
		for k := range r.Scopes {
			s := &r.Scopes[k]
			js := jsonScopeLogs{SchemaURL: s.SchemaURL, LogRecords: make([]jsonRecord, 0, len(s.Records))}
			if s.Name != "" || s.Version != "" || len(s.Attrs) > 0 {
				js.Scope = &jsonScope{Name: s.Name, Version: s.Version, Attributes: toJSONKVs(s.Attrs)}
			}
			for n := range s.Records {
				js.LogRecords = append(js.LogRecords, toJSONRecord(&s.Records[n]))
			}
			jr.ScopeLogs = append(jr.ScopeLogs, js)
		}
		j.ResourceLogs = append(j.ResourceLogs, jr)
	}
	buf := bytes.NewBuffer(b)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&j); err != nil {
		return b, fmt.Errorf("otlp json: %w", err)
	}
	return buf.Bytes(), nil
}

func toJSONRecord(r *Record) jsonRecord {
	jr := jsonRecord{
		TimeUnixNano: jsonUint64(r.Time), ObservedTimeUnixNano: jsonUint64(r.Observed),
		SeverityNumber: r.SeverityNumber, SeverityText: r.SeverityText,
		Attributes: toJSONKVs(r.Attrs), Flags: r.Flags, EventName: r.EventName,
		TraceID: hex.EncodeToString(r.TraceID), SpanID: hex.EncodeToString(r.SpanID),
	}
	if r.Body != nil {
		jr.Body = toJSONValue(r.Body)
	}
	return jr
}

func toJSONKVs(kvs []KV) []jsonKV {
	if len(kvs) == 0 {
		return nil
	}
	out := make([]jsonKV, len(kvs))
	for i := range kvs {
		out[i] = jsonKV{Key: kvs[i].Key, Value: toJSONValue(kvs[i].Value)}
	}
	return out
}

func toJSONValue(v any) *jsonValue {
	switch t := v.(type) {
	case nil:
		return &jsonValue{}
	case string:
		return &jsonValue{StringValue: &t}
	case bool:
		return &jsonValue{BoolValue: &t}
	case int64:
		i := jsonInt64(t)
		return &jsonValue{IntValue: &i}
	case float64:
		d := jsonDouble(t)
		return &jsonValue{DoubleValue: &d}
	case []any:
		arr := &jsonArray{Values: make([]jsonValue, len(t))}
		for i := range t {
			arr.Values[i] = *toJSONValue(t[i])
		}
		return &jsonValue{ArrayValue: arr}
	case []KV:
		return &jsonValue{KvlistValue: &jsonKVList{Values: toJSONKVs(t)}}
	case []byte:
		s := base64.StdEncoding.EncodeToString(t)
		return &jsonValue{BytesValue: &s}
	default:
		return toJSONValue(Normalize(v))
	}
}

// AppendJSONResponse appends an ExportLogsServiceResponse in OTLP/JSON.
func AppendJSONResponse(b []byte, p PartialSuccess) []byte {
	if p == (PartialSuccess{}) {
		return append(b, "{}"...)
	}
	msg, _ := json.Marshal(p.Message)
	return fmt.Appendf(b, `{"partialSuccess":{"rejectedLogRecords":"%d","errorMessage":%s}}`, p.Rejected, msg)
}

// DecodeJSONResponse reads an ExportLogsServiceResponse in OTLP/JSON.
func DecodeJSONResponse(b []byte) (PartialSuccess, error) {
	var j struct {
		PartialSuccess *struct {
			RejectedLogRecords jsonInt64 `json:"rejectedLogRecords"`
			ErrorMessage       string    `json:"errorMessage"`
		} `json:"partialSuccess"`
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return PartialSuccess{}, nil
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return PartialSuccess{}, fmt.Errorf("json response: %w", err)
	}
	if j.PartialSuccess == nil {
		return PartialSuccess{}, nil
	}
	return PartialSuccess{Rejected: int64(j.PartialSuccess.RejectedLogRecords), Message: j.PartialSuccess.ErrorMessage}, nil
}

// AppendJSONStatus appends a google.rpc.Status in JSON.
func AppendJSONStatus(b []byte, code int32, msg string) []byte {
	m, _ := json.Marshal(msg)
	return fmt.Appendf(b, `{"code":%d,"message":%s}`, code, m)
}
