package sinks

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeES implements Elasticsearch's _bulk API: action/document line pairs, per-item results
// in the real response shape, "index" overwriting and "create" refusing an existing _id with
// 409 version_conflict_engine_exception.
type fakeES struct {
	mu       sync.Mutex
	docs     map[string]map[string]json.RawMessage // _index → _id → document
	stores   map[string]int                        // _index/_id → times written
	failItem map[string]fakeESItemFailure          // _id → failure for its next n attempts
	failReq  []fakeFailure                         // whole-request answers, first one first
	dropNext int                                   // store, then lose the answer
	requests int
}

type fakeESItemFailure struct {
	status       int
	typ, reason  string
	remainingAtt int
}

func newFakeES() *fakeES {
	return &fakeES{docs: map[string]map[string]json.RawMessage{}, stores: map[string]int{}, failItem: map[string]fakeESItemFailure{}}
}

func (f *fakeES) failID(id string, status int, typ string, times int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failItem[id] = fakeESItemFailure{status, typ, "injected " + typ, times}
}

func esErrorBody(status int, typ, reason string) []byte {
	b, _ := json.Marshal(map[string]any{
		"error":  map[string]any{"root_cause": []any{map[string]any{"type": typ, "reason": reason}}, "type": typ, "reason": reason},
		"status": status,
	})
	return b
}

func (f *fakeES) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/" && r.Method == http.MethodGet {
		_, _ = io.WriteString(w, `{"name":"fake","cluster_name":"test","version":{"number":"8.15.0"},"tagline":"You Know, for Search"}`)
		return
	}
	if r.URL.Path != "/_bulk" {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write(esErrorBody(404, "index_not_found_exception", "no such index"))
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if len(f.failReq) > 0 {
		ff := f.failReq[0]
		f.failReq = f.failReq[1:]
		if ff.retryAfter != "" {
			w.Header().Set("Retry-After", ff.retryAfter)
		}
		w.WriteHeader(ff.status)
		_, _ = w.Write(esErrorBody(ff.status, "es_rejected_execution_exception", "injected"))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-ndjson" && ct != "application/json" {
		w.WriteHeader(http.StatusNotAcceptable)
		_, _ = w.Write(esErrorBody(406, "illegal_argument_exception", "Content-Type header ["+ct+"] is not supported"))
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write(esErrorBody(400, "parse_exception", err.Error()))
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if len(raw) == 0 || raw[len(raw)-1] != '\n' {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write(esErrorBody(400, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]"))
		return
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	type item map[string]any
	var items []map[string]item
	errorsSeen := false
	for k := 0; k < len(lines); k += 2 {
		var action map[string]struct {
			Index *string `json:"_index"`
			ID    *string `json:"_id"`
		}
		if err := json.Unmarshal(lines[k], &action); err != nil || len(action) != 1 {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write(esErrorBody(400, "illegal_argument_exception", fmt.Sprintf("Malformed action/metadata line [%d]", k+1)))
			return
		}
		var op string
		for op = range action {
		}
		if op != "index" && op != "create" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write(esErrorBody(400, "illegal_argument_exception", fmt.Sprintf("Malformed action/metadata line [%d], expected one of [create, delete, index, update] but found [%s]", k+1, op)))
			return
		}
		meta := action[op]
		if meta.Index == nil || meta.ID == nil || k+1 >= len(lines) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write(esErrorBody(400, "action_request_validation_exception", "Validation Failed: 1: index is missing;"))
			return
		}
		idx, id := *meta.Index, *meta.ID
		res := item{"_index": idx, "_id": id}
		setErr := func(status int, typ, reason string) {
			res["status"] = status
			res["error"] = map[string]any{"type": typ, "reason": reason, "index": idx}
			errorsSeen = true
		}
		var doc map[string]any
		if fail, ok := f.failItem[id]; ok && fail.remainingAtt > 0 {
			fail.remainingAtt--
			f.failItem[id] = fail
			setErr(fail.status, fail.typ, fail.reason)
		} else if err := json.Unmarshal(lines[k+1], &doc); err != nil {
			setErr(400, "document_parsing_exception", "[1:1] failed to parse: "+err.Error())
		} else if _, exists := f.docs[idx][id]; exists && op == "create" {
			setErr(409, "version_conflict_engine_exception", fmt.Sprintf("[%s]: version conflict, document already exists (current version [1])", id))
		} else {
			if f.docs[idx] == nil {
				f.docs[idx] = map[string]json.RawMessage{}
			}
			_, exists := f.docs[idx][id]
			f.docs[idx][id] = lines[k+1]
			f.stores[idx+"/"+id]++
			res["_version"], res["result"], res["status"] = f.stores[idx+"/"+id], "created", 201
			if exists {
				res["result"], res["status"] = "updated", 200
			}
		}
		items = append(items, map[string]item{op: res})
	}
	if f.dropNext > 0 {
		// The documents are stored; the answer never reaches the client.
		f.dropNext--
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return
			}
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"took": 3, "errors": errorsSeen, "items": items})
}

