package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/logcap/logcap/internal/natstest"
)

// TestSinkConcurrentRequests: with request.concurrency 4 the http sink has four batches in
// flight at once (the first four requests each wait until all four arrived: one at a time
// would never get there), no more than four, and its acks stay in stream order: while the
// fifth batch's request hangs, the three after it are stored but not acked, so the
// consumer's ack floor stops before the hung one (and one more batch waits, fetched, for a
// free worker). Once it is answered everything is acked,
// and each entry was stored once.
func TestSinkConcurrentRequests(t *testing.T) {
	const n, conc = 12, 4
	var (
		mu       sync.Mutex
		got      = map[string]int{}
		inFlight int
		requests int
	)
	four := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			return // the health probe
		}
		body, _ := io.ReadAll(r.Body)
		var doc struct{ Message string }
		if err := json.Unmarshal(bytes.TrimSpace(body), &doc); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		requests++
		inFlight++
		if inFlight == conc && requests == conc {
			close(four)
		}
		first := requests <= conc
		mu.Unlock()
		defer func() {
			mu.Lock()
			inFlight--
			mu.Unlock()
		}()
		wait := (<-chan struct{})(nil)
		switch {
		case first:
			wait = four
		case doc.Message == "entry 4":
			wait = release
		}
		if wait != nil {
			select {
			case <-wait:
			case <-time.After(30 * time.Second):
				http.Error(w, "test: waited 30 s", http.StatusServiceUnavailable)
				return
			}
		}
		mu.Lock()
		got[doc.Message]++
		mu.Unlock()
	}))
	defer srv.Close()
	defer close(release)

	e := newEnv(t)
	for i := range n {
		publish(t, e.js, "/c.log", []string{fmt.Sprintf("entry %d", i)}, 1)
	}
	cfg := parseConfig(t, fmt.Sprintf(`
sinks:
  - { name: hook, type: http, input: logs.>, url: %q, compression: none, batch: { max_entries: 1 }, request: { concurrency: %d } }
`, srv.URL, conc))
	pl := run(t, e, cfg, fastTuning)
	select {
	case <-four:
	case <-time.After(30 * time.Second):
		t.Fatal("four requests were never in flight at once")
	}
	ctx := context.Background()
	cons, err := e.js.Consumer(ctx, "LOGS", "hook")
	if err != nil {
		t.Fatal(err)
	}
	// Batches 6–8 answered, 5 hanging: the stored ones wait for it before they are acked.
	natstest.Eventually(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if requests < 2*conc || len(got) < 2*conc-1 {
			return fmt.Errorf("%d requests, %d entries stored", requests, len(got))
		}
		return nil
	})
	// Pending: the four batches in flight and the next one, fetched and waiting for a worker.
	natstest.Eventually(t, 30*time.Second, func() error {
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumAckPending != conc+1 {
			return fmt.Errorf("%d pending", info.NumAckPending)
		}
		if info.AckFloor.Stream != conc {
			t.Fatalf("ack floor %d while batch %d hangs, want %d (acks in stream order)", info.AckFloor.Stream, conc+1, conc)
		}
		return nil
	})
	mu.Lock()
	sent := requests
	mu.Unlock()
	if sent != 2*conc {
		t.Errorf("%d requests while the fifth hangs, want %d: more than %d batches in flight", sent, 2*conc, conc)
	}
	release <- struct{}{}
	natstest.Eventually(t, 30*time.Second, func() error {
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.AckFloor.Stream != n || info.NumAckPending != 0 {
			return fmt.Errorf("ack floor %d, %d pending", info.AckFloor.Stream, info.NumAckPending)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		if c := got[fmt.Sprintf("entry %d", i)]; c != 1 {
			t.Errorf("entry %d stored %d times", i, c)
		}
	}
	if st := pl.Stats().Sinks["hook"]; st.Entries != n || st.DeadLetters != 0 {
		t.Errorf("stats %+v", st)
	}
}
