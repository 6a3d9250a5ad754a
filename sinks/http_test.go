package sinks

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// httpTestDoc is what a receiver decodes from the http sink.
type httpTestDoc struct {
	Time    string         `json:"time"`
	Host    string         `json:"host"`
	Kind    string         `json:"kind"`
	Source  string         `json:"source"`
	Message string         `json:"message"`
	Fields  map[string]any `json:"fields"`
	ID      string         `json:"_id"`
}

type httpTestRequest struct {
	method, contentType, encoding string
	docs                          []httpTestDoc
	err                           error // what the receiver found wrong
}

// httpReceiver decodes whatever the sink sends strictly and records it.
type httpReceiver struct {
	mu   sync.Mutex
	reqs []httpTestRequest
}

func (h *httpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req := httpTestRequest{method: r.Method, contentType: r.Header.Get("Content-Type"), encoding: r.Header.Get("Content-Encoding")}
	req.docs, req.err = decodeHTTPBody(r)
	h.mu.Lock()
	h.reqs = append(h.reqs, req)
	h.mu.Unlock()
	if req.err != nil {
		http.Error(w, req.err.Error(), http.StatusBadRequest)
	}
}

func decodeHTTPBody(r *http.Request) ([]httpTestDoc, error) {
	var body io.Reader = r.Body
	switch r.Header.Get("Content-Encoding") {
	case "gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		body = zr
	case "":
	default:
		return nil, errors.New("unknown Content-Encoding")
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	var docs []httpTestDoc
	switch r.Header.Get("Content-Type") {
	case "application/json":
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&docs); err != nil {
			return nil, err
		}
	case "application/x-ndjson":
		if len(b) > 0 && b[len(b)-1] != '\n' {
			return nil, errors.New("ndjson body does not end in a newline")
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var d httpTestDoc
			dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&d); err != nil {
				return nil, err
			}
			docs = append(docs, d)
		}
	default:
		return nil, errors.New("unexpected Content-Type")
	}
	return docs, nil
}

func TestHTTPSinkRequest(t *testing.T) {
	recv := &httpReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	for _, tc := range []struct {
		name                    string
		opts                    map[string]any
		method, ctype, encoding string
	}{
		{"defaults", map[string]any{}, "POST", "application/x-ndjson", "gzip"},
		{"json array", map[string]any{"encoding": "json_array"}, "POST", "application/json", "gzip"},
		{"put uncompressed", map[string]any{"method": "PUT", "compression": "none"}, "PUT", "application/x-ndjson", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recv.mu.Lock()
			recv.reqs = nil
			recv.mu.Unlock()
			tc.opts["url"] = srv.URL + "/ingest"
			batch := httpTestRecords(3, 42, "/var/log/app.log")
			if err := newTestSink(t, "http", tc.opts).Write(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			recv.mu.Lock()
			defer recv.mu.Unlock()
			if len(recv.reqs) != 1 {
				t.Fatalf("%d requests, want 1 per batch", len(recv.reqs))
			}
			req := recv.reqs[0]
			if req.err != nil || req.method != tc.method || req.contentType != tc.ctype || req.encoding != tc.encoding {
				t.Fatalf("request %+v, want %s %s encoding %q", req, tc.method, tc.ctype, tc.encoding)
			}
			if len(req.docs) != len(batch) {
				t.Fatalf("%d docs, want %d", len(req.docs), len(batch))
			}
			for i, d := range req.docs {
				if d.ID != batch[i].ID() || d.Message != batch[i].Message || d.Fields["level"] != "info" || d.Time != batch[i].Time.Format("2006-01-02T15:04:05Z07:00") {
					t.Errorf("doc %d = %+v, want the entry of %s", i, d, batch[i].ID())
				}
			}
		})
	}
}

