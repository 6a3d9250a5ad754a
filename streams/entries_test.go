package streams_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/streams"
)

func TestEntries(t *testing.T) {
	read := time.Unix(1700000000, 5).UTC()
	ts1 := time.Date(2026, 11, 27, 13, 18, 38, 123456789, time.UTC)
	ts2 := time.Date(2026, 11, 27, 13, 18, 39, 0, time.UTC)
	file := func(data string, mod func(c *streams.Chunk)) *nats.Msg {
		c := &streams.Chunk{Kind: streams.KindFile, Host: "h1", Source: "/var/log/a.log", Data: []byte(data),
			Lines: strings.Count(data, "\n"), ReadTime: read, File: &streams.FilePos{Dev: 1, Ino: 2, Start: 0, End: int64(len(data))}}
		if mod != nil {
			mod(c)
		}
		return c.Msg()
	}
	docker := func(stream, data string, mod func(c *streams.Chunk)) *nats.Msg {
		c := &streams.Chunk{Kind: streams.KindDocker, Host: "h1", Source: "nginx", Data: []byte(data),
			Lines: strings.Count(data, "\n"), ReadTime: read, Docker: &streams.DockerPos{ContainerID: "abc", Stream: stream, FirstTS: ts1, LastTS: ts2, LastTSCount: 1}}
		if mod != nil {
			mod(c)
		}
		return c.Msg()
	}
	// A file chunk's entry i is at the read time + i ns: entries of one source are strictly
	// ordered in time, the same on every decode.
	fe := func(i int, msg string) event.Entry {
		return event.Entry{Time: read.Add(time.Duration(i)), Host: "h1", Kind: "file", Source: "/var/log/a.log", Message: msg}
	}
	de := func(ts time.Time, stream, msg string) event.Entry {
		return event.Entry{Time: ts, Host: "h1", Kind: "docker", Source: "nginx", Stream: stream, Message: msg}
	}
	derived := func(data string) *nats.Msg {
		m := nats.NewMsg("parsed.file.h1.x")
		m.Header.Set(streams.HdrFormat, streams.FormatNDJSON)
		m.Data = []byte(data)
		return m
	}
	for _, tc := range []struct {
		name    string
		msg     *nats.Msg
		want    []event.Entry
		wantRaw []string
		wantErr string
	}{
		{name: "file lines", msg: file("a\nb\r\n\nlast", nil),
			want:    []event.Entry{fe(0, "a"), fe(1, "b"), fe(2, ""), fe(3, "last")},
			wantRaw: []string{"a", "b", "", "last"}},
		{name: "file invalid utf-8 survives", msg: file("\xff\xfe\n", nil),
			want: []event.Entry{fe(0, "\xff\xfe")}, wantRaw: []string{"\xff\xfe"}},
		{name: "file multiline entries", msg: file("e1 l1\n  l2\ne2\n", func(c *streams.Chunk) { c.Entries = []int{11, 3}; c.Lines = 2 }),
			want: []event.Entry{fe(0, "e1 l1\n  l2"), fe(1, "e2")}, wantRaw: []string{"e1 l1\n  l2", "e2"}},
		{name: "file split line joined", msg: file("aaa\rbbbccc\nz\n", func(c *streams.Chunk) { c.Entries = []int{4, 3, 4, 2}; c.Continued = []int{0, 1} }),
			want: []event.Entry{fe(0, "aaa\rbbbccc"), fe(1, "z")}, wantRaw: []string{"aaa\rbbbccc", "z"}},
		{name: "file chunk ending inside a split line", msg: file("aaabbb", func(c *streams.Chunk) { c.Entries = []int{3, 3}; c.Continued = []int{0, 1} }),
			want: []event.Entry{continues(fe(0, "aaabbb"))}, wantRaw: []string{"aaabbb"}},
		{name: "docker lines", msg: docker("stderr", "2026-11-27T13:18:38.123456789Z hello\n2026-11-27T13:18:39Z  two spaces\r\n", nil),
			want:    []event.Entry{de(ts1, "stderr", "hello"), de(ts2, "stderr", " two spaces")},
			wantRaw: []string{"2026-11-27T13:18:38.123456789Z hello", "2026-11-27T13:18:39Z  two spaces"}},
		{name: "docker split line joined, first part's time", msg: docker("stdout", "2026-11-27T13:18:38.123456789Z part1\r2026-11-27T13:18:39Z part2\n",
			func(c *streams.Chunk) { c.Entries = []int{37, 27}; c.Continued = []int{0} }),
			want:    []event.Entry{de(ts1, "stdout", "part1\rpart2")},
			wantRaw: []string{"2026-11-27T13:18:38.123456789Z part1\r2026-11-27T13:18:39Z part2"}},
		{name: "docker line without timestamp kept whole", msg: docker("stdout", "no timestamp\n", nil),
			want: []event.Entry{de(time.Time{}, "stdout", "no timestamp")}, wantRaw: []string{"no timestamp"}},
		{name: "empty chunk", msg: file("", nil), want: []event.Entry{}, wantRaw: []string{}},
		{name: "derived ndjson", msg: derived(`{"time":"2026-11-27T13:18:38.123456789Z","host":"h1","kind":"file","source":"/a","message":"<m>","fields":{"n":3,"f":1.5,"big":123456789012345678901,"s":"x","o":{"k":[1,2]}}}` + "\n\n" +
			`{"time":"2026-11-27T13:18:39Z","host":"h1","kind":"docker","source":"c","stream":"stdout","message":"m2"}` + "\n"),
			want: []event.Entry{
				{Time: ts1, Host: "h1", Kind: "file", Source: "/a", Message: "<m>", Fields: map[string]any{
					"n": int64(3), "f": 1.5, "big": json.Number("123456789012345678901"), "s": "x", "o": map[string]any{"k": []any{int64(1), int64(2)}}}},
				{Time: ts2, Host: "h1", Kind: "docker", Source: "c", Stream: "stdout", Message: "m2"},
			}},
		{name: "derived by subject without header", msg: &nats.Msg{Subject: "parsed.file.h1.x", Data: []byte(`{"message":"m"}`)},
			want: []event.Entry{{Message: "m"}}},
		{name: "derived bad json", msg: derived("{\"message\":\"m\"}\nnot json\n"), wantErr: "line 2"},
		{name: "derived trailing data", msg: derived(`{"message":"m"} {}`), wantErr: "data after"},
		{name: "raw bad header", msg: func() *nats.Msg {
			m := file("a\n", nil)
			m.Header.Set(streams.HdrEntries, "5")
			return m
		}(), wantErr: "Logcap-Entries"},
		{name: "raw bad subject", msg: &nats.Msg{Subject: "logs.file.h1", Data: []byte("a\n")}, wantErr: "want <prefix>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, raw, err := streams.EntriesRaw(tc.msg.Subject, tc.msg.Header, tc.msg.Data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("entries\n got %#v\nwant %#v", got, tc.want)
			}
			if tc.wantRaw != nil {
				gotRaw := make([]string, len(raw))
				for i, r := range raw {
					gotRaw[i] = string(r)
				}
				if !reflect.DeepEqual(gotRaw, tc.wantRaw) {
					t.Fatalf("raw\n got %q\nwant %q", gotRaw, tc.wantRaw)
				}
			} else if raw != nil {
				t.Fatalf("raw = %q for a derived chunk, want nil", raw)
			}
			plain, err := streams.Entries(tc.msg.Subject, tc.msg.Header, tc.msg.Data)
			if err != nil || !reflect.DeepEqual(plain, got) {
				t.Fatalf("Entries differs from EntriesRaw: %v", err)
			}
		})
	}
}

