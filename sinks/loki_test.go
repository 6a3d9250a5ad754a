package sinks

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// fakeLoki implements Loki's push API. It checks the request's shape and validates the
// whole push before storing any of it. Per stream it then behaves as Loki's ingester:
//   - ordered writes (window 0, Loki before 2.4 or unordered_writes: false): an entry older
//     than the stream's newest is refused with "entry out of order"; an exact duplicate of
//     the newest entry is dropped silently;
//   - unordered writes (window > 0, Loki's default since 2.4): an entry older than the
//     newest minus the window is refused with "entry too far behind"; an exact duplicate
//     (same timestamp and line) of any stored entry is dropped silently.
//
// Refused entries do not stop the others of the same push: they are stored, and the answer
// is a 400 listing the refused ones.
type fakeLoki struct {
	window   time.Duration
	mu       sync.Mutex
	streams  map[string]*fakeLokiStream
	fail     []fakeFailure // answers for the next requests, first one first
	requests int
	tenants  []string
}

type fakeFailure struct {
	status     int
	retryAfter string
}

type fakeLokiStream struct {
	labels  map[string]string
	entries []fakeLokiEntry
}

type fakeLokiEntry struct {
	ns   int64
	line string
	meta map[string]string // structured metadata
}

var fakeLokiLabelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func newFakeLoki() *fakeLoki { return &fakeLoki{streams: map[string]*fakeLokiStream{}} }

func (f *fakeLoki) failNext(status int, retryAfter string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.fail = append(f.fail, fakeFailure{status, retryAfter})
	}
}

func lokiStreamKey(labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for k := range labels {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", k, labels[k])
	}
	b.WriteByte('}')
	return b.String()
}

func (f *fakeLoki) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/ready" && r.Method == http.MethodGet {
		_, _ = io.WriteString(w, "ready\n")
		return
	}
	if r.URL.Path != "/loki/api/v1/push" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	f.tenants = append(f.tenants, r.Header.Get("X-Scope-OrgID"))
	if len(f.fail) > 0 {
		ff := f.fail[0]
		f.fail = f.fail[1:]
		if ff.retryAfter != "" {
			w.Header().Set("Retry-After", ff.retryAfter)
		}
		http.Error(w, fmt.Sprintf("injected failure %d", ff.status), ff.status)
		return
	}
	push, status, err := decodeFakePush(r)
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	// Validate the whole push before storing any of it, as the distributor does.
	for _, st := range push {
		if len(st.Stream) == 0 {
			http.Error(w, "error at least one label pair is required per stream", http.StatusBadRequest)
			return
		}
		for k, v := range st.Stream {
			if !fakeLokiLabelName.MatchString(k) || v == "" || !utf8.ValidString(v) {
				http.Error(w, fmt.Sprintf("error parsing labels: invalid label %q=%q", k, v), http.StatusBadRequest)
				return
			}
		}
		for _, v := range st.Values {
			if v[0] == "" || strings.Trim(v[0], "0123456789") != "" {
				http.Error(w, fmt.Sprintf("loghttp: timestamp %q is not a string of digits", v[0]), http.StatusBadRequest)
				return
			}
			if _, err := strconv.ParseInt(v[0], 10, 64); err != nil {
				http.Error(w, "loghttp: timestamp: "+err.Error(), http.StatusBadRequest)
				return
			}
		}
	}
	var refused []string
	total := 0
	for _, st := range push {
		key := lokiStreamKey(st.Stream)
		s := f.streams[key]
		if s == nil {
			s = &fakeLokiStream{labels: st.Stream}
			f.streams[key] = s
		}
		for i, v := range st.Values {
			total++
			ns, _ := strconv.ParseInt(v[0], 10, 64)
			if n := len(s.entries); n > 0 && f.window > 0 {
				newest := s.entries[0].ns
				dup := false
				for _, e := range s.entries {
					newest = max(newest, e.ns)
					dup = dup || (e.ns == ns && e.line == v[1])
				}
				if oldest := newest - int64(f.window); ns < oldest {
					refused = append(refused, fmt.Sprintf("entry with timestamp %s ignored, reason: 'entry too far behind, oldest acceptable timestamp is: %s' for stream: %s,",
						time.Unix(0, ns).UTC(), time.Unix(0, oldest).UTC().Format(time.RFC3339), key))
					continue
				}
				if !dup {
					s.entries = append(s.entries, fakeLokiEntry{ns, v[1], st.meta[i]})
				}
				continue
			}
			if n := len(s.entries); n > 0 {
				last := s.entries[n-1]
				if ns < last.ns {
					refused = append(refused, fmt.Sprintf("entry with timestamp %s ignored, reason: 'entry out of order' for stream: %s,",
						time.Unix(0, ns).UTC(), key))
					continue
				}
				if ns == last.ns && v[1] == last.line {
					continue
				}
			}
			s.entries = append(s.entries, fakeLokiEntry{ns, v[1], st.meta[i]})
		}
	}
	if len(refused) > 0 {
		http.Error(w, strings.Join(refused, "\n")+fmt.Sprintf("\ntotal ignored: %d out of %d", len(refused), total), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeLoki) stream(labels map[string]string) []fakeLokiEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.streams[lokiStreamKey(labels)]; s != nil {
		return append([]fakeLokiEntry(nil), s.entries...)
	}
	return nil
}

