package dockermon

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// frame encodes one multiplexed frame the way Docker's stdcopy writer does.
func frame(stream byte, payload string) string {
	var h [8]byte
	h[0] = stream
	binary.BigEndian.PutUint32(h[4:], uint32(len(payload)))
	return string(h[:]) + payload
}

const (
	ts1 = "2026-11-27T10:00:00.000000001Z"
	ts2 = "2026-11-27T10:00:00.000000002Z"
)

type rec struct {
	stream, ts, line string
	partial          bool
}

func decodeAll(t testing.TB, in string, tty bool, oneByte bool) ([]rec, error) {
	t.Helper()
	var r io.Reader = strings.NewReader(in)
	if oneByte {
		r = iotest.OneByteReader(r)
	}
	d := NewDecoder(r, tty, 0)
	var out []rec
	for i := 0; i < 100000; i++ {
		rc, err := d.Next()
		if err != nil {
			return out, err
		}
		out = append(out, rec{rc.Stream, string(rc.RawTS), string(rc.Line), rc.Partial})
	}
	t.Fatal("decoder does not end")
	return nil, nil
}

func TestDecoder(t *testing.T) {
	big := strings.Repeat("x", DockerPartialSize)
	tests := []struct {
		name    string
		in      string
		tty     bool
		want    []rec
		wantErr error
	}{
		{name: "empty", in: "", wantErr: io.EOF},
		{name: "stdout and stderr frames",
			in:      frame(1, ts1+" hello\n") + frame(2, ts2+" oops\n"),
			want:    []rec{{Stdout, ts1, "hello\n", false}, {Stderr, ts2, "oops\n", false}},
			wantErr: io.EOF},
		{name: "split line parts share a timestamp",
			in:      frame(1, ts1+" "+big) + frame(1, ts1+" tail\n"),
			want:    []rec{{Stdout, ts1, big, true}, {Stdout, ts1, "tail\n", false}},
			wantErr: io.EOF},
		{name: "two records in one frame",
			in:      frame(1, ts1+" a\n"+ts2+" b\n"),
			want:    []rec{{Stdout, ts1, "a\n", false}, {Stdout, ts2, "b\n", false}},
			wantErr: io.EOF},
		{name: "empty line", in: frame(1, ts1+" \n"), want: []rec{{Stdout, ts1, "\n", false}}, wantErr: io.EOF},
		{name: "truncated payload",
			in:   frame(1, ts1+" ok\n") + frame(1, ts2+" cut short\n")[:20],
			want: []rec{{Stdout, ts1, "ok\n", false}}, wantErr: ErrTruncated},
		{name: "truncated header",
			in:   frame(2, ts1+" ok\n") + "\x02\x00\x00",
			want: []rec{{Stderr, ts1, "ok\n", false}}, wantErr: ErrTruncated},
		{name: "binary and invalid utf-8 survive",
			in: frame(1, ts1+" \xff\x00\xfe\n"), want: []rec{{Stdout, ts1, "\xff\x00\xfe\n", false}}, wantErr: io.EOF},
		{name: "tty lines end in CRLF",
			in: ts1 + " hello\r\n" + ts2 + " world\r\n", tty: true,
			want: []rec{{Stdout, ts1, "hello\r\n", false}, {Stdout, ts2, "world\r\n", false}}, wantErr: io.EOF},
		{name: "tty split line",
			in: ts1 + " " + big + ts1 + " tail\r\n", tty: true,
			want: []rec{{Stdout, ts1, big, true}, {Stdout, ts1, "tail\r\n", false}}, wantErr: io.EOF},
		{name: "tty last line without newline",
			in: ts1 + " a\r\n" + ts2 + " no newline", tty: true,
			want: []rec{{Stdout, ts1, "a\r\n", false}, {Stdout, ts2, "no newline", true}}, wantErr: io.EOF},
		{name: "tty truncated timestamp", in: ts1 + " a\n" + ts2[:10], tty: true,
			want: []rec{{Stdout, ts1, "a\n", false}}, wantErr: ErrTruncated},
	}
	for _, tt := range tests {
		for _, oneByte := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/onebyte=%v", tt.name, oneByte), func(t *testing.T) {
				got, err := decodeAll(t, tt.in, tt.tty, oneByte)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Fatalf("got  %.300s\nwant %.300s", fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", tt.want))
				}
			})
		}
	}
}

