package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/logcap/logcap/modules/lifecycle"
)

// httpSink is the destination of logcap's http sink: it decodes the NDJSON batches, counts
// what arrived, and is closed and reopened on the same address every 30 s.
type httpSink struct {
	addr  string
	group *lifecycle.Group

	mu   sync.Mutex
	srv  *http.Server
	file map[int64]int  // file line number → deliveries
	dock map[string]int // "<container> <stream> <seq>" → deliveries
	bad  int            // documents the soak could not read

	nRestarts atomic.Int64
}

func newHTTPSink(addr string) *httpSink {
	return &httpSink{addr: addr, group: lifecycle.New("soak-http", zap.NewNop()), file: map[int64]int{}, dock: map[string]int{}}
}

func (s *httpSink) restarts() int64 { return s.nRestarts.Load() }

func (s *httpSink) listen() error {
	var ln net.Listener
	var err error
	// The port was ours a moment ago; a connection in TIME_WAIT does not block a listener,
	// but give a racing process a few tries.
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("http sink destination %s: %w", s.addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(s.ingest), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	return s.group.Go("soak: serve http "+s.addr, func(context.Context) error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
}

// down closes the server and every connection it has, as a crashing receiver would.
func (s *httpSink) down() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

func (s *httpSink) close() {
	s.down()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.group.Stop(ctx)
}

// restartEvery closes the destination every period, leaves it down for a second, and opens
// it again on the same port.
func (s *httpSink) restartEvery(period time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			s.down()
			time.Sleep(time.Second) // nothing answers meanwhile: connection refused
			if err := s.listen(); err != nil {
				return err
			}
			s.nRestarts.Add(1)
		}
	}
}

type doc struct {
	Kind    string         `json:"kind"`
	Source  string         `json:"source"`
	Stream  string         `json:"stream"`
	Message string         `json:"message"`
	Fields  map[string]any `json:"fields"`
}

func (s *httpSink) ingest(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		return // the sink's health check
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
	// Decode the whole batch before counting: a connection cut mid-body is not a delivery.
	var docs []doc
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var d doc
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		docs = append(docs, d)
	}
	if err := sc.Err(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range docs {
		switch d.Kind {
		case "file":
			if n, ok := fileLineNumber(d.Fields); ok {
				s.file[n]++
			} else {
				s.bad++
			}
		case "docker":
			if key, ok := dockerKey(d.Source, d.Message); ok {
				s.dock[key]++
			} else {
				s.bad++
			}
		default:
			s.bad++
		}
	}
	w.WriteHeader(http.StatusOK)
}

// fileLineNumber reads the line number the json step put into fields (a JSON number).
func fileLineNumber(fields map[string]any) (int64, bool) {
	if fields["soak"] != "yes" {
		return 0, false
	}
	switch n := fields["n"].(type) {
	case float64:
		return int64(n), true
	case json.Number:
		v, err := n.Int64()
		return v, err == nil
	}
	return 0, false
}
