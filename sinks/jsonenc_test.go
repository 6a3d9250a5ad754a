package sinks

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/logcap/logcap/event"
)

// The hand-written encoders write what encoding/json writes for the same entry.
func TestAppendEntryJSON(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		name string
		e    event.Entry
	}{
		{"plain", event.Entry{Time: at, Host: "h", Kind: "file", Source: "/var/log/a.log", Message: "hello"}},
		{"docker", event.Entry{Time: at.UTC(), Host: "h", Kind: "docker", Source: "nginx", Stream: "stderr", Message: "x", Continued: true}},
		{"escapes", event.Entry{Time: at, Message: "<a href=\"x\">&\\\n\r\t\b\f\x00\x1f\x7f é \u2028\u2029 \xff\xfe end"}},
		{"fields", event.Entry{Time: at, Message: "m", Fields: map[string]any{
			"s": "v<>", "f": 1.5, "big": 1e21, "small": 1e-7, "neg": -0.0, "i": 3, "i64": int64(-4), "b": true, "n": nil,
			"nested": map[string]any{"z": []any{1.0, "a", false, nil, map[string]any{}}, "a": []any{}},
			"other":  []string{"x"}, "\u2028key": "k", "nilmap": map[string]any(nil), "nilslice": []any(nil),
		}}},
		{"zero time", event.Entry{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkEntryJSON(t, &tc.e)
		})
	}
}

func checkEntryJSON(t *testing.T, e *event.Entry) {
	t.Helper()
	want, werr := json.Marshal(e)
	got, gerr := appendEntryJSON([]byte("prefix"), e, `"logcap_id"`, []byte("LOGS-1-2"))
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("error %v, encoding/json's %v", gerr, werr)
	}
	if werr != nil {
		return
	}
	want = append([]byte("prefix"), want[:len(want)-1]...)
	want = append(want, `,"logcap_id":"LOGS-1-2"}`...)
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	doc := struct {
		Timestamp time.Time      `json:"@timestamp"`
		Host      string         `json:"host"`
		Kind      string         `json:"kind"`
		Source    string         `json:"source"`
		Stream    string         `json:"stream,omitempty"`
		Message   string         `json:"message"`
		Fields    map[string]any `json:"fields,omitempty"`
	}{e.Time, e.Host, e.Kind, e.Source, e.Stream, e.Message, e.Fields}
	want, _ = json.Marshal(doc)
	got, _ = appendESDocJSON(nil, e, "", nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("ES doc\ngot  %s\nwant %s", got, want)
	}
}

func TestAppendEntryJSONErrors(t *testing.T) {
	for _, e := range []event.Entry{
		{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Time: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Fields: map[string]any{"x": math.NaN()}},
		{Fields: map[string]any{"x": math.Inf(1)}},
		{Fields: map[string]any{"x": make(chan int)}},
	} {
		if _, err := appendEntryJSON(nil, &e, "", nil); err == nil {
			t.Errorf("%+v: no error", e)
		}
		if _, err := json.Marshal(&e); err == nil {
			t.Errorf("%+v: encoding/json has no error", e)
		}
	}
}

func FuzzAppendEntryJSON(f *testing.F) {
	f.Add("h", "file", "/a.log", "", "hello", "k", "v", 1.5, int64(1700000000123456789), false)
	f.Add("h\xff", "docker", "n", "stderr", "<\u2028>\x00\"\\", "\xfe", "\u2029", -1e-9, int64(-5), true)
	f.Fuzz(func(t *testing.T, host, kind, source, stream, msg, key, val string, num float64, ns int64, cont bool) {
		e := event.Entry{Time: time.Unix(0, ns), Host: host, Kind: kind, Source: source, Stream: stream, Message: msg, Continued: cont}
		if key != "" {
			e.Fields = map[string]any{key: val, key + "n": num, key + "l": []any{val, num}}
		}
		checkEntryJSON(t, &e)
	})
}
