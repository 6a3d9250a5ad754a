package sinks

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestStdout(t *testing.T) {
	recs := []Record{
		{Entry: event.Entry{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Host: "h", Kind: "file", Source: "/a.log",
			Message: "parsed <msg> & more"}, Raw: []byte("original \xff bytes"), Stream: "LOGS", Seq: 1},
		{Entry: event.Entry{Host: "h", Kind: "docker", Source: "c", Stream: "stderr", Message: "two\nlines",
			Fields: map[string]any{"n": 1}}, Stream: "PARSED", Seq: 2},
	}
	tests := []struct {
		format string
		want   string
	}{
		{"", "original \xff bytes\ntwo\nlines\n"},
		{"raw", "original \xff bytes\ntwo\nlines\n"},
		{"json", `{"time":"2026-01-02T03:04:05Z","host":"h","kind":"file","source":"/a.log","message":"parsed <msg> & more"}` + "\n" +
			`{"time":"0001-01-01T00:00:00Z","host":"h","kind":"docker","source":"c","stream":"stderr","message":"two\nlines","fields":{"n":1}}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			var out bytes.Buffer
			s, err := NewStdout(StdoutOptions{Format: tt.format}, &out)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Write(context.Background(), recs); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Fatalf("got\n%q\nwant\n%q", out.String(), tt.want)
			}
		})
	}
}

func TestStdoutErrors(t *testing.T) {
	s, err := NewStdout(StdoutOptions{}, failingWriter{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Write(context.Background(), []Record{{Entry: event.Entry{Message: "x"}}})
	if err == nil || errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "broken pipe") {
		t.Fatalf("write to a broken writer: %v, want a transient error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Write(ctx, []Record{{}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("write with a cancelled context: %v", err)
	}
	for _, tt := range []struct {
		opts    map[string]any
		wantErr string
	}{
		{map[string]any{"format": "json", "name": "out", "type": "stdout", "input": "parsed.>"}, ""},
		{map[string]any{"format": "yaml"}, "format:"},
		{map[string]any{"path": "/x"}, "path"},
	} {
		opts, _ := config.OptionsFrom(tt.opts)
		_, err := New("stdout", "out", opts)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("options %v: error %v, want %q", tt.opts, err, tt.wantErr)
		}
	}
}

// Only the json format of the line sinks writes fields: raw ones say they read none, so the
// pipeline decodes derived entries without them.
func TestLineSinksReadFields(t *testing.T) {
	for _, tc := range []struct {
		format string
		want   bool
	}{{"", false}, {"raw", false}, {"json", true}} {
		so, err := NewStdout(StdoutOptions{Format: tc.format}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if got := so.ReadsFields(); got != tc.want {
			t.Errorf("stdout format %q: ReadsFields %v, want %v", tc.format, got, tc.want)
		}
		if tc.format == "" {
			continue // the file sink's default is json
		}
		fs, err := NewFile(FileOptions{Path: filepath.Join(t.TempDir(), "out.log"), Format: tc.format})
		if err != nil {
			t.Fatal(err)
		}
		if got := fs.ReadsFields(); got != tc.want {
			t.Errorf("file format %q: ReadsFields %v, want %v", tc.format, got, tc.want)
		}
		_ = fs.Close()
	}
}
