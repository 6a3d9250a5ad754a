package streams_test

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/streams"
)

// derivedMsg encodes entries as a processor does: on subject, with the input's read time.
func derivedMsg(t testing.TB, format, subject, readTime string, entries []event.Entry) (*nats.Msg, string) {
	t.Helper()
	h := nats.Header{}
	if readTime != "" {
		h.Set(streams.HdrReadTime, readTime)
	}
	data, got, err := streams.AppendDerived(nil, format, subject, h, "LOGS:1", entries)
	if err != nil {
		t.Fatal(err)
	}
	m := streams.DerivedMsgData(subject, "LOGS:1", got, len(entries), data)
	if readTime != "" {
		m.Header.Set(streams.HdrReadTime, readTime)
	}
	return m, got
}

// withoutFieldsFrom is es with FieldsFrom cleared: what NDJSON gives back.
func withoutFieldsFrom(es []event.Entry) []event.Entry {
	out := append([]event.Entry(nil), es...)
	for i := range out {
		out[i].FieldsFrom = ""
	}
	return out
}

// validUTF8 reports whether the strings of es outside their fields are UTF-8.
func validUTF8(es []event.Entry) bool {
	for _, e := range es {
		for _, s := range []string{e.Host, e.Kind, e.Source, e.Stream, e.Message} {
			if !utf8.ValidString(s) {
				return false
			}
		}
	}
	return true
}

// canonical is es as NDJSON, each line after its FieldsFrom.
func canonical(t *testing.T, es []event.Entry) string {
	var b []byte
	for i := range es {
		b = append(b, es[i].FieldsFrom+" "...)
		var err error
		if b, err = streams.AppendNDJSON(b, &es[i]); err != nil {
			t.Fatal(err)
		}
	}
	return string(b)
}

// Entries written as lines+json read back as they were, and as NDJSON would give them; the
// chunks lines+json cannot carry are written as NDJSON.
func TestLinesJSONRoundTrip(t *testing.T) {
	read := time.Date(2026, 12, 6, 10, 0, 0, 5, time.UTC)
	const readTime = "2026-12-06T10:00:00.000000005Z"
	subject := streams.Subject("parsed.x", streams.KindFile, "node-1", "/var/log/app.log")
	file := func(i int, msg string) event.Entry {
		return event.Entry{Time: read.Add(time.Duration(i)), Host: "node-1", Kind: "file", Source: "/var/log/app.log", Message: msg}
	}
	parsed := func(e event.Entry, fields map[string]any) event.Entry {
		e.Fields, e.FieldsFrom = fields, event.FieldsFromJSON
		return e
	}
	for _, tc := range []struct {
		name    string
		entries []event.Entry
		format  string // written: lines+json, or ndjson when it cannot
		payload string // when set, the exact payload
	}{
		{name: "json lines parsed by the json step, times in sequence",
			entries: []event.Entry{
				parsed(file(0, `{"level":"info","n":1}`), map[string]any{"level": "info", "n": int64(1)}),
				parsed(file(1, `{"big":123456789012345678901234567890,"f":0.5}`), map[string]any{"big": jsonNumber("123456789012345678901234567890"), "f": 0.5}),
			},
			format:  streams.FormatLinesJSON,
			payload: "{\"level\":\"info\",\"n\":1}\n{\"big\":123456789012345678901234567890,\"f\":0.5}\n{\"fields_from\":\"json\"}\n{\"fields_from\":\"json\"}\n"},
		{name: "an entry dropped before: the next one's time is written",
			entries: []event.Entry{file(0, "a"), file(2, "c"), file(3, "d")},
			format:  streams.FormatLinesJSON,
			payload: "a\nc\nd\n{}\n{\"time\":\"2026-12-06T10:00:00.000000007Z\"}\n{}\n"},
		{name: "fields a step changed, host, source, stream and continued of their own",
			entries: []event.Entry{
				{Time: time.Date(2025, 1, 1, 0, 0, 0, 0, time.FixedZone("", 3600)), Host: "other", Kind: "docker", Source: "/x y", Stream: "stderr",
					Message: `{"a":1}`, Fields: map[string]any{"a": int64(1), "b": []any{"x", true, nil, map[string]any{"c": 2.5}}}, Continued: true},
				{Time: time.Date(2025, 1, 1, 0, 0, 0, 1, time.FixedZone("", 3600)), Host: "", Kind: "file", Source: "/var/log/app.log", Message: ""},
			},
			format: streams.FormatLinesJSON},
		{name: "empty messages, carriage returns, U+2028, HTML",
			entries: []event.Entry{file(0, ""), file(1, "x\r"), file(2, "\u2028 <b> & \"q\" \\"), file(3, "")},
			format:  streams.FormatLinesJSON},
		{name: "a message holding a newline: NDJSON",
			entries: []event.Entry{file(0, "a"), file(1, "b\nc")},
			format:  streams.FormatNDJSON},
		{name: "a message not UTF-8: NDJSON",
			entries: []event.Entry{file(0, "a\xff")},
			format:  streams.FormatNDJSON},
		{name: "no entries", format: streams.FormatLinesJSON, payload: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, got := derivedMsg(t, streams.FormatLinesJSON, subject, readTime, tc.entries)
			if got != tc.format || m.Header.Get(streams.HdrFormat) != tc.format {
				t.Fatalf("written as %s (header %s), want %s", got, m.Header.Get(streams.HdrFormat), tc.format)
			}
			if tc.payload != "" && string(m.Data) != tc.payload {
				t.Errorf("payload\n%s\nwant\n%s", m.Data, tc.payload)
			}
			out, err := streams.Entries(m.Subject, m.Header, m.Data)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.entries
			if got == streams.FormatNDJSON {
				want = withoutFieldsFrom(want)
				for i := range want {
					want[i].Message = strings.ToValidUTF8(want[i].Message, "\uFFFD") // JSON cannot carry it
				}
			}
			if len(out) != 0 || len(want) != 0 {
				if !reflect.DeepEqual(out, want) {
					t.Fatalf("round trip\n got %#v\nwant %#v", out, want)
				}
			}
			nd, _ := derivedMsg(t, streams.FormatNDJSON, subject, readTime, tc.entries)
			ndOut, err := streams.Entries(nd.Subject, nd.Header, nd.Data)
			if err != nil {
				t.Fatal(err)
			}
			if (len(ndOut) != 0 || len(out) != 0) && !reflect.DeepEqual(withoutFieldsFrom(out), ndOut) {
				t.Fatalf("lines+json and NDJSON differ\n got %#v\nwant %#v", out, ndOut)
			}
			raw, _, err := streams.EntriesRawNoFields(m.Subject, m.Header, m.Data)
			if err != nil {
				t.Fatal(err)
			}
			for i := range raw {
				if raw[i].Fields != nil || raw[i].Message != out[i].Message || !raw[i].Time.Equal(out[i].Time) {
					t.Fatalf("entry %d without fields: %#v, want %#v without fields", i, raw[i], out[i])
				}
			}
		})
	}
}

