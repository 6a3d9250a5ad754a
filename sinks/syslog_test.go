package sinks

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

var syslogT0 = time.Date(2026, 11, 27, 10, 4, 5, 123456789, time.FixedZone("CET", 3600))

func syslogRec(msg string, mut func(*Record)) Record {
	r := Record{Entry: event.Entry{Time: syslogT0, Host: "web-1", Kind: "docker", Source: "nginx",
		Stream: "stdout", Message: msg}, Stream: "LOGS", Seq: 1}
	if mut != nil {
		mut(&r)
	}
	return r
}

func TestSyslogRFC5424(t *testing.T) {
	tests := []struct {
		name string
		rec  Record
		fac  int
		want string
	}{
		{"basic", syslogRec("hello world", nil), 1,
			`<14>1 2026-11-27T09:04:05.123456Z web-1 nginx - - [logcap@32473 kind="docker" stream="stdout"] hello world`},
		{"level and facility", syslogRec("boom", func(r *Record) { r.Fields = map[string]any{"level": "ERROR"} }), 16,
			`<131>1 2026-11-27T09:04:05.123456Z web-1 nginx - - [logcap@32473 kind="docker" stream="stdout"] boom`},
		{"escaping", syslogRec("m", func(r *Record) { r.Entry.Stream = `a"b\c]d` }), 1,
			`<14>1 2026-11-27T09:04:05.123456Z web-1 nginx - - [logcap@32473 kind="docker" stream="a\"b\\c\]d"] m`},
		{"nil values", syslogRec("m", func(r *Record) {
			r.Time, r.Host, r.Source, r.Kind, r.Entry.Stream = time.Time{}, "", "", "", ""
		}), 1, `<14>1 - - - - - - m`},
		{"file kind, long source, spaces", syslogRec("ünï cödé ✓", func(r *Record) {
			r.Kind, r.Entry.Stream = "file", ""
			r.Source = "/var/log/some very long directory name/with/an/application.log"
		}), 1, `<14>1 2026-11-27T09:04:05.123456Z web-1 /var/log/some_very_long_directory_name/with/an/a - - [logcap@32473 kind="file"] ünï cödé ✓`},
		{"raw when no message", syslogRec("", func(r *Record) { r.Raw = []byte("raw line") }), 1,
			`<14>1 2026-11-27T09:04:05.123456Z web-1 nginx - - [logcap@32473 kind="docker" stream="stdout"] raw line`},
		{"empty message", syslogRec("", nil), 1,
			`<14>1 2026-11-27T09:04:05.123456Z web-1 nginx - - [logcap@32473 kind="docker" stream="stdout"]`},
		{"invalid utf-8 in SD", syslogRec("m", func(r *Record) { r.Entry.Stream = "a\xffb" }), 1,
			`<14>1 2026-11-27T09:04:05.123456Z web-1 nginx - - [logcap@32473 kind="docker" stream="a` + "\uFFFD" + `b"] m`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendRFC5424(nil, &tt.rec, tt.fac)); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestSyslogRFC3164(t *testing.T) {
	now := time.Date(2026, 3, 7, 1, 2, 3, 0, time.UTC)
	tests := []struct {
		name string
		rec  Record
		want string
	}{
		{"basic", syslogRec("hello world", nil), "<14>Nov 27 09:04:05 web-1 nginx: hello world"},
		{"padded day, tag cut and cleaned", syslogRec("x", func(r *Record) {
			r.Time, r.Source = time.Time{}, "/var/log/app:1 [x]/abcdefghijklmnopqrstuvwxyz"
		}), "<14>Mar  7 01:02:03 web-1 /var/log/app_1__x_/abcdefghijklm: x"},
		{"no source", syslogRec("x", func(r *Record) { r.Source = "" }), "<14>Nov 27 09:04:05 web-1 logcap: x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendRFC3164(nil, &tt.rec, 1, now)); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestSyslogSeverity(t *testing.T) {
	tests := []struct {
		level any
		want  int
	}{
		{nil, 6}, {"emerg", 0}, {"PANIC", 0}, {"alert", 1}, {"fatal", 2}, {"crit", 2}, {"error", 3},
		{"err", 3}, {"Warning", 4}, {" warn ", 4}, {"notice", 5}, {"info", 6}, {"debug", 7},
		{"trace", 7}, {"3", 3}, {float64(5), 5}, {float64(9), 6}, {"verbose", 6}, {true, 6}, {int(2), 2},
	}
	for _, tt := range tests {
		f := map[string]any{}
		if tt.level != nil {
			f["level"] = tt.level
		}
		if got := syslogSeverity(f); got != tt.want {
			t.Errorf("level %#v: severity %d, want %d", tt.level, got, tt.want)
		}
	}
}

// readOctetCounted reads one RFC 6587 octet-counted frame.
func readOctetCounted(r *bufio.Reader) (string, error) {
	n, err := r.ReadString(' ')
	if err != nil {
		return "", err
	}
	l, err := strconv.Atoi(strings.TrimSuffix(n, " "))
	if err != nil || l <= 0 || strings.HasPrefix(n, "0") {
		return "", fmt.Errorf("bad frame length %q", n)
	}
	b := make([]byte, l)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(b), nil
}

func TestSyslogOctetCounting(t *testing.T) {
	msgs := []string{"a", "two words", "ünï\ncödé", strings.Repeat("x", 1000)}
	var buf []byte
	for _, m := range msgs {
		buf = appendOctetCounted(buf, []byte(m))
	}
	if !strings.HasPrefix(string(buf), "1 a9 two words12 ünï\ncödé1000 x") {
		t.Fatalf("framing %q", buf[:40])
	}
	r := bufio.NewReader(strings.NewReader(string(buf)))
	for _, m := range msgs {
		got, err := readOctetCounted(r)
		if err != nil || got != m {
			t.Fatalf("frame %q, %v; want %q", got, err, m)
		}
	}
}

func TestSyslogFactory(t *testing.T) {
	tests := []struct {
		name    string
		opts    map[string]any
		wantErr string
	}{
		{"minimal", map[string]any{"address": "127.0.0.1:514"}, ""},
		{"all", map[string]any{"name": "s", "type": "syslog", "address": "syslog.example:6514", "mode": "tls",
			"tls":    map[string]any{"ca": "/nonexistent/ca.pem", "insecure_skip_verify": false},
			"format": "rfc3164", "facility": "local3", "max_size": "8KiB", "timeout": "5s"}, ""},
		{"facility number", map[string]any{"address": "h:1", "facility": 16}, ""},
		{"no address", map[string]any{}, "address: required"},
		{"address without port", map[string]any{"address": "h"}, "address:"},
		{"bad mode", map[string]any{"address": "h:1", "mode": "relp"}, "mode:"},
		{"tls without tls mode", map[string]any{"address": "h:1", "tls": map[string]any{"ca": "x"}}, "tls:"},
		{"cert without key", map[string]any{"address": "h:1", "mode": "tls", "tls": map[string]any{"cert": "x"}}, "tls:"},
		{"bad format", map[string]any{"address": "h:1", "format": "cef"}, "format:"},
		{"bad facility", map[string]any{"address": "h:1", "facility": "local9"}, "facility"},
		{"facility out of range", map[string]any{"address": "h:1", "facility": 24}, "facility"},
		{"tiny max_size", map[string]any{"address": "h:1", "max_size": 100}, "max_size:"},
		{"unknown key", map[string]any{"address": "h:1", "protocol": "tcp"}, "protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, err := config.OptionsFrom(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			s, err := New("syslog", "s", opts)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if s.(*SyslogSink).conn != nil {
					t.Fatal("the factory connected")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func newSyslogSink(t *testing.T, o SyslogOptions) *SyslogSink {
	t.Helper()
	s, err := NewSyslog(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestSyslogTCPReconnect checks that a connection the server closed between batches is
// noticed before writing (not lost in the kernel) and redialled.
func TestSyslogTCPReconnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := newSyslogSink(t, SyslogOptions{Address: ln.Addr().String()})
	ctx := context.Background()
	for round := range 3 {
		batch := []Record{syslogRec(fmt.Sprintf("r%d-a", round), nil), syslogRec(fmt.Sprintf("r%d-b", round), nil)}
		if err := s.Write(ctx, batch); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		for _, want := range []string{"r%d-a", "r%d-b"} {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := readOctetCounted(r)
			if err != nil || !strings.HasSuffix(got, "] "+fmt.Sprintf(want, round)) {
				t.Fatalf("round %d: frame %q, %v", round, got, err)
			}
		}
		// The server goes away; the next round must land on a new connection.
		_ = c.Close()
		deadline := time.Now().Add(5 * time.Second)
		for connAlive(s.conn) {
			if time.Now().After(deadline) {
				t.Fatal("the closed connection still looks alive")
			}
			time.Sleep(time.Millisecond) // polling for the FIN to arrive
		}
	}
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSyslogTCPDownIsTransient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	s := newSyslogSink(t, SyslogOptions{Address: addr, Timeout: config.Duration(time.Second)})
	err = s.Write(context.Background(), []Record{syslogRec("x", nil)})
	if err == nil || errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("write to a closed port: %v, want a transient error naming %s", err, addr)
	}
	if err := s.Check(context.Background()); err == nil {
		t.Fatal("check of a closed port succeeded")
	}
}

// TestSyslogWriteCancel checks a Write blocked on a server that does not read returns
// promptly when its context is cancelled.
func TestSyslogWriteCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := newSyslogSink(t, SyslogOptions{Address: ln.Addr().String(), Timeout: config.Duration(time.Minute)})
	big := strings.Repeat("x", 64<<10)
	batch := make([]Record, 1000) // 64 MiB: far more than the socket buffers hold
	for i := range batch {
		batch[i] = syslogRec(big, nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Write(ctx, batch)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write: %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("write returned after %v", d)
	}
	if s.conn != nil {
		t.Fatal("a connection with a half-written frame was kept")
	}
}

func TestSyslogUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s := newSyslogSink(t, SyslogOptions{Address: pc.LocalAddr().String(), Mode: "udp", MaxSize: 600})
	batch := []Record{syslogRec("short", nil), syslogRec(strings.Repeat("y", 5000), nil)}
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 65536)
	for i, want := range []func(string) bool{
		func(m string) bool { return strings.HasSuffix(m, "] short") },
		func(m string) bool { return len(m) == 600 && strings.HasSuffix(m, "yyyy") },
	} {
		_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := pc.ReadFrom(b)
		if err != nil {
			t.Fatal(err)
		}
		if m := string(b[:n]); !strings.HasPrefix(m, "<14>1 ") || !want(m) {
			t.Fatalf("datagram %d: %q (%d bytes)", i, m[:min(len(m), 80)], len(m))
		}
	}
}

// FuzzSyslogFormat: the formatters never panic, and their output survives framing and keeps
// the RFC 5424 header shape.
func FuzzSyslogFormat(f *testing.F) {
	f.Add("web-1", "nginx", "docker", "stdout", "hello", "info")
	f.Add("", "", "", "", "", "")
	f.Add("h ost", "/var/log/x y.log", "fi\"le", "a]b\\c", "ünï\n\x00\xff", "ERROR")
	f.Fuzz(func(t *testing.T, host, source, kind, stream, msg, level string) {
		r := Record{Entry: event.Entry{Time: syslogT0, Host: host, Source: source, Kind: kind, Stream: stream,
			Message: msg, Fields: map[string]any{"level": level}}}
		m := appendRFC5424(nil, &r, 23)
		got, err := readOctetCounted(bufio.NewReader(strings.NewReader(string(appendOctetCounted(nil, m)))))
		if err != nil || got != string(m) {
			t.Fatalf("framing round trip: %v", err)
		}
		// <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID: six space-separated printable tokens.
		parts := strings.SplitN(string(m), " ", 7)
		if len(parts) < 7 {
			t.Fatalf("header %q", m)
		}
		for i, p := range parts[:6] {
			if p == "" {
				t.Fatalf("header token %d empty in %q", i, m)
			}
			for _, c := range []byte(p) {
				if c < 33 || c > 126 {
					t.Fatalf("header token %d not printable in %q", i, m)
				}
			}
		}
		if len(parts[2]) > 255 || len(parts[3]) > 48 {
			t.Fatalf("hostname or app-name too long in %q", m)
		}
		if sd := parts[6]; !strings.HasPrefix(sd, "-") {
			params, _, err := parseLogcapSD(sd)
			if err != nil {
				t.Fatalf("structured data %q: %v", sd, err)
			}
			if params["kind"] != strings.ToValidUTF8(kind, "\uFFFD") || params["stream"] != strings.ToValidUTF8(stream, "\uFFFD") {
				t.Fatalf("structured data %q parsed as %v", sd, params)
			}
		} else if kind != "" || stream != "" {
			t.Fatalf("no structured data in %q", m)
		}
		_ = appendRFC3164(nil, &r, 0, syslogT0)
	})
}

// parseLogcapSD parses the logcap SD-ELEMENT at the start of s, undoing the escapes.
func parseLogcapSD(s string) (map[string]string, string, error) {
	const id = "[logcap@32473"
	if !strings.HasPrefix(s, id) {
		return nil, "", fmt.Errorf("no %s", id)
	}
	s = s[len(id):]
	params := map[string]string{}
	for {
		if s == "" {
			return nil, "", errors.New("unterminated element")
		}
		if s[0] == ']' {
			return params, s[1:], nil
		}
		if s[0] != ' ' {
			return nil, "", fmt.Errorf("want space before a param at %q", s)
		}
		name, rest, ok := strings.Cut(s[1:], `="`)
		if !ok {
			return nil, "", fmt.Errorf("want name=\" at %q", s)
		}
		var v strings.Builder
		i := 0
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
			} else if rest[i] == ']' {
				return nil, "", fmt.Errorf("unescaped ] in %q", rest)
			}
			v.WriteByte(rest[i])
		}
		if i == len(rest) {
			return nil, "", errors.New("unterminated value")
		}
		params[name] = v.String()
		s = rest[i+1:]
	}
}