func TestHTTPSinkClassification(t *testing.T) {
	var mu sync.Mutex
	status, retryAfter, body := 200, "", ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		defer mu.Unlock()
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		if status == http.StatusFound {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	defer srv.Close()
	s := newTestSink(t, "http", map[string]any{"url": srv.URL})
	long := "E" + strings.Repeat("x", 1000)
	for _, tc := range []struct {
		status     int
		retryAfter string
		body       string
		want       string
		msg        string
	}{
		{200, "", "", "nil", ""},
		{202, "", "", "nil", ""},
		{302, "", "", "permanent", "/elsewhere"},
		{400, "", `{"error":"bad field"}`, "permanent", `400: {"error":"bad field"}`},
		{403, "", long, "permanent", long[:512]},
		{429, "2", "", "retry", "retry after 2s"},
		{429, "", "", "transient", "429"},
		{500, "", "boom", "transient", "boom"},
		{503, "30", "", "retry", "retry after 30s"},
	} {
		mu.Lock()
		status, retryAfter, body = tc.status, tc.retryAfter, tc.body
		mu.Unlock()
		err := s.Write(context.Background(), httpTestRecords(2, 1, "a"))
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
		if got != tc.want || (err != nil && !strings.Contains(err.Error(), tc.msg)) {
			t.Errorf("status %d: err = %v (%s), want %s containing %q", tc.status, err, got, tc.want, tc.msg)
		}
		if tc.status == 403 && strings.Contains(err.Error(), long[:513]) {
			t.Errorf("status 403: message carries more than 512 bytes of the body")
		}
	}
}

// TestHTTPSinkUnencodable: a record JSON cannot carry is dead-lettered alone; the rest of the
// batch is delivered.
func TestHTTPSinkUnencodable(t *testing.T) {
	recv := &httpReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	batch := httpTestRecords(3, 1, "a")
	batch[1].Fields = map[string]any{"ratio": math.NaN()}
	err := newTestSink(t, "http", map[string]any{"url": srv.URL}).Write(context.Background(), batch)
	var p *PartialError
	if !errors.As(err, &p) || len(p.Failed) != 1 || !errors.Is(p.Failed[1], ErrPermanent) {
		t.Fatalf("err = %v, want a PartialError with record 1 permanent", err)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.reqs) != 1 || len(recv.reqs[0].docs) != 2 {
		t.Fatalf("requests %+v, want one with the 2 good records", recv.reqs)
	}
}

func BenchmarkHTTPSinkWrite(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		_, _ = io.Copy(io.Discard, body)
	}))
	defer srv.Close()
	batch := httpTestRecords(1000, 7, "/var/log/app/service.log")
	for i := range batch {
		// 200 B entries, as a typical access log line.
		batch[i].Message = (batch[i].Message + " " + strings.Repeat("GET /api/v1/items?id=12345 200 ", 7))[:200]
		batch[i].Fields = nil
	}
	for _, compression := range []string{"gzip", "none"} {
		b.Run(compression, func(b *testing.B) {
			s := newTestSink(b, "http", map[string]any{"url": srv.URL, "compression": compression})
			b.SetBytes(int64(len(batch) * 200))
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Write(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A failed request names its destination with the URL's secrets masked: the error is logged
// on every failed write (it printed ?api_key= and the user info's password in clear).
func TestHTTPSinkErrorMasksURLSecrets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: the request fails with the URL in its error
	s := newTestSink(t, "http", map[string]any{"url": "http://bob:urlpw1@" + addr + "/in?api_key=qk1&org=acme"})
	err = s.Write(context.Background(), httpTestRecords(1, 1, "a"))
	if err == nil {
		t.Fatal("write to a closed port succeeded")
	}
	for _, secret := range []string{"urlpw1", "qk1"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows %q: %v", secret, err)
		}
	}
	if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "org=acme") {
		t.Errorf("error does not name the destination: %v", err)
	}
}

// id_field renames the document's idempotency key (default _id, as before).
func TestHTTPSinkIDField(t *testing.T) {
	var mu sync.Mutex
	var docs []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		sc := bufio.NewScanner(zr)
		mu.Lock()
		defer mu.Unlock()
		for sc.Scan() {
			var d map[string]any
			if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			docs = append(docs, d)
		}
	}))
	defer srv.Close()
	for _, tc := range []struct{ field, want string }{{"", "_id"}, {"logcap_id", "logcap_id"}} {
		mu.Lock()
		docs = nil
		mu.Unlock()
		opts := map[string]any{"url": srv.URL}
		if tc.field != "" {
			opts["id_field"] = tc.field
		}
		s := newTestSink(t, "http", opts)
		batch := httpTestRecords(2, 3, "a.log")
		if err := s.Write(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		if len(docs) != 2 {
			t.Fatalf("id_field %q: %d documents, want 2", tc.field, len(docs))
		}
		for i, d := range docs {
			if d[tc.want] != batch[i].ID() || (tc.want != "_id" && d["_id"] != nil) {
				t.Errorf("id_field %q: document %v, want the key under %s only", tc.field, d, tc.want)
			}
		}
		mu.Unlock()
	}
}
