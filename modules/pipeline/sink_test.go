package pipeline_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/streams"
)

// fakeES is the part of Elasticsearch's _bulk API the sink uses (copied in spirit from
// sinks/elasticsearch_test.go, which is not importable): action/document line pairs, gzip,
// the newline terminator rule, per-item results in the real response shape, "index"
// overwriting by _id. GET / answers as the cluster root does (the sink's Check).
type fakeES struct {
	mu     sync.Mutex
	docs   map[string]json.RawMessage // _id → document
	stores map[string]int             // _id → times written
}

func newFakeES() *fakeES {
	return &fakeES{docs: map[string]json.RawMessage{}, stores: map[string]int{}}
}

func (f *fakeES) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/" && r.Method == http.MethodGet {
		_, _ = io.WriteString(w, `{"name":"fake","version":{"number":"8.15.0"},"tagline":"You Know, for Search"}`)
		return
	}
	if r.URL.Path != "/_bulk" || r.Method != http.MethodPost {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		w.WriteHeader(http.StatusNotAcceptable)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil || len(raw) == 0 || raw[len(raw)-1] != '\n' {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":{"type":"illegal_argument_exception","reason":"The bulk request must be terminated by a newline [\\n]"},"status":400}`)
		return
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	if len(lines)%2 != 0 {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	type meta struct {
		Index string `json:"_index"`
		ID    string `json:"_id"`
	}
	var items []map[string]any
	f.mu.Lock()
	for k := 0; k < len(lines); k += 2 {
		var action map[string]meta
		if err := json.Unmarshal(lines[k], &action); err != nil || len(action) != 1 || action["index"].ID == "" || !json.Valid(lines[k+1]) {
			f.mu.Unlock()
			w.WriteHeader(http.StatusBadRequest)
			_, _ = fmt.Fprintf(w, `{"error":{"type":"illegal_argument_exception","reason":"Malformed action/metadata line [%d]"},"status":400}`, k+1)
			return
		}
		m := action["index"]
		status := 201
		if _, ok := f.docs[m.ID]; ok {
			status = 200
		}
		f.docs[m.ID] = lines[k+1]
		f.stores[m.ID]++
		items = append(items, map[string]any{"index": map[string]any{"_index": m.Index, "_id": m.ID, "status": status}})
	}
	f.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{"took": 1, "errors": false, "items": items})
}

func (f *fakeES) counts() (docs, maxStores int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.stores {
		maxStores = max(maxStores, n)
	}
	return len(f.docs), maxStores
}

// switchable is a destination that can be taken down (connection refused: nothing listens)
// and brought back on the same address.
type switchable struct {
	t    *testing.T
	addr string
	h    http.Handler
	srv  *httptest.Server
}

func newSwitchable(t *testing.T, h http.Handler) *switchable {
	s := &switchable{t: t, h: h}
	s.up()
	s.addr = s.srv.Listener.Addr().String()
	t.Cleanup(s.down)
	return s
}

func (s *switchable) up() {
	addr := s.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		s.t.Fatalf("listen %s: %v", addr, err)
	}
	s.srv = httptest.NewUnstartedServer(s.h)
	s.srv.Listener = l
	s.srv.Start()
}

func (s *switchable) down() {
	if s.srv != nil {
		s.srv.CloseClientConnections()
		s.srv.Close()
		s.srv = nil
	}
}

var config3s = config.Duration(3 * time.Second)