func (f *fakeLoki) keys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k := range f.streams {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (f *fakeLoki) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, s := range f.streams {
		n += len(s.entries)
	}
	return n
}

// TestFakeLokiContract: the fake refuses what Loki refuses, so the tests against it mean
// something.
func TestFakeLokiContract(t *testing.T) {
	f := newFakeLoki()
	srv := httptest.NewServer(f)
	defer srv.Close()
	gz := func(s string) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = io.WriteString(zw, s)
		_ = zw.Close()
		return b.Bytes()
	}
	for _, tc := range []struct {
		name, method, path, ctype string
		gzip                      bool
		body                      string
		status                    int
		want                      string
	}{
		{"ok", "POST", "/loki/api/v1/push", "application/json", true, `{"streams":[{"stream":{"a":"1"},"values":[["10","x"],["20","y"]]}]}`, 204, ""},
		{"get", "GET", "/loki/api/v1/push", "application/json", true, `{}`, 405, ""},
		{"protobuf, not snappy", "POST", "/loki/api/v1/push", "application/x-protobuf", false, `{}`, 400, "snappy"},
		{"text", "POST", "/loki/api/v1/push", "text/plain", true, `{}`, 415, ""},
		{"not gzip", "POST", "/loki/api/v1/push", "application/json", false, `{"streams":[]}`, 400, "gzip"},
		{"unknown key", "POST", "/loki/api/v1/push", "application/json", true, `{"streams":[],"x":1}`, 400, "unknown field"},
		{"numeric ts", "POST", "/loki/api/v1/push", "application/json", true, `{"streams":[{"stream":{"a":"1"},"values":[[10,"x"]]}]}`, 400, "decode"},
		{"bad ts", "POST", "/loki/api/v1/push", "application/json", true, `{"streams":[{"stream":{"a":"1"},"values":[["1e9","x"]]}]}`, 400, "digits"},
		{"no labels", "POST", "/loki/api/v1/push", "application/json", true, `{"streams":[{"stream":{},"values":[["1","x"]]}]}`, 400, "label pair"},
		{"unsorted", "POST", "/loki/api/v1/push", "application/json", true, `{"streams":[{"stream":{"a":"2"},"values":[["20","x"],["10","y"]]}]}`, 400, "entry out of order"},
		{"older than stored", "POST", "/loki/api/v1/push", "application/json", true, `{"streams":[{"stream":{"a":"1"},"values":[["15","z"]]}]}`, 400, "total ignored: 1 out of 1"},
		{"duplicate", "POST", "/loki/api/v1/push", "application/json", true, `{"streams":[{"stream":{"a":"1"},"values":[["20","y"]]}]}`, 204, ""},
	} {
		body := []byte(tc.body)
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		if tc.gzip {
			body = gz(tc.body)
			req.Header.Set("Content-Encoding", "gzip")
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.Header.Set("Content-Type", tc.ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s: %d %q, want %d containing %q", tc.name, resp.StatusCode, b, tc.status, tc.want)
		}
	}
	if got := f.stream(map[string]string{"a": "1"}); len(got) != 2 {
		t.Errorf("stream a=1 holds %v, want the 2 accepted entries (duplicate dropped)", got)
	}
}

