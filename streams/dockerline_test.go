package streams

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParseDockerLine(t *testing.T) {
	ts := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		name, line string
		ok         bool
		ts         time.Time
		msg        string
	}{
		{"nanos", "2026-11-27T13:18:38.123456789Z hello world\n", true, ts("2026-11-27T13:18:38.123456789Z"), "hello world"},
		{"no newline", "2026-11-27T13:18:38Z x", true, ts("2026-11-27T13:18:38Z"), "x"},
		{"tty crlf", "2026-11-27T13:18:38.1Z x\r\n", true, ts("2026-11-27T13:18:38.1Z"), "x"},
		{"empty message", "2026-11-27T13:18:38.5Z \n", true, ts("2026-11-27T13:18:38.5Z"), ""},
		{"timestamp only", "2026-11-27T13:18:38.5Z\n", true, ts("2026-11-27T13:18:38.5Z"), ""},
		{"zone offset", "2026-11-27T14:18:38+01:00 m", true, ts("2026-11-27T13:18:38Z"), "m"},
		{"message keeps inner spaces and bytes", "2026-11-27T13:18:38Z  a \xff\n", true, ts("2026-11-27T13:18:38Z"), " a \xff"},
		{"no timestamp", "hello world", false, time.Time{}, ""},
		{"empty", "", false, time.Time{}, ""},
		{"bad date", "2026-13-27T13:18:38Z x", false, time.Time{}, ""},
		{"space first", " 2026-11-27T13:18:38Z x", false, time.Time{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, msg, ok := ParseDockerLine([]byte(tc.line))
			if ok != tc.ok || !got.Equal(tc.ts) || string(msg) != tc.msg {
				t.Fatalf("= %v %q %v, want %v %q %v", got, msg, ok, tc.ts, tc.msg, tc.ok)
			}
		})
	}
}

// FuzzParseDockerLine: never panics; when ok, msg is the line's tail and the timestamp
// round-trips through RFC 3339; when not ok, msg is nil.
func FuzzParseDockerLine(f *testing.F) {
	for _, s := range []string{"2026-11-27T13:18:38.123456789Z hello\n", "2026-11-27T13:18:38Z", "x", "",
		"2026-11-27T13:18:38+01:00 \r\n", "9999-12-31T23:59:59.999999999Z \xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		ts, msg, ok := ParseDockerLine(line)
		if !ok {
			if msg != nil || !ts.IsZero() {
				t.Fatalf("not ok but %v %q", ts, msg)
			}
			return
		}
		// line = timestamp [" " msg] ["\r"]["\n"], and only one line ending is taken off.
		sp := bytes.IndexByte(line, ' ')
		if sp >= 0 {
			rest := line[sp+1:]
			if !bytes.HasPrefix(rest, msg) {
				t.Fatalf("msg %q does not start the tail of %q", msg, line)
			}
			if end := string(rest[len(msg):]); end != "" && end != "\n" && end != "\r\n" {
				t.Fatalf("msg %q of %q lost %q", msg, line, end)
			}
		} else if len(msg) != 0 {
			t.Fatalf("msg %q from a line without a space", msg)
		}
		back, err := time.Parse(time.RFC3339Nano, ts.Format(time.RFC3339Nano))
		if err != nil || !back.Equal(ts) {
			t.Fatalf("timestamp %v does not round-trip: %v", ts, err)
		}
	})
}

func BenchmarkParseDockerLine(b *testing.B) {
	line := []byte("2026-11-27T13:18:38.123456789Z " + strings.Repeat("x", 170) + "\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := ParseDockerLine(line); !ok {
			b.Fatal("not ok")
		}
	}
}

// TestCutDockerTimestamp: the one parser of the prefix Docker writes on every record.
func TestCutDockerTimestamp(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Time
		rest    string
		wantErr bool
	}{
		{in: "2026-11-27T10:00:00.000000001Z x", want: time.Date(2026, 11, 27, 10, 0, 0, 1, time.UTC), rest: "x"},
		{in: "2026-11-27T10:00:00.5+01:00 y", want: time.Date(2026, 11, 27, 9, 0, 0, 5e8, time.UTC), rest: "y"},
		{in: "2026-11-27T10:00:00Z ", want: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), rest: ""},
		{in: "nonsense line", wantErr: true},
		{in: "", wantErr: true},
		{in: strings.Repeat("a", 100), wantErr: true},
		{in: "2026-11-27 10:00:00Z x", wantErr: true},
	}
	for _, tt := range tests {
		ts, _, rest, err := CutDockerTimestamp([]byte(tt.in))
		if (err != nil) != tt.wantErr {
			t.Errorf("CutDockerTimestamp(%q): error %v", tt.in, err)
			continue
		}
		if err == nil && (!ts.Equal(tt.want) || string(rest) != tt.rest) {
			t.Errorf("CutDockerTimestamp(%q) = %v %q, want %v %q", tt.in, ts, rest, tt.want, tt.rest)
		}
	}
}