func (f *fakeES) doc(index, id string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	var m map[string]any
	if raw, ok := f.docs[index][id]; ok {
		_ = json.Unmarshal(raw, &m)
	}
	return m
}

func (f *fakeES) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, d := range f.docs {
		n += len(d)
	}
	return n
}

func TestESBulkRequest(t *testing.T) {
	f := newFakeES()
	srv := httptest.NewServer(f)
	defer srv.Close()
	for _, tc := range []struct {
		name  string
		opts  map[string]any
		index string
	}{
		{"index mode", map[string]any{}, "logcap-2026.11.27"},
		{"data stream", map[string]any{"mode": "data_stream"}, "logs-logcap-default"},
		{"template", map[string]any{"index": "logs-{{.Kind}}-{{.Date}}", "compression": "none"}, "logs-file-2026.11.27"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts["url"] = srv.URL
			s := newTestSink(t, "elasticsearch", tc.opts)
			batch := httpTestRecords(3, 11, "/var/log/a.log")
			if err := s.Write(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			for _, r := range batch {
				d := f.doc(tc.index, r.ID())
				if d == nil || d["message"] != r.Message || d["@timestamp"] != r.Time.Format(time.RFC3339) || d["host"] != "web-1" {
					t.Errorf("%s/%s = %v, want the entry with @timestamp", tc.index, r.ID(), d)
				}
			}
			if err := s.Check(context.Background()); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
	// The date comes from the entry's time in UTC, not from the clock or the local zone.
	s := newTestSink(t, "elasticsearch", map[string]any{"url": srv.URL})
	r := httpTestRecords(1, 12, "x")
	r[0].Time = time.Date(2026, 1, 1, 1, 0, 0, 0, time.FixedZone("CET", 3600)).Add(-time.Minute)
	if err := s.Write(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if f.doc("logcap-2025.12.31", r[0].ID()) == nil {
		t.Errorf("entry at 23:59 UTC on Dec 31 not in logcap-2025.12.31")
	}
}

func TestESAPIKey(t *testing.T) {
	var got string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Get("Authorization")
		mu.Unlock()
		_, _ = io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	s := newTestSink(t, "elasticsearch", map[string]any{"url": srv.URL, "auth": map[string]any{"api_key": "a2V5OnNlY3JldA=="}})
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got != "ApiKey a2V5OnNlY3JldA==" {
		t.Errorf("Authorization = %q", got)
	}
}

// TestESPartialFailure: per-item results map back to the batch; 429 items are retried,
// mapping errors dead-lettered, and the retry stores each document once.
func TestESPartialFailure(t *testing.T) {
	for _, mode := range []string{"index", "data_stream"} {
		t.Run(mode, func(t *testing.T) {
			f := newFakeES()
			srv := httptest.NewServer(f)
			defer srv.Close()
			s := newTestSink(t, "elasticsearch", map[string]any{"url": srv.URL, "mode": mode})
			batch := httpTestRecords(5, 1, "a")
			f.failID(batch[1].ID(), 429, "es_rejected_execution_exception", 1)
			f.failID(batch[3].ID(), 400, "mapper_parsing_exception", 100)
			err := s.Write(context.Background(), batch)
			var p *PartialError
			if !errors.As(err, &p) || len(p.Failed) != 2 {
				t.Fatalf("err = %v, want a PartialError for records 1 and 3", err)
			}
			if e := p.Failed[1]; e == nil || errors.Is(e, ErrPermanent) || !strings.Contains(e.Error(), "429") {
				t.Errorf("record 1: %v, want transient 429", e)
			}
			if e := p.Failed[3]; e == nil || !errors.Is(e, ErrPermanent) || !strings.Contains(e.Error(), "mapper_parsing_exception") {
				t.Errorf("record 3: %v, want permanent mapper_parsing_exception", e)
			}
			// The pipeline redelivers the message: the whole batch again.
			err = s.Write(context.Background(), batch)
			if !errors.As(err, &p) || len(p.Failed) != 1 || !errors.Is(p.Failed[3], ErrPermanent) {
				t.Fatalf("redelivery: err = %v, want only record 3 failed, permanently", err)
			}
			if n := f.count(); n != 4 {
				t.Errorf("%d documents stored, want 4 (each once)", n)
			}
		})
	}
}

func TestESRequestFailures(t *testing.T) {
	f := newFakeES()
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := newTestSink(t, "elasticsearch", map[string]any{"url": srv.URL})
	ctx := context.Background()
	f.mu.Lock()
	f.failReq = []fakeFailure{{429, "2"}, {503, ""}, {400, ""}}
	f.mu.Unlock()
	var ra *RetryAfterError
	if err := s.Write(ctx, httpTestRecords(2, 1, "a")); !errors.As(err, &ra) || ra.After != 2*time.Second {
		t.Errorf("429: %v, want RetryAfterError 2s", err)
	}
	if err := s.Write(ctx, httpTestRecords(2, 1, "a")); !isTransient(err) {
		t.Errorf("503: %v, want transient", err)
	}
	if err := s.Write(ctx, httpTestRecords(2, 1, "a")); !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "es_rejected_execution_exception") {
		t.Errorf("400: %v, want permanent with the body", err)
	}
	if err := s.Write(ctx, httpTestRecords(2, 1, "a")); err != nil {
		t.Errorf("after the failures: %v", err)
	}
	// A record whose index name renders invalid fails alone.
	s2 := newTestSink(t, "elasticsearch", map[string]any{"url": srv.URL, "index": "logs-{{.Source}}"})
	batch := httpTestRecords(2, 2, "app")
	batch[1].Source = "/var/log/App.log"
	err := s2.Write(ctx, batch)
	var p *PartialError
	if !errors.As(err, &p) || len(p.Failed) != 1 || !errors.Is(p.Failed[1], ErrPermanent) || f.doc("logs-app", batch[0].ID()) == nil {
		t.Errorf("invalid index for record 1: %v, want it alone permanent and record 0 stored", err)
	}
}

// TestESOutage: the server goes away (listener closed) and comes back on the same address;
// then an answer is lost after the documents were stored. Every error on the way is
// transient, and in the end each document is stored exactly once.
func TestESOutage(t *testing.T) {
	f := newFakeES()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	start := func(l net.Listener) *httptest.Server {
		srv := httptest.NewUnstartedServer(f)
		srv.Listener.Close()
		srv.Listener = l
		srv.Start()
		return srv
	}
	srv := start(l)
	s := newTestSink(t, "elasticsearch", map[string]any{"url": "http://" + addr, "mode": "data_stream", "timeout": "2s"})
	ctx := context.Background()
	batches := [][]Record{httpTestRecords(50, 1, "a"), httpTestRecords(50, 2, "a"), httpTestRecords(50, 3, "b")}
	if err := s.Write(ctx, batches[0]); err != nil {
		t.Fatal(err)
	}

	srv.Close() // outage
	for _, b := range batches[1:] {
		if err := s.Write(ctx, b); !isTransient(err) {
			t.Fatalf("server down: err = %v, want transient", err)
		}
		if err := s.Check(ctx); err == nil {
			t.Fatal("Check passed with the server down")
		}
	}

	var l2 net.Listener
	waitFor(t, "the address to be free again", 5*time.Second, func() bool {
		l2, err = net.Listen("tcp", addr)
		return err == nil
	})
	srv = start(l2)
	defer srv.Close()
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check after the outage: %v", err)
	}
	// Lost answer: the documents of batch 1 are stored but the sink sees a broken connection.
	f.mu.Lock()
	f.dropNext = 1
	f.mu.Unlock()
	if err := s.Write(ctx, batches[1]); !isTransient(err) {
		t.Fatalf("lost answer: err = %v, want transient", err)
	}
	// Redelivery of everything not acked: batches 1 and 2.
	for _, b := range batches[1:] {
		if err := s.Write(ctx, b); err != nil {
			t.Fatalf("after the outage: %v", err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, b := range batches {
		for _, r := range b {
			if c := f.stores["logs-logcap-default/"+r.ID()]; c != 1 {
				t.Errorf("%s stored %d times, want 1", r.ID(), c)
			}
			n++
		}
	}
	if got := len(f.docs["logs-logcap-default"]); got != n {
		t.Errorf("%d documents, want %d", got, n)
	}
}

func TestESClassify(t *testing.T) {
	item := func(op string, status int, typ string) string {
		if typ == "" {
			return fmt.Sprintf(`{%q:{"_index":"i","_id":"x","status":%d}}`, op, status)
		}
		return fmt.Sprintf(`{%q:{"_index":"i","_id":"x","status":%d,"error":{"type":%q,"reason":"r"}}}`, op, status, typ)
	}
	resp := func(errs bool, items ...string) string {
		return fmt.Sprintf(`{"took":1,"errors":%v,"items":[%s]}`, errs, strings.Join(items, ","))
	}
	for _, tc := range []struct {
		name   string
		body   string
		sent   []int
		create bool
		want   map[int]string // batch index → "transient" | "permanent"
		whole  bool           // an error for the whole batch
	}{
		{"all ok", resp(false, item("index", 201, "")), []int{0}, false, nil, false},
		{"ok without items", `{"took":1,"errors":false}`, []int{0, 1}, false, nil, false},
		{"mixed", resp(true, item("index", 201, ""), item("index", 429, "es_rejected_execution_exception"), item("index", 400, "mapper_parsing_exception"), item("index", 503, "unavailable_shards_exception")),
			[]int{0, 2, 5, 7}, false, map[int]string{2: "transient", 5: "permanent", 7: "transient"}, false},
		{"conflict on create is success", resp(true, item("create", 409, "version_conflict_engine_exception"), item("create", 400, "document_parsing_exception")),
			[]int{0, 1}, true, map[int]string{1: "permanent"}, false},
		{"conflict on index is not", resp(true, item("index", 409, "version_conflict_engine_exception")), []int{0}, false, map[int]string{0: "permanent"}, false},
		{"error as string", resp(true, `{"index":{"_index":"i","_id":"x","status":400,"error":"old style"}}`), []int{3}, false, map[int]string{3: "permanent"}, false},
		{"count mismatch", resp(true, item("index", 429, "x")), []int{0, 1}, false, nil, true},
		{"two actions in one item", resp(true, `{"index":{"status":201},"create":{"status":201}}`), []int{0}, false, nil, true},
		{"not json", `<html>`, []int{0}, false, nil, true},
	} {
		failed, err := esClassify([]byte(tc.body), tc.sent, tc.create)
		if (err != nil) != tc.whole {
			t.Errorf("%s: err = %v, want whole-batch error %v", tc.name, err, tc.whole)
			continue
		}
		got := map[int]string{}
		for i, e := range failed {
			got[i] = "transient"
			if errors.Is(e, ErrPermanent) {
				got[i] = "permanent"
			}
		}
		if len(got) != len(tc.want) || fmt.Sprint(got) != fmt.Sprint(tc.want) && len(tc.want) > 0 {
			t.Errorf("%s: failed %v, want %v", tc.name, got, tc.want)
		}
	}
}

func FuzzESBulkResponse(f *testing.F) {
	f.Add(`{"took":1,"errors":false,"items":[]}`, 1, true)
	f.Add(`{"took":1,"errors":true,"items":[{"create":{"_index":"i","_id":"x","status":409,"error":{"type":"version_conflict_engine_exception"}}}]}`, 1, true)
	f.Add(`{"errors":true,"items":[{"index":{"status":429,"error":"x"}},{"index":{"status":201}}]}`, 2, false)
	f.Add(`{"errors":false,"errors":true,"items":[{"index":{"status":429}}]}`, 1, false)
	f.Add(`{"items":[{"index":{"status":201}}],"errors":false} x`, 1, false)
	f.Add(`{"errors":false,"items":[{"index":{"status":"201"}}]}`, 1, false)
	f.Add(`{"errors":false,"Errors":true,"items":[]}`, 1, false)
	f.Fuzz(func(t *testing.T, body string, n int, create bool) {
		if n < 0 || n > 1000 {
			return
		}
		sent := make([]int, n)
		for i := range sent {
			sent[i] = 2 * i // batch indices need not be contiguous
		}
		// The fast path agrees with encoding/json: "no errors" only for a valid JSON object
		// whose errors is false (the items of such an answer are not read).
		if esNoErrors([]byte(body)) {
			var resp struct{ Errors *bool }
			if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.Errors == nil || *resp.Errors {
				t.Fatalf("esNoErrors(%q) but encoding/json reads errors=%v (%v)", body, resp.Errors, err)
			}
		}
		failed, err := esClassify([]byte(body), sent, create)
		if err != nil && failed != nil {
			t.Fatalf("both an error and failures")
		}
		for i, e := range failed {
			if i%2 != 0 || i/2 >= n || e == nil {
				t.Fatalf("failure for batch index %d (sent %d): %v", i, n, e)
			}
		}
	})
}

// The document's stream is the entry's (stdout/stderr of a container), never the JetStream
// stream the record was read from: Record.Stream ("LOGS") shadowed Entry.Stream, so every
// document said "stream":"LOGS" and file entries got a stream they do not have.
func TestESDocStreamIsTheEntrys(t *testing.T) {
	f := newFakeES()
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := newTestSink(t, "elasticsearch", map[string]any{"url": srv.URL, "index": "logs"})
	batch := httpTestRecords(2, 7, "/var/log/a.log")
	batch[1].Kind, batch[1].Source, batch[1].Entry.Stream = "docker", "nginx", "stderr"
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if d := f.doc("logs", batch[0].ID()); d == nil || d["stream"] != nil {
		t.Errorf("file entry's document = %v, want no stream", d)
	}
	if d := f.doc("logs", batch[1].ID()); d == nil || d["stream"] != "stderr" {
		t.Errorf("docker entry's document = %v, want stream stderr", d)
	}
}

// id_field puts the record's idempotency key into the document too, for a store that
// ignores the bulk action's _id (VictoriaLogs): redeliveries can be found at query time.
// _id itself is refused: Elasticsearch rejects it inside a document.
func TestESIDField(t *testing.T) {
	f := newFakeES()
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := newTestSink(t, "elasticsearch", map[string]any{"url": srv.URL, "index": "logs", "id_field": "logcap_id"})
	batch := httpTestRecords(2, 9, "/var/log/a.log")
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	for _, r := range batch {
		if d := f.doc("logs", r.ID()); d == nil || d["logcap_id"] != r.ID() || d["message"] != r.Message {
			t.Errorf("document %s = %v, want logcap_id %s", r.ID(), d, r.ID())
		}
	}
	for _, bad := range []string{"_id", "_index", "a\"b"} {
		if _, err := New("elasticsearch", "x", httpSinkOpts(t, map[string]any{"url": srv.URL, "id_field": bad})); err == nil || !strings.Contains(err.Error(), "id_field") {
			t.Errorf("id_field %q: err %v, want it refused", bad, err)
		}
	}
}