// TestLokiPush runs with each encoding of the push: protobuf+snappy (the default) and JSON.
func TestLokiPush(t *testing.T) {
	for _, enc := range []string{"protobuf", "json"} {
		t.Run(enc, func(t *testing.T) { testLokiPush(t, enc) })
	}
}

func testLokiPush(t *testing.T, enc string) {
	f := newFakeLoki()
	f.window = time.Hour // Loki's default: unordered writes, max_chunk_age/2
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := newTestSink(t, "loki", map[string]any{"url": srv.URL + "/", "tenant": "team-a", "encoding": enc, "id_field": "logcap_id"})

	// Two sources interleaved, out of time order within the batch, two entries sharing a
	// timestamp: the sink groups by source and sorts each stream, keeping batch order for ties.
	a := httpTestRecords(3, 1, "/var/log/a.log")
	b := httpTestRecords(2, 2, "/var/log/b.log")
	a[0].Time, a[1].Time, a[2].Time = httpTestT0.Add(3*time.Second), httpTestT0.Add(time.Second), httpTestT0.Add(time.Second)
	batch := []Record{a[0], b[0], a[1], b[1], a[2]}
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
	got := f.stream(map[string]string{"host": "web-1", "kind": "file", "source": "/var/log/a.log"})
	want := []fakeLokiEntry{
		{a[1].Time.UnixNano(), a[1].Message, map[string]string{"logcap_id": a[1].ID()}},
		{a[2].Time.UnixNano(), a[2].Message, map[string]string{"logcap_id": a[2].ID()}},
		{a[0].Time.UnixNano(), a[0].Message, map[string]string{"logcap_id": a[0].ID()}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stream a = %v\nwant %v", got, want)
	}
	if n := len(f.stream(map[string]string{"host": "web-1", "kind": "file", "source": "/var/log/b.log"})); n != 2 {
		t.Errorf("stream b has %d entries, want 2 (keys %v)", n, f.keys())
	}
	if f.tenants[0] != "team-a" {
		t.Errorf("X-Scope-OrgID = %q, want team-a", f.tenants[0])
	}

	// A redelivery of the same batch is the same request: Loki drops the duplicates.
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	if n := f.count(); n != 5 {
		t.Errorf("%d entries stored after a redelivery, want 5", n)
	}
	// Beyond the window Loki refuses entries for good.
	old := httpTestRecords(1, 3, "/var/log/a.log")
	old[0].Time = httpTestT0.Add(-2 * time.Hour)
	if err := s.Write(context.Background(), old); !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "entry too far behind") {
		t.Fatalf("entry 2h behind: err = %v, want permanent 'entry too far behind'", err)
	}
}

func TestLokiLabelsAndLineFormat(t *testing.T) {
	f := newFakeLoki()
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := newTestSink(t, "loki", map[string]any{"url": srv.URL, "line_format": "json", "labels": map[string]any{
		"job": "logcap", "host": "{{.Host}}", "level": `{{index .Fields "level"}}`, "app": "{{.Fields.app}}",
	}})
	batch := httpTestRecords(2, 1, "a")
	batch[1].Fields = nil // no level: that label is left out
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	keys := f.keys()
	want := []string{`{host="web-1", job="logcap", level="info"}`, `{host="web-1", job="logcap"}`}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Fatalf("streams %v, want %v", keys, want)
	}
	line := f.stream(map[string]string{"host": "web-1", "job": "logcap", "level": "info"})[0].line
	var e struct {
		Message string `json:"message"`
		Source  string `json:"source"`
	}
	if err := json.Unmarshal([]byte(line), &e); err != nil || e.Message != batch[0].Message || e.Source != "a" {
		t.Errorf("line_format json line %q: %v", line, err)
	}
}