// Entries → DerivedMsg → Entries is the identity (for valid UTF-8), which is what lets a
// second processor or a sink read a derived stream as if it read the first one.
func TestDerivedRoundTrip(t *testing.T) {
	in := []event.Entry{
		{Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Host: "h", Kind: "file", Source: "/x", Message: "a <b> & c\n\"q\"",
			Fields: map[string]any{"level": "info", "n": int64(-7), "f": 0.25, "nested": map[string]any{"l": []any{"x", true, nil}}}},
		{Host: "h", Kind: "docker", Source: "c", Stream: "stderr", Message: ""},
	}
	m, err := streams.DerivedMsg("p.file.h.%2Fx", "LOGS:42", in)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get(nats.MsgIdHdr); got != "LOGS:42" {
		t.Errorf("msg id %q", got)
	}
	if got := m.Header.Get(streams.HdrLines); got != "2" {
		t.Errorf("lines %q", got)
	}
	if strings.Count(string(m.Data), "\n") != 2 || !strings.Contains(string(m.Data), "<b> & c") {
		t.Errorf("payload is not 2 NDJSON lines with unescaped HTML: %q", m.Data)
	}
	out, err := streams.Entries(m.Subject, m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("round trip\n got %#v\nwant %#v", out, in)
	}
	if _, err := streams.DerivedMsg("p.x", "id", []event.Entry{{Fields: map[string]any{"bad": func() {}}}}); err == nil {
		t.Error("an unencodable field: no error")
	}
}

