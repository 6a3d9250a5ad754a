package sinks

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"go.uber.org/goleak"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

// --- helpers shared by the http, loki and elasticsearch tests ---

// httpSinkOpts builds Options the way a config file does: through YAML text.
// config.OptionsFrom is not used because it hands back strings that YAML must quote (such as
// "{{.Source}}") with their quotes still on: yaml.ValueToNode then NodeToValue does not
// round-trip them (goccy/go-yaml v1.19.2).
func httpSinkOpts(t testing.TB, m map[string]any) config.Options {
	t.Helper()
	text, err := yaml.Marshal(m)
	if err != nil {
		t.Fatalf("options: %v", err)
	}
	var o config.Options
	if err := yaml.Unmarshal(text, &o); err != nil {
		t.Fatalf("options %s: %v", text, err)
	}
	return o
}

// newTestSink builds a registered sink and closes it when the test ends.
func newTestSink(t testing.TB, typ string, m map[string]any) Sink {
	t.Helper()
	s, err := New(typ, "test", httpSinkOpts(t, m))
	if err != nil {
		t.Fatalf("New(%s, %v): %v", typ, m, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

var httpTestT0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// httpTestRecords builds n records from one source, one second apart, as a chunk of stream
// LOGS at sequence seq would give them.
func httpTestRecords(n int, seq uint64, source string) []Record {
	out := make([]Record, n)
	for i := range out {
		out[i] = Record{
			Entry: event.Entry{
				Time: httpTestT0.Add(time.Duration(int(seq)*n+i) * time.Second), Host: "web-1",
				Kind: "file", Source: source, Message: fmt.Sprintf("line %d of chunk %d", i, seq),
				Fields: map[string]any{"level": "info"},
			},
			Stream: "LOGS", Seq: seq, Index: i,
		}
	}
	return out
}

// connCounter counts a test server's open connections through its ConnState hook.
type connCounter struct{ open, total atomic.Int64 }

func (c *connCounter) hook(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		c.open.Add(1)
		c.total.Add(1)
	case http.StateClosed, http.StateHijacked:
		c.open.Add(-1)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func isTransient(err error) bool {
	var p *PartialError
	return err != nil && !errors.Is(err, ErrPermanent) && !errors.As(err, &p)
}

// --- tests ---

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{" 0 ", 0, true},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"99999999999999999999", 0, false}, // not a uint64
		{"999999999", maxRetryAfter, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"Thu, 27 Nov 2099 10:00:00 GMT", maxRetryAfter, true},
		{"soon", 0, false},
	} {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %s, %v; want %s, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "5", "Thu, 27 Nov 2099 10:00:00 GMT", "-1", "18446744073709551615"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parseRetryAfter(s, now)
		if d < 0 || d > maxRetryAfter || (!ok && d != 0) {
			t.Fatalf("parseRetryAfter(%q) = %s, %v", s, d, ok)
		}
	})
}

func TestStatusError(t *testing.T) {
	long := strings.Repeat("x", 2000)
	for _, tc := range []struct {
		status     int
		retryAfter string
		body       string
		want       string // nil, transient, retry, permanent
	}{
		{200, "", "", "nil"},
		{204, "", "", "nil"},
		{301, "", "", "permanent"},
		{400, "", "bad", "permanent"},
		{401, "", "", "permanent"},
		{404, "", "", "permanent"},
		{408, "", "", "transient"},
		{413, "", "", "permanent"},
		{429, "", "", "transient"},
		{429, "3", "", "retry"},
		{500, "", "", "transient"},
		{502, "", long, "transient"},
		{503, "10", "", "retry"},
		{503, "garbage", "", "transient"},
	} {
		r := &response{status: tc.status, header: http.Header{}, body: []byte(tc.body)}
		if tc.retryAfter != "" {
			r.header.Set("Retry-After", tc.retryAfter)
		}
		err := statusError(r, time.Now())
		var ra *RetryAfterError
		got := "transient"
		switch {
		case err == nil:
			got = "nil"
		case errors.Is(err, ErrPermanent):
			got = "permanent"
		case errors.As(err, &ra):
			got = "retry"
		}
		if got != tc.want {
			t.Errorf("status %d Retry-After %q: got %s (%v), want %s", tc.status, tc.retryAfter, got, err, tc.want)
		}
		if err != nil && len(err.Error()) > errorBodyBytes+200 {
			t.Errorf("status %d: error message %d bytes long, want the body cut to %d", tc.status, len(err.Error()), errorBodyBytes)
		}
	}
}