func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// The destination is down while 100,000 entries flow: the sink stops fetching (one batch in
// hand per request in flight, the rest waits in JetStream, heap flat), and once the destination is back every
// entry is delivered, none twice (by _id).
func TestSinkOutage(t *testing.T) {
	outage := 10 * time.Second
	if os.Getenv("LOGCAP_LONG") != "" {
		outage = 60 * time.Second
	}
	es := newFakeES()
	dst := newSwitchable(t, es)
	e := newEnv(t)
	cfg := parseConfig(t, fmt.Sprintf(`
sinks:
  - { name: es, type: elasticsearch, input: logs.>, url: "http://%s", index: logs,
      batch: { max_entries: 1000, max_bytes: 256KiB, max_wait: 200ms } }
`, dst.addr))
	pl := run(t, e, cfg, fastTuning)
	n, perChunk := 100_000, 100
	if raceEnabled {
		n = 30_000
	}
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("line %06d %s", i, strings.Repeat("x", 80))
	}
	publish(t, e.js, "/o.log", lines[:10_000], perChunk)
	natstest.Eventually(t, 20*time.Second, func() error {
		if d, _ := es.counts(); d != 10_000 {
			return fmt.Errorf("%d delivered", d)
		}
		return nil
	})

	dst.down()
	downAt := time.Now()
	publish(t, e.js, "/o.log", lines[10_000:], perChunk)
	// Let the sink hit the outage and settle into waiting.
	natstest.Eventually(t, 10*time.Second, func() error {
		if pl.Stats().Sinks["es"].Retries == 0 {
			return fmt.Errorf("no retry yet")
		}
		return nil
	})
	cons, err := e.js.Consumer(context.Background(), "LOGS", "es")
	if err != nil {
		t.Fatal(err)
	}
	base := heapInuse()
	var maxHeap uint64
	var maxAckPending int
	for time.Since(downAt) < outage {
		info, err := cons.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		maxAckPending = max(maxAckPending, info.NumAckPending)
		maxHeap = max(maxHeap, heapInuse())
		time.Sleep(500 * time.Millisecond) // sampling cadence, not synchronization
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("outage %v: heap in use %.1f MiB at start, max %.1f MiB; max ack pending %d msgs; pending in JetStream %d",
		outage, float64(base)/(1<<20), float64(maxHeap)/(1<<20), maxAckPending, info.NumPending)
	// One batch in hand per request in flight (request.concurrency, 4 by default) and the one
	// fetched waiting for a worker: each at most max_bytes (256 KiB) of chunks, i.e. ~30
	// messages here.
	const held = (4 + 1) * 40
	if maxAckPending > held || info.NumPending < uint64((n-10_000)/perChunk-held) {
		t.Errorf("the sink kept fetching during the outage: max ack pending %d, pending %d", maxAckPending, info.NumPending)
	}
	if maxHeap > base+8<<20 {
		t.Errorf("heap grew during the outage: %d → %d bytes", base, maxHeap)
	}
	if st := pl.Stats().Sinks["es"]; st.DeadLetters != 0 {
		t.Errorf("dead letters during an outage: %+v", st)
	}

	dst.up()
	natstest.Eventually(t, 60*time.Second, func() error {
		if d, _ := es.counts(); d != n {
			return fmt.Errorf("%d delivered", d)
		}
		return nil
	})
	// Exactly n documents: a redelivered entry keeps its _id (stream, sequence, index), so
	// it can only overwrite itself. A write whose answer was lost (a timeout under load) is
	// sent again, which shows as a store count above 1.
	if d, maxStores := es.counts(); d != n || maxStores != 1 {
		t.Logf("%d documents; an entry was stored at most %d times", d, maxStores)
	}
	es.mu.Lock()
	for id, doc := range es.docs {
		var v struct{ Message string }
		var seq, idx int
		if _, err := fmt.Sscanf(id, "LOGS-%d-%d", &seq, &idx); err != nil || json.Unmarshal(doc, &v) != nil ||
			v.Message != lines[(seq-1)*perChunk+idx] {
			t.Errorf("document %s = %s", id, doc)
			break
		}
	}
	es.mu.Unlock()
	t.Logf("all %d delivered %v after recovery; stats %+v", n, time.Since(downAt)-outage, pl.Stats().Sinks["es"])
}

