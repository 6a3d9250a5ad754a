package sinks

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/otlp"
)

func TestOTLPOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts map[string]any
		url  string
		err  string
	}{
		{name: "base url", opts: map[string]any{"url": "http://c:4318"}, url: "http://c:4318/v1/logs"},
		{name: "base path", opts: map[string]any{"url": "https://c/otlp/"}, url: "https://c/otlp/v1/logs"},
		{name: "logs url", opts: map[string]any{"url": "http://c:4318/v1/logs"}, url: "http://c:4318/v1/logs"},
		{name: "no url", opts: map[string]any{}, err: "url: required"},
		{name: "bad encoding", opts: map[string]any{"url": "http://c", "encoding": "xml"}, err: "encoding"},
		{name: "empty resource key", opts: map[string]any{"url": "http://c", "resource_attributes": map[string]any{"": "x"}}, err: "resource_attributes"},
		{name: "unknown key", opts: map[string]any{"url": "http://c", "bogus": 1}, err: "bogus"},
		{name: "two auths", opts: map[string]any{"url": "http://c", "auth": map[string]any{"bearer": "a", "basic": map[string]any{"user": "u"}}}, err: "auth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New("otlp", "test", httpSinkOpts(t, tc.opts))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.(*OTLPSink).url; got != tc.url {
				t.Fatalf("url %s, want %s", got, tc.url)
			}
		})
	}
}