func jsonNumber(s string) any { return json.Number(s) }

// Chunks that are not lines+json as logcap writes it are errors that say what is wrong,
// never a panic or entries made up.
func TestLinesJSONBad(t *testing.T) {
	for _, tc := range []struct{ name, lines, data, want string }{
		{"no count", "", "a\n{}\n", `Logcap-Lines ""`},
		{"too few lines", "3", "aaaaaaaa\n{}\n", "message 3 of 3: no end of line"},
		{"no objects", "2", "aaaa\nbbbb\n", "entry 1 of 2: no object"},
		{"more after", "1", "a\n{}\n{}\n", "bytes after the 1 entries"},
		{"a message in the object", "1", "a\n{\"message\":\"b\"}\n", "a message in the object"},
		{"fields and fields_from", "1", "{\"a\":1}\n{\"fields\":{\"a\":1},\"fields_from\":\"json\"}\n", "both fields and fields_from"},
		{"not an object", "1", "a\nnull\n", "not a JSON object"},
		{"more after the object", "1", "a\n{\"fields_from\":\"json\"} ]\n", "data after the object"},
		{"fields_from of another parser", "1", "a=1\n{\"fields_from\":\"logfmt\"}\n", `fields_from "logfmt"`},
		{"a count beyond the bytes", "2", "a\n{}\n", "not a count of entries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := nats.Header{}
			h.Set(streams.HdrFormat, streams.FormatLinesJSON)
			if tc.lines != "" {
				h.Set(streams.HdrLines, tc.lines)
			}
			es, err := streams.Entries("parsed.file.h.x", h, []byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "parsed.file.h.x") {
				t.Fatalf("entries %v, error %v: want one naming the subject and saying %q", es, err, tc.want)
			}
		})
	}
}