func TestLokiCardinalityLimit(t *testing.T) {
	f := newFakeLoki()
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := newTestSink(t, "loki", map[string]any{"url": srv.URL, "max_label_values": 2,
		"labels": map[string]any{"source": "{{.Source}}"}})
	for i, src := range []string{"a", "b", "c", "a", "d"} {
		if err := s.Write(context.Background(), httpTestRecords(1, uint64(i), src)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{`{source="_overflow"}`, `{source="a"}`, `{source="b"}`}
	if keys := f.keys(); fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Fatalf("streams %v, want %v", keys, want)
	}
	if n := len(f.stream(map[string]string{"source": "a"})); n != 2 {
		t.Errorf("source a has %d entries, want 2: a value seen before the limit keeps its stream", n)
	}
	if n := len(f.stream(map[string]string{"source": "_overflow"})); n != 2 {
		t.Errorf("_overflow has %d entries, want 2 (c and d)", n)
	}
}

// TestLokiResponses runs the sink against the fake's failures.
func TestLokiResponses(t *testing.T) {
	f := newFakeLoki()
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := newTestSink(t, "loki", map[string]any{"url": srv.URL})
	ctx := context.Background()

	f.failNext(http.StatusTooManyRequests, "4", 1)
	var ra *RetryAfterError
	if err := s.Write(ctx, httpTestRecords(2, 5, "a")); !errors.As(err, &ra) || ra.After != 4*time.Second {
		t.Fatalf("429 Retry-After 4: err = %v, want a RetryAfterError of 4s", err)
	}
	f.failNext(http.StatusInternalServerError, "", 1)
	if err := s.Write(ctx, httpTestRecords(2, 5, "a")); !isTransient(err) || errors.As(err, &ra) {
		t.Fatalf("500: err = %v, want a plain transient error", err)
	}
	if err := s.Write(ctx, httpTestRecords(2, 5, "a")); err != nil {
		t.Fatalf("after the failures: %v", err)
	}
	// An older chunk of the same stream arrives after a newer one: Loki refuses it for good.
	err := s.Write(ctx, httpTestRecords(2, 1, "a"))
	if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "entry out of order") {
		t.Fatalf("older entries: err = %v, want permanent 'entry out of order'", err)
	}
	if n := f.count(); n != 2 {
		t.Errorf("%d entries stored, want 2", n)
	}
	// An entry without time is refused alone; the others go.
	batch := httpTestRecords(3, 9, "b")
	batch[1].Time = time.Time{}
	err = s.Write(ctx, batch)
	var p *PartialError
	if !errors.As(err, &p) || len(p.Failed) != 1 || !errors.Is(p.Failed[1], ErrPermanent) {
		t.Fatalf("zero time: err = %v, want record 1 permanent", err)
	}
	if n := f.count(); n != 4 {
		t.Errorf("%d entries stored, want 4", n)
	}
}

