package sinks

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/klauspost/compress/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// fakePushStream is one stream of a push, as Loki's distributor sees it: labels, values
// [ts, line] and each value's structured metadata (nil when none).
type fakePushStream struct {
	Stream map[string]string
	Values [][2]string
	meta   []map[string]string
}

// decodeFakePush reads a push as Loki does: JSON (gzip), or protobuf PushRequest
// compressed with snappy's block format. It returns the status of a refusal.
func decodeFakePush(r *http.Request) ([]fakePushStream, int, error) {
	switch ct := r.Header.Get("Content-Type"); ct {
	case "application/json":
		return decodeFakeJSONPush(r)
	case "application/x-protobuf":
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, http.StatusBadRequest, err
		}
		raw, err := snappy.Decode(nil, b)
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("snappy: %w", err)
		}
		push, err := decodePushRequest(raw)
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("push: %w", err)
		}
		return push, 0, nil
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("unsupported Content-Type %s", ct)
	}
}

func decodeFakeJSONPush(r *http.Request) ([]fakePushStream, int, error) {
	if ce := r.Header.Get("Content-Encoding"); ce != "gzip" {
		return nil, http.StatusBadRequest, fmt.Errorf("want Content-Encoding gzip, got %s", ce)
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("gzip: %w", err)
	}
	var push struct {
		Streams []struct {
			Stream map[string]string   `json:"stream"`
			Values [][]json.RawMessage `json:"values"`
		} `json:"streams"`
	}
	dec := json.NewDecoder(zr)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&push); err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("loghttp: decode push: %w", err)
	}
	if dec.More() {
		return nil, http.StatusBadRequest, errors.New("loghttp: trailing data after push")
	}
	var out []fakePushStream
	for _, st := range push.Streams {
		fs := fakePushStream{Stream: st.Stream}
		for _, v := range st.Values {
			if len(v) != 2 && len(v) != 3 {
				return nil, http.StatusBadRequest, errors.New("loghttp: value must be [ts, line] or [ts, line, metadata]")
			}
			var ts, line string
			if json.Unmarshal(v[0], &ts) != nil || json.Unmarshal(v[1], &line) != nil {
				return nil, http.StatusBadRequest, fmt.Errorf("loghttp: decode push: value %s: want two strings", v)
			}
			var meta map[string]string
			if len(v) == 3 {
				if err := json.Unmarshal(v[2], &meta); err != nil {
					return nil, http.StatusBadRequest, fmt.Errorf("loghttp: decode push: structured metadata: %w", err)
				}
			}
			fs.Values = append(fs.Values, [2]string{ts, line})
			fs.meta = append(fs.meta, meta)
		}
		out = append(out, fs)
	}
	return out, 0, nil
}

// decodePushRequest parses logproto.PushRequest field by field (protowire), refusing
// wrong wire types, as a generated decoder would.
func decodePushRequest(b []byte) ([]fakePushStream, error) {
	var out []fakePushStream
	err := protoFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != 1 {
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("streams: wire type %d", typ)
		}
		st, err := decodeStreamAdapter(v)
		out = append(out, st)
		return err
	})
	return out, err
}

func decodeStreamAdapter(b []byte) (fakePushStream, error) {
	var st fakePushStream
	var labels string
	err := protoFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			labels = string(v)
		case num == 2 && typ == protowire.BytesType:
			ns, line, meta, err := decodeEntryAdapter(v)
			if err != nil {
				return err
			}
			st.Values = append(st.Values, [2]string{strconv.FormatInt(ns, 10), line})
			st.meta = append(st.meta, meta)
		case num == 1 || num == 2:
			return fmt.Errorf("stream field %d: wire type %d", num, typ)
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	st.Stream, err = parseFakeLabels(labels)
	return st, err
}

func decodeEntryAdapter(b []byte) (ns int64, line string, meta map[string]string, err error) {
	err = protoFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType && num <= 3 {
			return fmt.Errorf("entry field %d: wire type %d", num, typ)
		}
		switch num {
		case 1:
			var sec, nanos int64
			err := protoFields(v, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
				if typ != protowire.VarintType {
					return fmt.Errorf("timestamp field %d: wire type %d", num, typ)
				}
				switch num {
				case 1:
					sec = int64(x)
				case 2:
					nanos = int64(int32(x))
				}
				return nil
			})
			if err != nil {
				return err
			}
			if nanos < 0 || nanos >= 1e9 {
				return fmt.Errorf("timestamp nanos %d out of range", nanos)
			}
			ns = sec*1e9 + nanos
		case 2:
			line = string(v)
		case 3:
			var k, val string
			err := protoFields(v, func(num protowire.Number, _ protowire.Type, s []byte, _ uint64) error {
				switch num {
				case 1:
					k = string(s)
				case 2:
					val = string(s)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if meta == nil {
				meta = map[string]string{}
			}
			meta[k] = val
		}
		return nil
	})
	return ns, line, meta, err
}

// protoFields calls f for each field of a message: v for a length-delimited one, x for a
// varint.
func protoFields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// parseFakeLabels reads {name="value", ...} as Loki's syntax.ParseLabels does for what a
// client sends (Go-quoted values).
func parseFakeLabels(s string) (map[string]string, error) {
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil, fmt.Errorf("error parsing labels %q: want {...}", s)
	}
	out := map[string]string{}
	s = s[1 : len(s)-1]
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, fmt.Errorf("error parsing labels: no = in %q", s)
		}
		name := s[:eq]
		q, err := strconv.QuotedPrefix(s[eq+1:])
		if err != nil {
			return nil, fmt.Errorf("error parsing labels: value of %s: %w", name, err)
		}
		v, _ := strconv.Unquote(q)
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("error parsing labels: duplicate label %s", name)
		}
		out[name] = v
		s = s[eq+1+len(q):]
		if s == "" {
			break
		}
		if !strings.HasPrefix(s, ", ") {
			return nil, fmt.Errorf("error parsing labels: want \", \" at %q", s)
		}
		s = s[2:]
	}
	return out, nil
}