// A fields_from whose message is not a JSON object (not written by logcap) gives that entry
// fields._error, as a json step would, and the chunk's other entries their fields.
func TestLinesJSONFieldsFromNotJSON(t *testing.T) {
	h := nats.Header{}
	h.Set(streams.HdrFormat, streams.FormatLinesJSON)
	h.Set(streams.HdrLines, "2")
	es, err := streams.Entries("parsed.file.h.x", h, []byte("a\n{\"b\":1}\n{\"fields_from\":\"json\"}\n{\"fields_from\":\"json\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Fields["_error"] != "fields_from json: not an object (starts with 'a')" || !reflect.DeepEqual(es[1].Fields, map[string]any{"b": int64(1)}) {
		t.Fatalf("entries %+v", es)
	}
}

// A dead letter of a lines+json chunk reads back as the original did: its defaults come
// from Logcap-Orig-Subject, not from deadletter.<consumer>.
func TestLinesJSONDeadLetter(t *testing.T) {
	subject := streams.Subject("parsed", streams.KindFile, "node-1", "/var/log/app.log")
	in := []event.Entry{{Time: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC), Host: "node-1", Kind: "file", Source: "/var/log/app.log", Message: "x"}}
	m, _ := derivedMsg(t, streams.FormatLinesJSON, subject, "", in)
	m.Header.Set(streams.HdrDLSubject, subject)
	es, err := streams.Entries("deadletter.out", m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(es, in) {
		t.Fatalf("dead letter read back as %+v, want %+v", es, in)
	}
}

func FuzzLinesJSON(f *testing.F) {
	f.Add("parsed.file.h.x", "2026-12-06T10:00:00Z", 2, "{\"a\":1}\nb\n{\"fields_from\":\"json\"}\n{\"time\":\"2026-12-06T10:00:00Z\",\"stream\":\"stdout\",\"fields\":{\"x\":[1,2.5,\"s\"]}}\n")
	f.Add("p.docker.%.c", "", 1, "m\n{\"host\":\"h\",\"kind\":\"k\",\"source\":\"s\",\"continued\":true}\n")
	f.Add("x", "bad", 1, "m\n{\"Time\":\"2026-12-06T10:00:00+01:00\",\"HOST\":\"h\",\"fields\":{\"n\":1e400}}\n")
	f.Fuzz(func(t *testing.T, subject, readTime string, lines int, data string) {
		h := nats.Header{}
		h.Set(streams.HdrFormat, streams.FormatLinesJSON)
		h.Set(streams.HdrLines, strconv.Itoa(lines))
		if readTime != "" {
			h.Set(streams.HdrReadTime, readTime)
		}
		es, err := streams.Entries(subject, h, []byte(data))
		if err != nil {
			return
		}
		// What was read is written again the same way, and reads back the same, in either
		// format (NDJSON without FieldsFrom).
		for _, format := range []string{streams.FormatLinesJSON, streams.FormatNDJSON} {
			out, got, err := streams.AppendDerived(nil, format, subject, h, "id", es)
			if err != nil {
				return // a time or number JSON cannot carry: not written, nothing stored
			}
			m := streams.DerivedMsgData(subject, "id", got, len(es), out)
			m.Header[streams.HdrReadTime] = h[streams.HdrReadTime]
			again, err := streams.Entries(subject, m.Header, m.Data)
			if err != nil {
				t.Fatalf("%s: re-reading our own chunk: %v\n%q", got, err, out)
			}
			want := es
			if got == streams.FormatNDJSON {
				if !validUTF8(es) {
					continue // NDJSON cannot carry it (U+FFFD instead), as designed
				}
				want = withoutFieldsFrom(want)
			}
			// Compared as their NDJSON (a float 0 is written 0 and read back an int, in
			// either format), and by FieldsFrom.
			if a, b := canonical(t, again), canonical(t, want); a != b {
				t.Fatalf("%s: read back\n got %s\nwant %s", got, a, b)
			}
		}
	})
}

// An entry a json step left with FieldsFrom and no fields (nothing after it read them) is
// written with its fields in either format: lines+json by reference, NDJSON parsed.
func TestFieldsFromWithoutFields(t *testing.T) {
	subject := streams.Subject("parsed", streams.KindFile, "h", "/a.log")
	e := event.Entry{Host: "h", Kind: "file", Source: "/a.log", Message: `{"a":1,"b":[true]}`, FieldsFrom: event.FieldsFromJSON}
	want := map[string]any{"a": int64(1), "b": []any{true}}
	for _, format := range []string{streams.FormatLinesJSON, streams.FormatNDJSON} {
		m, got := derivedMsg(t, format, subject, "", []event.Entry{e})
		if got != format {
			t.Fatalf("%s written as %s", format, got)
		}
		out, err := streams.Entries(m.Subject, m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 1 || !reflect.DeepEqual(out[0].Fields, want) {
			t.Fatalf("%s: %q read back as %+v, want fields %v", format, m.Data, out, want)
		}
	}
	line, err := streams.AppendNDJSON(nil, &e)
	if err != nil || !strings.Contains(string(line), `"fields":{"a":1,"b":[true]}`) {
		t.Fatalf("AppendNDJSON: %s, %v", line, err)
	}
}