func TestLokiClassify(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   string
	}{
		{204, "", "nil"},
		{200, "", "nil"},
		{400, "entry with timestamp 2026-11-27 ignored, reason: 'entry out of order' for stream: {a=\"1\"},\ntotal ignored: 1 out of 3", "refused"},
		{400, "entry for stream '{a=\"1\"}' has timestamp too old: 2020-01-01", "refused"},
		{400, "entry too far behind, oldest acceptable timestamp is: 2026-11-27T09:00:00Z", "refused"},
		{400, "error at least one label pair is required per stream", "permanent"},
		{413, "", "permanent"},
		{429, "Ingestion rate limit exceeded", "transient"},
		{500, "", "transient"},
		{503, "", "transient"},
	} {
		err := lokiClassify(&response{status: tc.status, header: http.Header{}, body: []byte(tc.body)}, time.Now())
		got := "transient"
		switch {
		case err == nil:
			got = "nil"
		case errors.Is(err, ErrPermanent) && strings.Contains(err.Error(), "refused"):
			got = "refused"
		case errors.Is(err, ErrPermanent):
			got = "permanent"
		}
		if got != tc.want {
			t.Errorf("%d %q: got %s (%v), want %s", tc.status, tc.body, got, err, tc.want)
		}
	}
}

func FuzzLokiResponse(f *testing.F) {
	f.Add(204, "")
	f.Add(400, "entry with timestamp x ignored, reason: 'entry out of order'")
	f.Add(429, "rate limited")
	f.Add(503, "\xff\xfe")
	f.Fuzz(func(t *testing.T, status int, body string) {
		r := &response{status: status, header: http.Header{"Retry-After": {body}}, body: []byte(body)}
		err := lokiClassify(r, time.Now())
		ok := status >= 200 && status < 300
		if (err == nil) != ok {
			t.Fatalf("status %d: err = %v", status, err)
		}
		transient := status == 408 || status == 429 || status >= 500
		if err != nil && errors.Is(err, ErrPermanent) == transient {
			t.Fatalf("status %d: err = %v, permanent=%v", status, err, !transient)
		}
		if err != nil && (len(err.Error()) > 3*errorBodyBytes+200 || !utf8.ValidString(err.Error())) {
			t.Fatalf("status %d: error message of %d bytes or not UTF-8", status, len(err.Error()))
		}
	})
}

func FuzzLokiLabelValue(f *testing.F) {
	for _, s := range []string{"", "web-1", " a\nb\t", "\xff\xfe", strings.Repeat("é", 1500), "\u0085x\u200b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		v := sanitizeLabelValue(in)
		if !utf8.ValidString(v) || len(v) > lokiMaxLabelValueBytes || strings.TrimSpace(v) != v {
			t.Fatalf("sanitize(%q) = %q", in, v)
		}
		if strings.ContainsFunc(v, unicode.IsControl) {
			t.Fatalf("sanitize(%q) = %q keeps a control character", in, v)
		}
		if again := sanitizeLabelValue(v); again != v {
			t.Fatalf("not idempotent: %q → %q → %q", in, v, again)
		}
	})
}

// FuzzLokiLabelTemplate renders the label templates over arbitrary entries: whatever the
// entry holds, each label is either absent or a value the fake Loki accepts.
func FuzzLokiLabelTemplate(f *testing.F) {
	f.Add("web-1", "/var/log/a.log", "info")
	f.Add("", "", "")
	f.Add("h\x00", "<no value>", "\xff")
	s, err := newLokiSink("t", httpSinkOpts(f, map[string]any{"url": "http://x", "labels": map[string]any{
		"host": "{{.Host}}", "source": "{{.Source}}", "level": `{{index .Fields "level"}}`,
	}}))
	if err != nil {
		f.Fatal(err)
	}
	ls := s.(*LokiSink)
	f.Fuzz(func(t *testing.T, host, source, level string) {
		r := httpTestRecords(1, 1, source)[0]
		r.Host, r.Fields = host, map[string]any{"level": level}
		var buf bytes.Buffer
		labels, err := ls.renderLabels(&r, &buf)
		if err != nil {
			clean := func(v string) string { return sanitizeLabelValue(strings.ReplaceAll(v, "<no value>", "")) }
			if clean(host) != "" || clean(source) != "" || clean(level) != "" {
				t.Fatalf("renderLabels(%q, %q, %q): %v", host, source, level, err)
			}
			return
		}
		for k, v := range labels {
			if v == "" || !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
				t.Fatalf("label %s=%q", k, v)
			}
		}
	})
}