// The mapping per the OpenTelemetry logs data model and semantic conventions.
func TestOTLPMapping(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 5, time.UTC)
	read := t0.Add(time.Second)
	hdr := map[string][]string{HdrReadTime: {read.Format(time.RFC3339Nano)}, HdrContainer: {"c0ffee"}, HdrImage: {"nginx:1"}}
	for _, tc := range []struct {
		name     string
		rec      Record
		resource map[string]any
		check    func(r otlp.Record) bool
	}{
		{name: "file", rec: Record{Entry: event.Entry{Time: t0, Host: "web-1", Kind: "file", Source: "/var/log/app.log", Message: "hi"}, Header: hdr},
			resource: map[string]any{"host.name": "web-1", "log.file.path": "/var/log/app.log", "log.file.name": "app.log", "deployment.environment.name": "prod"},
			check: func(r otlp.Record) bool {
				return r.Body == "hi" && r.Time == uint64(t0.UnixNano()) && r.Observed == uint64(read.UnixNano()) && r.SeverityNumber == 0 && len(r.Attrs) == 0
			}},
		{name: "kubernetes pod log", rec: Record{Entry: event.Entry{Host: "n1", Kind: "file", Source: "/var/log/pods/shop_web-7d9_1234-ab/nginx/0.log"}},
			resource: map[string]any{"host.name": "n1", "log.file.path": "/var/log/pods/shop_web-7d9_1234-ab/nginx/0.log", "log.file.name": "0.log",
				"k8s.namespace.name": "shop", "k8s.pod.name": "web-7d9", "k8s.pod.uid": "1234-ab", "k8s.container.name": "nginx", "deployment.environment.name": "prod"}},
		{name: "kubernetes container symlink", rec: Record{Entry: event.Entry{Host: "n1", Kind: "file", Source: "/var/log/containers/web-7d9_shop_nginx-abc123.log"}},
			resource: map[string]any{"host.name": "n1", "log.file.path": "/var/log/containers/web-7d9_shop_nginx-abc123.log", "log.file.name": "web-7d9_shop_nginx-abc123.log",
				"k8s.namespace.name": "shop", "k8s.pod.name": "web-7d9", "k8s.container.name": "nginx", "container.id": "abc123", "deployment.environment.name": "prod"}},
		{name: "kubernetes source", rec: Record{Entry: event.Entry{Host: "n1", Kind: "kubernetes", Source: "shop/web-7d9/nginx/2/1234-ab", Stream: "stdout", Message: "GET /",
			Fields: map[string]any{"kubernetes": map[string]any{"namespace": "shop", "pod": "web-7d9", "pod_uid": "1234-ab", "container": "nginx", "restart": "2"}, "status": int64(200)}}},
			resource: map[string]any{"host.name": "n1", "k8s.namespace.name": "shop", "k8s.pod.name": "web-7d9", "k8s.pod.uid": "1234-ab",
				"k8s.container.name": "nginx", "k8s.container.restart_count": int64(2), "deployment.environment.name": "prod"},
			check: func(r otlp.Record) bool {
				return reflect.DeepEqual(r.Attrs, []otlp.KV{{Key: "status", Value: int64(200)}, {Key: "log.iostream", Value: "stdout"}})
			}},
		{name: "docker", rec: Record{Entry: event.Entry{Time: t0, Host: "web-1", Kind: "docker", Source: "nginx", Stream: "stderr", Message: "oops",
			Fields: map[string]any{"level": "ERROR", "status": int64(500), "trace_id": "not an id"}}, Header: hdr},
			resource: map[string]any{"host.name": "web-1", "container.name": "nginx", "container.id": "c0ffee", "container.image.name": "nginx:1", "deployment.environment.name": "prod"},
			check: func(r otlp.Record) bool {
				want := []otlp.KV{{Key: "level", Value: "ERROR"}, {Key: "status", Value: int64(500)}, {Key: "trace_id", Value: "not an id"}, {Key: "log.iostream", Value: "stderr"}}
				return r.SeverityNumber == otlp.SeverityError && r.SeverityText == "ERROR" && reflect.DeepEqual(r.Attrs, want) && r.TraceID == nil
			}},
		{name: "from the otlp source", rec: Record{Entry: event.Entry{Time: t0, Host: "web-9", Kind: "otlp", Source: "shop", Message: "m", Fields: map[string]any{
			"resource": map[string]any{"service.name": "shop", "host.name": "web-9"}, "scope": map[string]any{"name": "lib", "version": "2"},
			"trace_id": strings.Repeat("ab", 16), "span_id": strings.Repeat("cd", 8), "severity_number": int64(14), "severity_text": "WARN2",
			"event_name": "e", "flags": int64(1), "user": "u1"}}},
			resource: map[string]any{"service.name": "shop", "host.name": "web-9", "deployment.environment.name": "prod"},
			check: func(r otlp.Record) bool {
				return r.SeverityNumber == 14 && r.SeverityText == "WARN2" && len(r.TraceID) == 16 && len(r.SpanID) == 8 && r.EventName == "e" &&
					r.Flags == 1 && reflect.DeepEqual(r.Attrs, []otlp.KV{{Key: "user", Value: "u1"}}) && r.Observed == uint64(t0.UnixNano())
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSink(t, "otlp", map[string]any{"url": "http://c", "resource_attributes": map[string]any{"deployment.environment.name": "prod"}}).(*OTLPSink)
			l := s.build([]Record{tc.rec})
			if len(l.Resources) != 1 || len(l.Resources[0].Scopes) != 1 || len(l.Resources[0].Scopes[0].Records) != 1 {
				t.Fatalf("logs %+v", l)
			}
			if got := otlp.ToMap(l.Resources[0].Attrs); !reflect.DeepEqual(got, tc.resource) {
				t.Fatalf("resource %v, want %v", got, tc.resource)
			}
			if r := l.Resources[0].Scopes[0].Records[0]; tc.check != nil && !tc.check(r) {
				t.Fatalf("record %+v", r)
			}
		})
	}
}

func TestSeverityNumber(t *testing.T) {
	for in, want := range map[string]int32{"TRACE": 1, "debug": 5, "Info": 9, "notice": 10, "warning": 13, "err": 17, "CRITICAL": 20, "fatal": 21, "panic": 21, "verbose?": 0, "": 0} {
		if got := SeverityNumber(in); got != want {
			t.Errorf("SeverityNumber(%q) = %d, want %d", in, got, want)
		}
	}
}

// A batch of several sources is one request with one resource per source, in order.
func TestOTLPGroupsByResource(t *testing.T) {
	s := newTestSink(t, "otlp", map[string]any{"url": "http://c"}).(*OTLPSink)
	var batch []Record
	for i := range 6 {
		batch = append(batch, Record{Entry: event.Entry{Host: "h", Kind: "file", Source: []string{"/a", "/b"}[i%2], Message: string(rune('0' + i))}})
	}
	l := s.build(batch)
	if len(l.Resources) != 2 || l.Count() != 6 {
		t.Fatalf("%d resources, %d records", len(l.Resources), l.Count())
	}
	for i, r := range l.Resources {
		for j, rec := range r.Scopes[0].Records {
			if rec.Body != string(rune('0'+i+2*j)) {
				t.Fatalf("resource %d record %d: %v", i, j, rec.Body)
			}
		}
	}
}