// TestFactoryErrors: every sink validates its options in the factory and names the key.
func TestFactoryErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		typ  string
		opts map[string]any
		want string
	}{
		{"http", map[string]any{}, "url: required"},
		{"http", map[string]any{"url": "ftp://x"}, "url:"},
		{"http", map[string]any{"url": "http://"}, "url:"},
		{"http", map[string]any{"url": "http://x", "method": "GET"}, "method:"},
		{"http", map[string]any{"url": "http://x", "encoding": "xml"}, "encoding:"},
		{"http", map[string]any{"url": "http://x", "compression": "zstd"}, "compression:"},
		{"http", map[string]any{"url": "http://x", "timeout": "soon"}, "invalid duration"},
		{"http", map[string]any{"url": "http://x", "bogus": 1}, "bogus"},
		{"http", map[string]any{"url": "http://x", "headers": map[string]any{"bad name": "v"}}, "headers.bad name"},
		{"http", map[string]any{"url": "http://x", "auth": map[string]any{"bearer": "a", "basic": map[string]any{"user": "u"}}}, "auth:"},
		{"http", map[string]any{"url": "http://x", "auth": map[string]any{"basic": map[string]any{"password": "p"}}}, "auth.basic.user: required"},
		{"http", map[string]any{"url": "http://x", "auth": map[string]any{"api_key": "k"}}, "auth.api_key"},
		{"http", map[string]any{"url": "http://x", "auth": map[string]any{"bearer": "k"}, "headers": map[string]any{"Authorization": "x"}}, "headers.Authorization"},
		{"http", map[string]any{"url": "http://x", "tls": map[string]any{"cert": "a.pem"}}, "tls.cert, tls.key"},
		{"http", map[string]any{"url": "http://x", "tls": map[string]any{"ca": filepath.Join(dir, "none.pem")}}, "tls.ca"},
		{"loki", map[string]any{}, "url: required"},
		{"loki", map[string]any{"url": "http://x", "labels": map[string]any{"bad-name": "x"}}, "labels.bad-name"},
		{"loki", map[string]any{"url": "http://x", "labels": map[string]any{"__name__": "x"}}, "labels.__name__"},
		{"loki", map[string]any{"url": "http://x", "labels": map[string]any{"host": "{{.Host"}}, "labels.host"},
		{"loki", map[string]any{"url": "http://x", "labels": map[string]any{}}, "labels:"},
		{"loki", map[string]any{"url": "http://x", "line_format": "logfmt"}, "line_format:"},
		{"loki", map[string]any{"url": "http://x", "max_label_values": -1}, "max_label_values:"},
		{"loki", map[string]any{"url": "http://x", "encoding": "msgpack"}, "encoding: want protobuf or json"},
		{"loki", map[string]any{"url": "http://x", "id_field": "_id"}, "id_field:"},
		{"loki", map[string]any{"url": "http://x", "id_field": "logcap-id"}, "id_field: \"logcap-id\": want a Loki label name"},
		{"elasticsearch", map[string]any{}, "url: required"},
		{"elasticsearch", map[string]any{"url": "http://x", "mode": "alias"}, "mode:"},
		{"elasticsearch", map[string]any{"url": "http://x", "index": "Logs"}, "index:"},
		{"elasticsearch", map[string]any{"url": "http://x", "index": "logs-{{.Date"}, "index:"},
	} {
		_, err := New(tc.typ, "t", httpSinkOpts(t, tc.opts))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: err = %v, want one containing %q", tc.typ, tc.opts, err, tc.want)
		}
	}
	// The pipeline's own keys are not the sink's business.
	newTestSink(t, "http", map[string]any{"url": "http://x", "name": "n", "type": "http", "input": "logs.>",
		"batch": map[string]any{"max_entries": 10}, "max_deliver": 5, "ack_wait": "30s"})
}

// TestCloseReleasesConnections: after Close no connection to the server stays open, and no
// goroutine of the transport is left behind.
func TestCloseReleasesConnections(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var cc connCounter
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnState = cc.hook
	srv.Start()
	defer srv.Close()
	for _, typ := range []string{"http", "loki", "elasticsearch"} {
		s, err := New(typ, "t", httpSinkOpts(t, map[string]any{"url": srv.URL}))
		if err != nil {
			t.Fatal(err)
		}
		for seq := range uint64(5) {
			err := s.Write(context.Background(), httpTestRecords(10, seq, "/var/log/a.log"))
			// The stub answers 204 with no body, which is no _bulk answer.
			if err != nil && typ != "elasticsearch" {
				t.Fatalf("%s: write: %v", typ, err)
			}
		}
		if n := cc.open.Load(); n < 1 || n > 4 {
			t.Fatalf("%s: %d connections open while in use, want 1..4 (kept alive, bounded)", typ, n)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, typ+": server sees every connection closed", 5*time.Second, func() bool { return cc.open.Load() == 0 })
		if err := s.Write(context.Background(), httpTestRecords(1, 9, "x")); err == nil {
			t.Fatalf("%s: Write after Close succeeded", typ)
		}
	}
	if n := cc.total.Load(); n != 3 {
		t.Errorf("%d connections for 3 sinks × 5 sequential writes, want 3 (one reused per sink)", n)
	}
}

