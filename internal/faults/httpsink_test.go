package faults

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// outageServer is an NDJSON receiver for the http sink that is down (503) for a while
// after the first POST, and can store a few batches but answer 503 ("lost answers"), the
// way a proxy times out after the backend took the request.
type outageServer struct {
	downFor     time.Duration
	lostAnswers int

	mu        sync.Mutex
	firstPost time.Time
	refused   int            // POSTs answered 503 without storing
	ids       map[string]int // _id → times stored
	ta        *tally
}

func (s *outageServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Method == http.MethodHead {
		if !s.firstPost.IsZero() && time.Since(s.firstPost) < s.downFor {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		return
	}
	if s.firstPost.IsZero() {
		s.firstPost = time.Now()
	}
	if time.Since(s.firstPost) < s.downFor {
		s.refused++
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if r.Header.Get("Content-Type") != "application/x-ndjson" {
		http.Error(w, "want application/x-ndjson", http.StatusBadRequest)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	sc := bufio.NewScanner(body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var doc struct {
			ID      string `json:"_id"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil || doc.ID == "" {
			http.Error(w, fmt.Sprintf("document %q: %v", sc.Bytes(), err), http.StatusBadRequest)
			return
		}
		s.ids[doc.ID]++
		if err := s.ta.add([]byte(doc.Message)); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	if err := sc.Err(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if s.lostAnswers > 0 {
		s.lostAnswers--
		http.Error(w, "stored, but the answer is lost", http.StatusServiceUnavailable)
	}
}

// An http sink whose destination answers 503 for a while, with a real logcap process:
// everything is delivered once the destination is back. http is at-least-once: duplicates
// are reported, and every duplicate carries the same _id, so a receiver can drop it.
func TestHTTPSinkOutage(t *testing.T) {
	for _, tc := range []struct {
		name        string
		downFor     time.Duration
		lostAnswers int
	}{
		{"503 for 10s", time.Duration(size(10, 60)) * time.Second, 0},
		{"3 answers lost", 0, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			total := size(50_000, 300_000)
			srv := &outageServer{downFor: tc.downFor, lostAnswers: tc.lostAnswers, ids: map[string]int{}, ta: newTally()}
			hs := httptest.NewServer(srv)
			t.Cleanup(hs.Close)
			logs := t.TempDir()
			n := newNode(t, fmt.Sprintf(`sources:
  - {name: app, type: file, paths: [%q], start_at: beginning, max_chunk_bytes: 64KiB, max_line_bytes: 4KiB}
sinks:
  - {name: hook, type: http, input: logs.>, url: %q, batch: {max_entries: 5000}}
`, filepath.Join(logs, "*.log"), hs.URL))
			p := n.start(t)
			dumpLogsOnFailure(t, p)
			js := n.connect(t)
			began := time.Now()
			writeLines(t, filepath.Join(logs, "app.log"), 0, total)
			poll(t, 2*time.Minute, 50*time.Millisecond, func() error {
				srv.mu.Lock()
				defer srv.mu.Unlock()
				if m := srv.ta.missing(total); m > 0 {
					return fmt.Errorf("%d lines not delivered yet", m)
				}
				return nil
			})
			took := time.Since(began)
			poll(t, 30*time.Second, 50*time.Millisecond, func() error { return consumerDone(js, "LOGS", "hook") })
			srv.mu.Lock()
			defer srv.mu.Unlock()
			lost := srv.ta.report(t, "http sink", total)
			t.Logf("%d POSTs refused while down; all delivered %v after the first line was written; %d distinct _id",
				srv.refused, took.Round(100*time.Millisecond), len(srv.ids))
			if lost != 0 {
				t.Errorf("%d lines lost", lost)
			}
			if len(srv.ids) != total {
				t.Errorf("%d distinct _id, want %d (one per line): a redelivery must carry the same _id", len(srv.ids), total)
			}
			if tc.downFor > 0 && srv.refused == 0 {
				t.Errorf("the outage refused nothing: it tested nothing")
			}
			if tc.lostAnswers > 0 && srv.ta.dups == 0 {
				t.Errorf("lost answers produced no duplicate: the batch was not redelivered")
			}
		})
	}
}