func TestDecoderRejectsCorruptStreams(t *testing.T) {
	tests := []struct {
		name, in string
		want     string
		broken   bool // the frames are out of step: the stream cannot go on
	}{
		{"bad stream byte", "\x07\x00\x00\x00\x00\x00\x00\x01x", "bad stream byte", true},
		{"huge length", "\x01\x00\x00\x00\xff\xff\xff\xff", "over", true},
		{"no timestamp", frame(1, "hello world\n"), "timestamp", false},
		{"tty read as frames", ts1 + " hello\n", "bad stream byte", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewDecoder(strings.NewReader(tt.in), false, 0).Next()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if errors.Is(err, ErrBroken) != tt.broken {
				t.Fatalf("error %v: ErrBroken %v, want %v", err, !tt.broken, tt.broken)
			}
		})
	}
}

// failingReader returns data, then err forever: a body cut by a daemon that shut down.
type failingReader struct {
	data string
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// A read error is final and says so (ErrBroken) on every call: the follower once took it
// for a corrupt record, skipped it and called Next again, forever (found by internal/faults
// TestDockerdRestart: a hot loop of "bad log record skipped: unexpected EOF" once dockerd
// stopped, and the container never followed again).
func TestDecoderBrokenStream(t *testing.T) {
	for _, tty := range []bool{false, true} {
		t.Run(fmt.Sprintf("tty=%v", tty), func(t *testing.T) {
			in := frame(1, ts1+" one\n") + frame(1, ts1+" two\n")[:12]
			if tty {
				in = ts1 + " one\n" + ts1 + " tw"
			}
			d := NewDecoder(&failingReader{data: in, err: io.ErrUnexpectedEOF}, tty, 0)
			if r, err := d.Next(); err != nil || string(r.Line) != "one\n" {
				t.Fatalf("first record %q, %v", r.Line, err)
			}
			for range 3 {
				if _, err := d.Next(); !errors.Is(err, ErrBroken) || !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("error %v, want ErrBroken wrapping unexpected EOF", err)
				}
			}
		})
	}
}

// FuzzFrameDecoder: any input ends in a bounded number of records without panicking, and
// every record it returns carries a timestamp that parses and a line whose partial flag
// matches its last byte.
func FuzzFrameDecoder(f *testing.F) {
	f.Add([]byte(frame(1, ts1+" hello\n")+frame(2, ts2+" x")), false)
	f.Add([]byte(ts1+" "+strings.Repeat("y", 32)+ts1+" z\r\n"), true)
	f.Add([]byte("\x01\x00\x00\x00\x00\x00\x00\x05abc"), false)
	f.Fuzz(func(t *testing.T, in []byte, tty bool) {
		d := NewDecoder(bytes.NewReader(in), tty, 0)
		d.partSize = 32 // Docker's 16 KiB, scaled down so that the fuzzer explores splits
		for i := 0; i <= len(in); i++ {
			r, err := d.Next()
			if err != nil {
				if err == io.EOF || errors.Is(err, ErrTruncated) {
					return
				}
				continue // a corrupt record: the decoder goes on or ends; it must not hang
			}
			if _, perr := time.Parse(time.RFC3339Nano, string(r.RawTS)); perr != nil {
				t.Fatalf("record with bad timestamp %q", r.RawTS)
			}
			if ends := len(r.Line) > 0 && r.Line[len(r.Line)-1] == '\n'; ends == r.Partial {
				t.Fatalf("partial=%v for line %q", r.Partial, r.Line)
			}
		}
	})
}

func TestPosition(t *testing.T) {
	a := time.Date(2026, 11, 27, 10, 0, 0, 5, time.UTC)
	b := a.Add(time.Second)
	tests := []struct {
		p    Position
		tty  bool
		want time.Time
	}{
		{Position{}, false, time.Time{}},
		{Position{Stdout: StreamPos{a, 1}, Stderr: StreamPos{b, 2}}, false, a},
		{Position{Stdout: StreamPos{b, 1}, Stderr: StreamPos{a, 2}}, false, a},
		{Position{Stdout: StreamPos{b, 1}}, false, b.Add(-unsetMargin)},
		{Position{Stdout: StreamPos{b, 1}}, true, b},
		{Position{Stderr: StreamPos{a, 1}}, false, a.Add(-unsetMargin)},
	}
	for i, tt := range tests {
		if got := tt.p.since(tt.tty); !got.Equal(tt.want) {
			t.Errorf("%d: since %v, want %v", i, got, tt.want)
		}
		for _, sp := range []StreamPos{tt.p.Stdout, tt.p.Stderr} {
			back, err := parseStreamPos(sp.String())
			if err != nil || !back.TS.Equal(sp.TS) || back.Count != sp.Count {
				t.Errorf("%d: %v round trip: %v %v", i, sp, back, err)
			}
		}
	}
	for _, bad := range []string{"", "x:1", "1:", "1:-2", "12"} {
		if _, err := parseStreamPos(bad); err == nil {
			t.Errorf("parseStreamPos(%q): no error", bad)
		}
	}
}
