package streams

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/internal/jsonscan"
)

// The one-decoder reading of a derived chunk must agree with the line-by-line reading
// whenever it answers at all.
func FuzzDecodeNDJSONStream(f *testing.F) {
	for _, s := range []string{
		`{"message":"m","fields":{"a":[1,{"b":2e3}],"n":18446744073709551616}}` + "\n",
		`{"message":"a"}` + "\n\n" + `{"message":"b","host":"h"}` + "\n",
		`{"message":"a"} {"message":"b"}` + "\n",
		`{"message":` + "\n" + `"a"}` + "\n",
		`{"message":"a"}` + "\n" + `x`,
		"null\n5\n",
		`{"time":"2026-11-27T13:18:38Z","fields":{"x":1.5}}` + "\r\n \t\n",
		"\v\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		fast, ok := decodeNDJSONStream([]byte(data))
		if !ok {
			return
		}
		slow, err := decodeNDJSONLines([]byte(data))
		if err != nil {
			t.Fatalf("stream reading accepted what the line reading rejects (%v): %q", err, data)
		}
		if len(fast) == 0 && len(slow) == 0 {
			return
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("readings differ for %q:\nstream %#v\nlines  %#v", data, fast, slow)
		}
	})
}

// The jsonscan reading of a derived chunk must agree with the line-by-line reading of
// encoding/json whenever it answers at all.
func FuzzDecodeNDJSONFast(f *testing.F) {
	for _, s := range ndjsonSamples {
		f.Add(s)
	}
	f.Fuzz(checkNDJSONFast)
}

var ndjsonSamples = []string{
	`{"message":"m","fields":{"a":[1,{"b":2e3}],"n":18446744073709551616}}` + "\n",
	`{"message":"a"}` + "\n\n" + `{"message":"b","host":"h"}` + "\n",
	`{"message":"a"} {"message":"b"}` + "\n",
	`{"message":` + "\n" + `"a"}` + "\n",
	`{"message":"a"}` + "\n" + `x`,
	"null\n5\n",
	`{"time":"2026-11-27T13:18:38Z","fields":{"x":1.5}}` + "\r\n \t\n",
	`{"time":"2026-11-27T13:18:38.123456789+01:00","host":"h","kind":"file","source":"/a","stream":"stdout","message":"{\"a\":\"\\u00e9\"}","fields":{"a":"é"},"continued":true}` + "\n",
	`{"time":"2026-11-27T13:18:38\u005a"}`, `{"time":null}`, `{"Message":"x"}`, `{"message":"a","message":"b"}`,
	`{"fields":null}`, `{"fields":{}}`, `{"continued":false}`, `{"host":5}`, `{"route":"x"}`, `{}`,
	"\v\n",
}

func TestDecodeNDJSONFastAgrees(t *testing.T) {
	for _, s := range ndjsonSamples {
		t.Run(s, func(t *testing.T) { checkNDJSONFast(t, s) })
	}
}

func checkNDJSONFast(t *testing.T, data string) {
	fast, ok := decodeNDJSONFast([]byte(data), false)
	bare, bareOK := decodeNDJSONFast([]byte(data), true)
	if ok != bareOK {
		t.Fatalf("jsonscan reading with fields ok=%v, without ok=%v: %q", ok, bareOK, data)
	}
	if !ok {
		return
	}
	// Without fields: the same entries, but for Fields.
	for i := range fast {
		e := fast[i]
		e.Fields = nil
		if !reflect.DeepEqual(e, bare[i]) {
			t.Fatalf("entry %d of %q without fields:\n%#v\nwant %#v", i, data, bare[i], e)
		}
	}
	slow, err := decodeNDJSONLines([]byte(data))
	if err != nil {
		t.Fatalf("jsonscan reading accepted what the line reading rejects (%v): %q", err, data)
	}
	if len(fast) == 0 && len(slow) == 0 {
		return
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("readings differ for %q:\njsonscan %#v\nlines    %#v", data, fast, slow)
	}
}

// FuzzAppendNDJSON: the NDJSON written without reflection is encoding/json's, byte for byte
// (the derived stream's wire format, and a rebuild's byte-identical output, depend on it).
func FuzzAppendNDJSON(f *testing.F) {
	f.Add(int64(1764251918123456789), "h", "file", "/var/log/a.log", "", `{"a":1,"b":"x"}`, false)
	f.Add(int64(0), "", "", "", "stderr", "plain \xff text <&> \u2028", true)
	f.Add(int64(-62135596800000000), "h\n", "docker", "c", "stdout", `{"n":1e400,"m":[1,{"z":null}]}`, false)
	f.Fuzz(func(t *testing.T, ns int64, host, kind, source, stream, msg string, cont bool) {
		e := event.Entry{Time: time.Unix(0, ns).UTC(), Host: host, Kind: kind, Source: source, Stream: stream,
			Message: msg, Continued: cont, Route: "r"}
		if ns%3 == 0 {
			e.Time = e.Time.In(time.FixedZone("", int(ns%86400)))
		}
		if dec := json.NewDecoder(strings.NewReader(msg)); true {
			dec.UseNumber()
			var m map[string]any
			if dec.Decode(&m) == nil {
				jsonscan.ConvertNumbers(m)
				e.Fields = m
			}
		}
		got, gotErr := AppendNDJSON([]byte("x"), &e)
		want, wantErr := appendNDJSONStd([]byte("x"), &e)
		if (gotErr == nil) != (wantErr == nil) || string(got) != string(want) {
			t.Fatalf("entry %#v:\njsonscan      %q (%v)\nencoding/json %q (%v)", e, got, gotErr, want, wantErr)
		}
	})
}

// Many lines whose strings are unescaped into one shared buffer, with invalid UTF-8 (which
// grows as it is replaced) among them: every string must stay what it was decoded as.
func TestDecodeNDJSONFastSharedBuffer(t *testing.T) {
	var b strings.Builder
	for i := range 2000 {
		msg := strings.Repeat(`{\"k\":\"v\"}`, i%7)
		if i%13 == 0 {
			msg += "\xff\xfe\xfd"
		}
		b.WriteString(`{"host":"h\u00e9` + strings.Repeat("x", i%5) + `","message":"` + msg + `","fields":{"a\"b":"\n` + msg + `"}}` + "\n")
	}
	checkNDJSONFast(t, b.String())
	if _, ok := decodeNDJSONFast([]byte(b.String()), false); !ok {
		t.Fatal("jsonscan gave up on valid NDJSON")
	}
}