// TestWriteReturnsOnCancel: a server that accepts and never answers holds Write only until
// the caller's context or the sink's timeout ends, and the error is transient.
func TestWriteReturnsOnCancel(t *testing.T) {
	// Never calling Accept: the kernel completes the handshake and takes the request bytes,
	// and nothing ever answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	u := "http://" + l.Addr().String()
	for _, tc := range []struct {
		name    string
		typ     string
		timeout string
		ctx     time.Duration
	}{
		{"ctx cancelled", "http", "", 200 * time.Millisecond},
		{"sink timeout", "http", "200ms", 0},
		{"loki ctx", "loki", "", 200 * time.Millisecond},
		{"es timeout", "elasticsearch", "200ms", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string]any{"url": u}
			if tc.timeout != "" {
				m["timeout"] = tc.timeout
			}
			s := newTestSink(t, tc.typ, m)
			ctx := context.Background()
			if tc.ctx > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctx)
				defer cancel()
			}
			start := time.Now()
			err := s.Write(ctx, httpTestRecords(3, 1, "a"))
			took := time.Since(start)
			if !isTransient(err) {
				t.Fatalf("err = %v, want a transient error", err)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want it to wrap context.DeadlineExceeded", err)
			}
			if took > 2*time.Second {
				t.Errorf("Write took %s after a 200ms deadline", took)
			}
		})
	}
}

func TestTLSAndAuth(t *testing.T) {
	var got atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Clone())
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the unknown-CA case fails its handshake on purpose
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts map[string]any
		hdr  string // expected Authorization
		ok   bool
	}{
		{"unknown CA", map[string]any{}, "", false},
		{"ca", map[string]any{"tls": map[string]any{"ca": ca}}, "", true},
		{"insecure", map[string]any{"tls": map[string]any{"insecure_skip_verify": true}}, "", true},
		{"basic", map[string]any{"tls": map[string]any{"ca": ca}, "auth": map[string]any{"basic": map[string]any{"user": "u", "password": "p"}}}, "Basic dTpw", true},
		{"bearer", map[string]any{"tls": map[string]any{"ca": ca}, "auth": map[string]any{"bearer": "tok"}}, "Bearer tok", true},
		{"header", map[string]any{"tls": map[string]any{"ca": ca}, "headers": map[string]any{"Authorization": "Custom x", "X-Team": "ops"}}, "Custom x", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got.Store(http.Header{})
			tc.opts["url"] = srv.URL
			err := newTestSink(t, "http", tc.opts).Write(context.Background(), httpTestRecords(1, 1, "a"))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			h := got.Load().(http.Header)
			if a := h.Get("Authorization"); a != tc.hdr {
				t.Errorf("Authorization = %q, want %q", a, tc.hdr)
			}
			if tc.name == "header" && h.Get("X-Team") != "ops" {
				t.Errorf("X-Team = %q, want ops", h.Get("X-Team"))
			}
		})
	}
}

// A url with a query string (VictoriaLogs documents ?_msg_field=message) keeps it: the
// sink's path goes into the path, the query after it; an error names the URL requested, its
// secrets masked.
func TestSinkURLWithQuery(t *testing.T) {
	type seen struct{ path, query string }
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r.URL.Path, r.URL.RawQuery})
		mu.Unlock()
		http.Error(w, "no", http.StatusBadRequest)
	}))
	defer srv.Close()
	const q = "_msg_field=message&api_key=hunter2"
	for _, tc := range []struct{ typ, base, write, check string }{
		{"elasticsearch", "/insert/elasticsearch/", "/insert/elasticsearch/_bulk", "/insert/elasticsearch/"},
		{"loki", "/insert", "/insert/loki/api/v1/push", "/insert/ready"},
		{"http", "/insert/jsonline", "/insert/jsonline", "/insert/jsonline"},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			s := newTestSink(t, tc.typ, map[string]any{"url": srv.URL + tc.base + "?" + q})
			err := s.Write(context.Background(), httpTestRecords(1, 1, "a.log"))
			if err == nil {
				t.Fatal("Write: want the 400")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.write+"?") || !strings.Contains(msg, "_msg_field=message") {
				t.Errorf("error %q does not name the URL requested (%s?…)", msg, tc.write)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error %q shows the api_key", msg)
			}
			_ = s.Check(context.Background())
			mu.Lock()
			defer mu.Unlock()
			want := []seen{{tc.write, q}, {tc.check, q}}
			if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
				t.Errorf("requests = %+v, want %+v", got, want)
			}
		})
	}
}