// otlpReceiver answers like an OTLP/HTTP receiver, with the answers a real Collector does
// not give on demand: partial success, 400, 503 with Retry-After.
type otlpReceiver struct {
	mu       sync.Mutex
	got      []*otlp.Logs
	ctype    string
	status   int
	partial  otlp.PartialSuccess
	retryAft string
}

func (h *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err == nil {
			body, _ = io.ReadAll(zr)
		}
	}
	var l *otlp.Logs
	var err error
	if r.Header.Get("Content-Type") == "application/json" {
		l, err = otlp.DecodeJSON(body)
	} else {
		l, err = otlp.DecodeProto(body)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ctype = r.Header.Get("Content-Type")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.got = append(h.got, l)
	if h.retryAft != "" {
		w.Header().Set("Retry-After", h.retryAft)
	}
	if h.status != 0 {
		w.WriteHeader(h.status)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(otlp.AppendResponse(nil, h.partial))
}

func TestOTLPWrite(t *testing.T) {
	batch := httpTestRecords(3, 1, "/var/log/app.log")
	for _, tc := range []struct {
		name, encoding string
		recv           *otlpReceiver
		check          func(t *testing.T, err error)
	}{
		{name: "protobuf", check: func(t *testing.T, err error) {
			if err != nil {
				t.Fatal(err)
			}
		}},
		{name: "json", encoding: "json", check: func(t *testing.T, err error) {
			if err != nil {
				t.Fatal(err)
			}
		}},
		{name: "partial success", recv: &otlpReceiver{partial: otlp.PartialSuccess{Rejected: 2, Message: "too old"}}, check: func(t *testing.T, err error) {
			var pe *PartialError
			if !errors.As(err, &pe) || len(pe.Failed) != 3 || !errors.Is(pe.Failed[0], ErrPermanent) || !strings.Contains(pe.Failed[0].Error(), "rejected 2 of the request's 3 records") ||
				!strings.Contains(pe.Failed[0].Error(), "too old") {
				t.Fatalf("error %v: want every record failed permanently with the reason", err)
			}
		}},
		{name: "partial success warning only", recv: &otlpReceiver{partial: otlp.PartialSuccess{Message: "deprecated field"}}, check: func(t *testing.T, err error) {
			if err != nil {
				t.Fatal(err)
			}
		}},
		{name: "400", recv: &otlpReceiver{status: 400}, check: func(t *testing.T, err error) {
			if !errors.Is(err, ErrPermanent) {
				t.Fatalf("error %v: want permanent", err)
			}
		}},
		{name: "503 Retry-After", recv: &otlpReceiver{status: 503, retryAft: "7"}, check: func(t *testing.T, err error) {
			var ra *RetryAfterError
			if !errors.As(err, &ra) || ra.After != 7*time.Second || errors.Is(err, ErrPermanent) {
				t.Fatalf("error %v: want a transient error asking for 7s", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.recv == nil {
				tc.recv = &otlpReceiver{}
			}
			srv := httptest.NewServer(tc.recv)
			defer srv.Close()
			opts := map[string]any{"url": srv.URL}
			if tc.encoding != "" {
				opts["encoding"] = tc.encoding
			}
			s := newTestSink(t, "otlp", opts)
			tc.check(t, s.Write(t.Context(), batch))
			tc.recv.mu.Lock()
			n, count := len(tc.recv.got), 0
			if n > 0 {
				count = tc.recv.got[0].Count()
			}
			tc.recv.mu.Unlock()
			if n != 1 || count != 3 {
				t.Fatalf("receiver got %d requests (%d records), want 1 of 3", n, count)
			}
			if err := s.Check(t.Context()); (err != nil) != (tc.recv.status == 503) {
				t.Fatalf("Check: %v", err)
			}
		})
	}
}