// A destination that accepts connections and never answers: the pipeline still stops
// within shutdown_timeout (the write in hand is cancelled after the grace period and its
// messages are redelivered later).
func TestSinkNeverAnswers(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0") // the kernel accepts; nobody reads or answers
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	e := newEnv(t)
	cfg := parseConfig(t, fmt.Sprintf(`
sinks:
  - { name: hang, type: http, input: logs.>, url: "http://%s/ingest", timeout: 5m }
`, l.Addr()))
	cfg.ShutdownTimeout = config3s
	pl := run(t, e, cfg, fastTuning)
	publish(t, e.js, "/h.log", []string{"a", "b"}, 1)
	// The sink's Write connects: accept, read the request, never answer.
	_ = l.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	conn, err := l.Accept()
	if err != nil {
		t.Fatalf("the sink never connected: %v", err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	req, err := http.ReadRequest(bufio.NewReader(conn))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("request in hand: %s %s (%d bytes)", req.Method, req.URL, req.ContentLength)
	cons, err := e.js.Consumer(context.Background(), "LOGS", "hang")
	if err != nil {
		t.Fatal(err)
	}
	// The stop is bounded but not clean: its error names the sink whose write was cut.
	ctx, cancel := context.WithTimeout(context.Background(), config3s.D())
	defer cancel()
	began := time.Now()
	stoppedByTest.Store(pl, true)
	err = pl.Stop(ctx)
	took := time.Since(began)
	t.Logf("stopped in %v with a write hanging: %v", took, err)
	if err == nil || !strings.Contains(err.Error(), "http sink hang: stop: write unanswered") || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Errorf("stop error %v: want it to name the sink and its destination", err)
	}
	if took < time.Second || took > config3s.D() {
		t.Errorf("stop took %v > shutdown_timeout %v", took, config3s)
	}
	// Stopped: nothing was acked, so both messages are still there for the next run.
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream != 0 {
		t.Errorf("ack floor %d: a message was acked without delivery", info.AckFloor.Stream)
	}
}

// A permanent 400 dead-letters the batch with the error; a 429 with Retry-After is waited
// for, and then delivered.
func TestSinkPermanentAndRetryAfter(t *testing.T) {
	var (
		mu       sync.Mutex
		got      []string
		throttle time.Time
	)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodHead || r.Method == http.MethodGet:
		case bytes.Contains(b, []byte("BAD")):
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"field message: BAD is not allowed"}`)
		case bytes.Contains(b, []byte("SLOW")) && throttle.IsZero():
			throttle = time.Now()
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			got = append(got, fmt.Sprintf("%s after %v", strings.TrimSpace(string(b)), time.Since(throttle).Round(100*time.Millisecond)))
		}
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	e := newEnv(t)
	cfg := parseConfig(t, fmt.Sprintf(`
sinks:
  - { name: hook, type: http, input: logs.>, url: %q, compression: none, batch: { max_wait: 100ms } }
`, srv.URL))
	pl := run(t, e, cfg, fastTuning)
	publish(t, e.js, "/p.log", []string{"BAD entry"}, 1)
	waitMsgs(t, e.js, "DEADLETTER", 1, 10*time.Second)
	dl := readStream(t, e.js, "DEADLETTER")[0]
	if dl.Subject != "deadletter.hook" || !strings.Contains(strings.Join(dl.Header[streams.HdrDLError], ""), "status 400: {\"error\":\"field message: BAD is not allowed\"}") ||
		strings.Join(dl.Header[streams.HdrDLSeq], "") != "1" || string(dl.Data) != "BAD entry\n" {
		t.Fatalf("dead letter %s %q %v", dl.Subject, dl.Data, dl.Header)
	}
	publish(t, e.js, "/p.log", []string{"SLOW entry"}, 1)
	natstest.Eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 1 {
			return fmt.Errorf("delivered: %q", got)
		}
		return nil
	})
	// The handler recorded the entry before it answered; the sink counts it once the answer
	// is back.
	natstest.Eventually(t, 10*time.Second, func() error {
		if st := pl.Stats().Sinks["hook"]; st.Entries == 0 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	var d struct {
		Message string `json:"message"`
		ID      string `json:"_id"`
	}
	line := got[0][:strings.Index(got[0], " after ")]
	if err := json.Unmarshal([]byte(line), &d); err != nil || d.Message != "SLOW entry" || d.ID != "LOGS-2-0" {
		t.Fatalf("delivered %q (%v)", got[0], err)
	}
	if !strings.HasSuffix(got[0], "after 1s") && !strings.HasSuffix(got[0], "after 1.1s") && !strings.HasSuffix(got[0], "after 1.2s") {
		t.Errorf("Retry-After: 1 not honoured: %s", got[0])
	}
	if st := pl.Stats().Sinks["hook"]; st.DeadLetters != 1 || st.Retries != 1 || st.Entries != 1 {
		t.Errorf("stats %+v", st)
	}
}
