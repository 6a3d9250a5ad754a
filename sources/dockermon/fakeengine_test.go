package dockermon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/logcap/logcap/internal/dockertest"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/streams"
)

// fakeEngine implements the parts of the Engine API the monitor uses — /_ping, and under
// /v<version>/: containers/json, containers/{id}/json, containers/{id}/logs (multiplexed
// frames, or raw for TTY, honouring since and timestamps), events — the way dockerd answers
// them, with hooks to break it.
type fakeEngine struct {
	mu         sync.Mutex
	containers map[string]*fakeContainer
	// logs, when set, answers a logs request instead (attempt counts from 0 per container).
	logs    func(w http.ResponseWriter, r *http.Request, c *fakeContainer, attempt int) bool
	attempt map[string]int
}

type fakeRecord struct {
	stream byte // 1 stdout, 2 stderr
	ts     time.Time
	line   string // with its "\n" unless a split part
}

type fakeContainer struct {
	id, name string
	tty      bool
	running  bool
	records  []fakeRecord
}

func newFakeEngine(t *testing.T) (*fakeEngine, *client.Client) {
	fe := &fakeEngine{containers: map[string]*fakeContainer{}, attempt: map[string]int{}}
	srv := httptest.NewServer(fe)
	t.Cleanup(srv.Close)
	cli, err := client.New(client.WithHost("tcp://" + srv.Listener.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return fe, cli
}

func (fe *fakeEngine) add(c *fakeContainer) {
	fe.mu.Lock()
	defer fe.mu.Unlock()
	fe.containers[c.id] = c
}

var apiPath = regexp.MustCompile(`^/v1\.\d+(/.*)$`)

func (fe *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Api-Version", "1.41")
	if r.URL.Path == "/_ping" {
		w.Write([]byte("OK"))
		return
	}
	m := apiPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		http.Error(w, `{"message":"page not found"}`, http.StatusNotFound)
		return
	}
	p := m[1]
	switch {
	case p == "/containers/json":
		fe.mu.Lock()
		var out []container.Summary
		for _, c := range fe.containers {
			if c.running {
				out = append(out, container.Summary{ID: c.id, Names: []string{"/" + c.name}, Image: "img"})
			}
		}
		fe.mu.Unlock()
		json.NewEncoder(w).Encode(out)
	case p == "/events":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	case strings.HasPrefix(p, "/containers/"):
		parts := strings.Split(strings.TrimPrefix(p, "/containers/"), "/")
		fe.mu.Lock()
		c := fe.containers[parts[0]]
		fe.mu.Unlock()
		if c == nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"message":"No such container: %s"}`, parts[0])
			return
		}
		switch parts[1] {
		case "json":
			fe.mu.Lock()
			st := &container.State{Running: c.running, Status: "exited"}
			if c.running {
				st.Status = "running"
			}
			resp := container.InspectResponse{ID: c.id, Name: "/" + c.name, State: st, Config: &container.Config{Tty: c.tty, Image: "img"}}
			fe.mu.Unlock()
			json.NewEncoder(w).Encode(resp)
		case "logs":
			fe.mu.Lock()
			attempt := fe.attempt[c.id]
			fe.attempt[c.id]++
			hook := fe.logs
			fe.mu.Unlock()
			if hook != nil && hook(w, r, c, attempt) {
				return
			}
			fe.serveLogs(w, r, c, -1)
		}
	default:
		http.Error(w, `{"message":"page not found"}`, http.StatusNotFound)
	}
}

// serveLogs writes c's records at or after since, the way dockerd does; cut >= 0 stops
// after that many bytes (a daemon dying mid-frame).
func (fe *fakeEngine) serveLogs(w http.ResponseWriter, r *http.Request, c *fakeContainer, cut int) {
	var since time.Time
	if s := r.URL.Query().Get("since"); s != "" {
		sec, nsec, _ := strings.Cut(s, ".")
		a, _ := strconv.ParseInt(sec, 10, 64)
		b, _ := strconv.ParseInt(nsec, 10, 64)
		since = time.Unix(a, b)
	}
	w.WriteHeader(http.StatusOK)
	var out []byte
	fe.mu.Lock()
	for _, rec := range c.records {
		if rec.ts.Before(since) {
			continue
		}
		payload := rec.ts.UTC().Format("2006-01-02T15:04:05.000000000Z07:00") + " " + rec.line
		if c.tty {
			out = append(out, payload...)
		} else {
			out = append(out, frame(rec.stream, payload)...)
		}
	}
	fe.mu.Unlock()
	if cut >= 0 && cut < len(out) {
		out = out[:cut]
	}
	w.Write(out)
}

func fakeMonitor(t *testing.T, cli *client.Client) (*Monitor, func(context.Context) []dockertest.Entry) {
	js := logsStream(t)
	mon, err := New(Config{Source: "docker", Host: testHost, Stream: "LOGS"}, cli, js, nil, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	read := func(context.Context) []dockertest.Entry {
		return dockertest.ReadSubject(t, js, "LOGS", streams.SourceSubject(streams.KindDocker, testHost, "web"))
	}
	return mon, read
}

func contents(es []dockertest.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Stream+" "+string(e.Line))
	}
	return out
}

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func TestFollowFakeEngine(t *testing.T) {
	part := strings.Repeat("p", DockerPartialSize)
	ts := func(i int) string { return t0.Add(time.Duration(i)).Format("2006-01-02T15:04:05.000000000Z07:00") }
	recs := []fakeRecord{
		{1, t0.Add(1), "one\n"}, {2, t0.Add(2), "err\n"}, {1, t0.Add(3), part}, {1, t0.Add(3), "end\n"}, {1, t0.Add(4), "last\n"},
	}
	tests := []struct {
		name string
		tty  bool
		hook func(fe *fakeEngine) func(w http.ResponseWriter, r *http.Request, c *fakeContainer, attempt int) bool
		want []string
	}{
		{name: "frames and a joined split line",
			want: []string{"stdout " + ts(1) + " one\n", "stderr " + ts(2) + " err\n", "stdout " + ts(3) + " " + part + "end\n", "stdout " + ts(4) + " last\n"}},
		{name: "tty", tty: true,
			want: []string{"stdout " + ts(1) + " one\n", "stdout " + ts(2) + " err\n", "stdout " + ts(3) + " " + part + "end\n", "stdout " + ts(4) + " last\n"}},
		{name: "truncated frame then resume without duplicates",
			hook: func(fe *fakeEngine) func(w http.ResponseWriter, r *http.Request, c *fakeContainer, attempt int) bool {
				return func(w http.ResponseWriter, r *http.Request, c *fakeContainer, attempt int) bool {
					if attempt == 0 {
						// Two whole frames and part of the split line's first part.
						fe.serveLogs(w, r, c, 2*8+2*(len(ts(1))+5)+100)
						return true
					}
					return false
				}
			},
			want: []string{"stdout " + ts(1) + " one\n", "stderr " + ts(2) + " err\n", "stdout " + ts(3) + " " + part + "end\n", "stdout " + ts(4) + " last\n"}},
		{name: "stream cut between the parts of a split line",
			hook: func(fe *fakeEngine) func(w http.ResponseWriter, r *http.Request, c *fakeContainer, attempt int) bool {
				return func(w http.ResponseWriter, r *http.Request, c *fakeContainer, attempt int) bool {
					if attempt == 0 {
						fe.serveLogs(w, r, c, 3*8+2*(len(ts(1))+5)+len(ts(3))+1+len(part))
						return true
					}
					return false
				}
			},
			want: []string{"stdout " + ts(1) + " one\n", "stderr " + ts(2) + " err\n", "stdout " + ts(3) + " " + part + "end\n", "stdout " + ts(4) + " last\n"}},
		{name: "500s then success",
			hook: func(fe *fakeEngine) func(w http.ResponseWriter, r *http.Request, c *fakeContainer, attempt int) bool {
				return func(w http.ResponseWriter, r *http.Request, c *fakeContainer, attempt int) bool {
					if attempt < 2 {
						w.Header().Set("Content-Type", "application/json")
						w.WriteHeader(http.StatusInternalServerError)
						w.Write([]byte(`{"message":"boom"}`))
						return true
					}
					return false
				}
			},
			want: []string{"stdout " + ts(1) + " one\n", "stderr " + ts(2) + " err\n", "stdout " + ts(3) + " " + part + "end\n", "stdout " + ts(4) + " last\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fe, cli := newFakeEngine(t)
			c := &fakeContainer{id: "c1", name: "web", tty: tt.tty, running: true, records: recs}
			fe.add(c)
			if tt.hook != nil {
				fe.logs = tt.hook(fe)
			}
			// The container stops once its log has been served twice (or once without a hook).
			fe.mu.Lock()
			inner := fe.logs
			fe.logs = func(w http.ResponseWriter, r *http.Request, c *fakeContainer, attempt int) bool {
				done := inner != nil && inner(w, r, c, attempt)
				if !done {
					fe.serveLogs(w, r, c, -1)
					fe.mu.Lock()
					c.running = false
					fe.mu.Unlock()
				}
				return true
			}
			fe.mu.Unlock()
			mon, read := fakeMonitor(t, cli)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := mon.Follow(ctx, Target{ID: "c1", Name: "web"}, nil); err != nil {
				t.Fatalf("follow: %v", err)
			}
			got := contents(read(ctx))
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("got  %.200q\nwant %.200q", got, tt.want)
			}
			// A second follow of the stopped container resumes at its end: nothing twice.
			if _, err := mon.Follow(ctx, Target{ID: "c1", Name: "web"}, nil); err != nil {
				t.Fatalf("follow again: %v", err)
			}
			if n := len(read(ctx)); n != len(tt.want) {
				t.Fatalf("after a second follow: %d entries, want %d", n, len(tt.want))
			}
		})
	}
}

func TestFollowVanishedContainer(t *testing.T) {
	_, cli := newFakeEngine(t)
	mon, _ := fakeMonitor(t, cli)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := mon.Follow(ctx, Target{ID: "gone", Name: "web"}, nil); err != nil {
		t.Fatalf("follow of a removed container: %v, want nil (nothing to read)", err)
	}
}

// TestCancelHungDaemon: a daemon that accepts connections and never answers must not
// hold up a stop.
func TestCancelHungDaemon(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(ctx context.Context, mon *Monitor) error
	}{
		{"follow", func(ctx context.Context, mon *Monitor) error {
			_, err := mon.Follow(ctx, Target{ID: "x", Name: "web"}, nil)
			return err
		}},
		{"run", func(ctx context.Context, mon *Monitor) error { return mon.Run(ctx) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A daemon and a client of its own: a connection the client dialed for an
			// earlier, cancelled request goes to its idle pool and would be reused without
			// a new accept.
			cli, accepted := hungDaemon(t)
			mon, _ := fakeMonitor(t, cli)
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			var wg sync.WaitGroup
			defer wg.Wait()
			defer cancel()
			wg.Go(func() { errc <- tc.run(ctx, mon) })
			select {
			case <-accepted:
			case <-time.After(10 * time.Second):
				t.Fatal("no connection")
			}
			start := time.Now()
			cancel()
			select {
			case err := <-errc:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Logf("returned %v", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("did not return within 2s of cancel")
			}
			t.Logf("returned %v after cancel", time.Since(start))
		})
	}
}

// A hung daemon is not waited on in silence: the events request is given up after
// eventsAnswerTimeout, and Run counts a reconnect and tries again.
func TestRunRetriesHungDaemon(t *testing.T) {
	defer func(d time.Duration) { eventsAnswerTimeout = d }(eventsAnswerTimeout)
	eventsAnswerTimeout = 100 * time.Millisecond
	cli, _ := hungDaemon(t)
	mon, _ := fakeMonitor(t, cli)
	reconnects := mon.metrics.Reconnects.WithLabelValues("docker", "events")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = mon.Run(ctx) })
	natstest.Eventually(t, 10*time.Second, func() error {
		if n := testutil.ToFloat64(reconnects); n < 2 {
			return fmt.Errorf("%v reconnects", n)
		}
		return nil
	})
}

// hungDaemon listens for Docker API connections, accepts them and never answers; accepted
// gets a token per connection.
func hungDaemon(t *testing.T) (*client.Client, <-chan struct{}) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	accepted := make(chan struct{}, 100)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	cli, err := client.New(client.WithHost("tcp://"+ln.Addr().String()), client.WithAPIVersion("1.41"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli, accepted
}

// TestResumeAcrossStreams: Docker's log is in timestamp order per stream, not across
// streams; a stream cut after a stderr record older than the stdout record before it
// resumes with nothing lost or repeated.
func TestResumeAcrossStreams(t *testing.T) {
	fe, cli := newFakeEngine(t)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) }
	c := &fakeContainer{id: "c1", name: "web", running: true, records: []fakeRecord{
		{1, at(1), "a\n"}, {1, at(5), "b\n"}, {2, at(3), "c\n"}, {1, at(6), "d\n"}, {2, at(4), "e\n"},
	}}
	fe.add(c)
	frameLen := 8 + len("2026-11-27T10:00:00.000000000Z") + 1 + 2
	fe.logs = func(w http.ResponseWriter, r *http.Request, c *fakeContainer, attempt int) bool {
		if attempt == 0 {
			fe.serveLogs(w, r, c, 3*frameLen) // a b c, then the daemon goes away
			return true
		}
		fe.serveLogs(w, r, c, -1)
		fe.mu.Lock()
		c.running = false
		fe.mu.Unlock()
		return true
	}
	mon, read := fakeMonitor(t, cli)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := mon.Follow(ctx, Target{ID: "c1", Name: "web"}, nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range read(ctx) {
		got = append(got, e.Stream+":"+e.Content())
	}
	if want := "stdout:a stdout:b stderr:c stdout:d stderr:e"; strings.Join(got, " ") != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestJoinAcrossInterleavedStream: a stderr line between the parts of a split stdout line
// does not cut it.
func TestJoinAcrossInterleavedStream(t *testing.T) {
	fe, cli := newFakeEngine(t)
	part := strings.Repeat("p", DockerPartialSize)
	fe.add(&fakeContainer{id: "c1", name: "web", records: []fakeRecord{
		{1, t0.Add(1), part}, {2, t0.Add(2), "err\n"}, {1, t0.Add(1), "end\n"},
	}})
	mon, read := fakeMonitor(t, cli)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := mon.Follow(ctx, Target{ID: "c1", Name: "web"}, nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range read(ctx) {
		got = append(got, fmt.Sprintf("%s:%d:%v", e.Stream, len(e.Content()), e.Continued))
	}
	if want := fmt.Sprintf("stderr:3:false stdout:%d:false", DockerPartialSize+3); strings.Join(got, " ") != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