func FuzzEntries(f *testing.F) {
	f.Add("logs.file.h1.%2Fa", "", "", "a\nb\n", false)
	f.Add("logs.file.h1.a", "4,3,4,2", "0,1", "aaa\rbbbccc\nz\n", false)
	f.Add("logs.docker.h1.c", "37,27", "0", "2026-11-27T13:18:38.123456789Z part1\r2026-11-27T13:18:39Z part2\n", false)
	f.Add("logs.docker.h1.c", "", "", "2026-11-27T13:18:38Z\n2026-11-27T13:18:38+01:00 x", false)
	f.Add("p.file.h.x", "", "", `{"message":"m","fields":{"a":[1,{"b":2e3}]}}`+"\n", true)
	f.Fuzz(func(t *testing.T, subject, entries, continued, data string, ndjson bool) {
		h := nats.Header{}
		if entries != "" {
			h.Set(streams.HdrEntries, entries)
		}
		if continued != "" {
			h.Set(streams.HdrContinued, continued)
		}
		if ndjson {
			h.Set(streams.HdrFormat, streams.FormatNDJSON)
		}
		es, raw, err := streams.EntriesRaw(subject, h, []byte(data))
		if err != nil {
			return
		}
		if raw != nil && len(raw) != len(es) {
			t.Fatalf("%d entries, %d raw", len(es), len(raw))
		}
		total := 0
		for _, r := range raw {
			total += len(r)
		}
		if total > len(data) {
			t.Fatalf("raw bytes %d > data %d", total, len(data))
		}
		if m, err := streams.DerivedMsg("p.x", "id", es); err == nil {
			if _, err := streams.Entries(m.Subject, m.Header, m.Data); err != nil {
				t.Fatalf("re-decoding our own derived chunk: %v", err)
			}
		}
	})
}

// continues marks e as a part that the next chunk's first entry continues.
func continues(e event.Entry) event.Entry {
	e.Continued = true
	return e
}

// Identical lines of one chunk are distinct (time, line) pairs, strictly increasing in time
// and the same on every decode (a redelivery): Loki drops an entry whose time and line equal
// another's of its stream, and a store sorts by time.
func TestFileEntriesStrictlyOrderedInTime(t *testing.T) {
	read := time.Unix(1700000000, 0).UTC()
	data := strings.Repeat("same line\n", 2000)
	c := &streams.Chunk{Kind: streams.KindFile, Host: "h1", Source: "/a.log", Data: []byte(data), Lines: 2000, ReadTime: read,
		File: &streams.FilePos{Dev: 1, Ino: 2, End: int64(len(data))}}
	m := c.Msg()
	first, err := streams.Entries(m.Subject, m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := streams.Entries(m.Subject, m.Header, m.Data)
	for i := range first {
		if i > 0 && !first[i].Time.After(first[i-1].Time) {
			t.Fatalf("entry %d at %v, not after entry %d at %v", i, first[i].Time, i-1, first[i-1].Time)
		}
		if !first[i].Time.Equal(again[i].Time) {
			t.Fatalf("entry %d at %v, then at %v on the next decode", i, first[i].Time, again[i].Time)
		}
	}
	if last := first[len(first)-1].Time.Sub(read); last != 1999 {
		t.Errorf("last entry %v after the read time, want 1999ns", last)
	}
}
