package dockermon

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logcap/logcap/internal/dockertest"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/modules/lifecycle"
	"github.com/logcap/logcap/streams"
	"github.com/moby/moby/client"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

const testHost = "testhost"

func long() bool { return os.Getenv("LOGCAP_LONG") == "1" }

func logsStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	s := natstest.RunServer(t, nil)
	_, js := natstest.Connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := streams.Provision(ctx, js, streams.Spec{Name: "LOGS", Subjects: []string{"logs.>"}, MaxAge: time.Hour, MaxBytes: 4 << 30,
		MaxMsgSize: 8 << 20, Replicas: 1, DuplicateWindow: 2 * time.Minute, Storage: "file", Discard: "old"}); err != nil {
		t.Fatal(err)
	}
	return js
}

// running is a monitor under a lifecycle group, as the fx module runs it.
type running struct {
	mon *Monitor
	g   *lifecycle.Group
	cli *client.Client
}

func startMonitor(t testing.TB, js jetstream.JetStream, opts Options, log *zap.Logger) *running {
	t.Helper()
	cli, err := NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	g := lifecycle.New("dockermon", log)
	mon, err := New(Config{Source: "docker", Host: testHost, Stream: "LOGS", Options: opts}, cli, js, g.Go, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Go("dockermon: events", mon.Run); err != nil {
		t.Fatal(err)
	}
	r := &running{mon: mon, g: g, cli: cli}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := r.g.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop took %v", d)
	}
	r.cli.Close()
}

func uniq(prefix string) string { return fmt.Sprintf("%s-%06d-", prefix, rand.IntN(1e6)) }

// checkSeqs checks that a container's entries hold every loggen line exactly once and in
// order per stream: want[stream] lines numbered 1..n. Non-TTY entries must sit on the
// stream their content names.
func checkSeqs(entries []dockertest.Entry, want map[string]int, tty bool) error {
	next := map[string]int{}
	for i, e := range entries {
		if e.Continued {
			return fmt.Errorf("entry %d continued: %.80q", i, e.Line)
		}
		f := strings.Fields(e.Content())
		if len(f) < 3 {
			return fmt.Errorf("entry %d: %.80q", i, e.Line)
		}
		stream := f[1]
		if !tty && stream != e.Stream {
			return fmt.Errorf("entry %d: %s line on %s chunk", i, stream, e.Stream)
		}
		seq, _ := strconv.Atoi(f[2])
		if seq != next[stream]+1 {
			return fmt.Errorf("entry %d: %s seq %d after %d", i, stream, seq, next[stream])
		}
		next[stream] = seq
	}
	for s, n := range want {
		if next[s] != n {
			return fmt.Errorf("%s: %d lines, want %d", s, next[s], n)
		}
	}
	return nil
}

// TestManyContainers: containers print numbered lines split over stdout and stderr, half
// with a TTY; every line lands in LOGS exactly once, in order per stream.
func TestManyContainers(t *testing.T) {
	cli := dockertest.Engine(t)
	js := logsStream(t)
	containers, lines := 50, 10000
	prefix := uniq("many")
	r := startMonitor(t, js, Options{IncludeNames: []string{prefix + "*"}}, zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)))
	start := time.Now()
	ids := make([]string, containers)
	for i := range containers {
		ids[i] = dockertest.Run(t, cli, dockertest.Spec{Name: fmt.Sprintf("%s%02d", prefix, i), TTY: i%2 == 1,
			Args: []string{"-n", strconv.Itoa(lines), "-stderr-every", "3", "-len", "100", "-prefix", "x"}})
	}
	want := map[string]int{"stdout": lines - lines/3, "stderr": lines / 3}
	// Cheap to poll: all containers stopped and no stream open any more; only then read
	// LOGS back (reading 50 subjects in a loop would slow the system under test).
	natstest.CheckFor(t, 5*time.Minute, 200*time.Millisecond, func() error {
		for _, id := range ids {
			if ok, err := dockertest.Exited(context.Background(), cli, id); err != nil || !ok {
				return fmt.Errorf("container %s still running (%v)", id[:12], err)
			}
		}
		if f := r.mon.Following(); len(f) > 0 {
			return fmt.Errorf("still following %d containers", len(f))
		}
		return nil
	})
	el := time.Since(start)
	for i := range containers {
		name := fmt.Sprintf("%s%02d", prefix, i)
		got := dockertest.ReadSubject(t, js, "LOGS", streams.SourceSubject(streams.KindDocker, testHost, name))
		if err := checkSeqs(got, want, i%2 == 1); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	t.Logf("%d containers × %d lines: all in LOGS after %v (%.0f lines/s)", containers, lines, el, float64(containers*lines)/el.Seconds())
}

// TestLongLine: a 100 KiB line, split by Docker into 16 KiB parts, arrives whole.
func TestLongLine(t *testing.T) {
	cli := dockertest.Engine(t)
	js := logsStream(t)
	prefix := uniq("long")
	startMonitor(t, js, Options{IncludeNames: []string{prefix + "*"}}, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	for _, tty := range []bool{false, true} {
		name := fmt.Sprintf("%stty-%v", prefix, tty)
		dockertest.Run(t, cli, dockertest.Spec{Name: name, TTY: tty, Args: []string{"-n", "3", "-len", "102400", "-stderr-every", "2"}})
		subject := streams.SourceSubject(streams.KindDocker, testHost, name)
		natstest.CheckFor(t, time.Minute, 100*time.Millisecond, func() error {
			got := dockertest.ReadSubject(t, js, "LOGS", subject)
			if err := checkSeqs(got, map[string]int{"stdout": 2, "stderr": 1}, tty); err != nil {
				return err
			}
			for _, e := range got {
				if n := len(e.Content()); n != 102400 {
					return fmt.Errorf("line of %d bytes, want 102400", n)
				}
			}
			return nil
		})
	}
}

// TestChurn: short-lived containers started about every 100 ms (1/s for 5 min with
// LOGCAP_LONG=1); every one's lines are in LOGS, and the goroutine count returns to its
// baseline.
func TestChurn(t *testing.T) {
	cli := dockertest.Engine(t)
	js := logsStream(t)
	n, every := 30, 100*time.Millisecond
	if long() {
		n, every = 300, time.Second
	}
	prefix := uniq("churn")
	r := startMonitor(t, js, Options{IncludeNames: []string{prefix + "*"}, ReconcileInterval: 0}, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	natstest.Eventually(t, 10*time.Second, func() error { return r.mon.Reconcile(context.Background()) })
	settle := func() int {
		// The http transport closes idle connections after 30 s; close them now to count
		// only what lives on purpose.
		r.cli.Close()
		return runtime.NumGoroutine()
	}
	base := settle()
	start := time.Now()
	type sample struct {
		at time.Duration
		n  int
	}
	var samples []sample
	for i := range n {
		dockertest.Run(t, cli, dockertest.Spec{Name: fmt.Sprintf("%s%03d", prefix, i), TTY: i%2 == 0,
			Args: []string{"-n", "20", "-rate", "100", "-stderr-every", "4"}})
		samples = append(samples, sample{time.Since(start), runtime.NumGoroutine()})
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * every)))
	}
	for i := range n {
		name := fmt.Sprintf("%s%03d", prefix, i)
		subject := streams.SourceSubject(streams.KindDocker, testHost, name)
		natstest.CheckFor(t, time.Minute, 50*time.Millisecond, func() error {
			return checkSeqs(dockertest.ReadSubject(t, js, "LOGS", subject), map[string]int{"stdout": 15, "stderr": 5}, i%2 == 0)
		})
	}
	var after int
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if after = settle(); after > base {
			return fmt.Errorf("%d goroutines, baseline %d; following %v", after, base, r.mon.Following())
		}
		return nil
	})
	// Least-squares slope of the goroutine count while containers came and went.
	var sx, sy, sxx, sxy float64
	for _, s := range samples {
		x := s.at.Minutes()
		sx, sy, sxx, sxy = sx+x, sy+float64(s.n), sxx+x*x, sxy+x*float64(s.n)
	}
	k := float64(len(samples))
	slope := (k*sxy - sx*sy) / (k*sxx - sx*sx)
	t.Logf("churn: %d containers in %v; goroutines baseline %d, after %d; slope while churning %.1f goroutines/min",
		n, time.Since(start).Round(time.Millisecond), base, after, slope)
}

// TestRestartMonitor: the monitor stops while a container keeps logging, then starts
// again: every line is in LOGS exactly once.
func TestRestartMonitor(t *testing.T) {
	cli := dockertest.Engine(t)
	js := logsStream(t)
	prefix := uniq("restart")
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	opts := Options{IncludeNames: []string{prefix + "*"}}
	name := prefix + "a"
	subject := streams.SourceSubject(streams.KindDocker, testHost, name)
	lines := 3000
	id := dockertest.Run(t, cli, dockertest.Spec{Name: name, Args: []string{"-n", strconv.Itoa(lines), "-rate", "300", "-stderr-every", "2"}})
	r := startMonitor(t, js, opts, log)
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if n := len(dockertest.ReadSubject(t, js, "LOGS", subject)); n < 300 {
			return fmt.Errorf("%d lines so far", n)
		}
		return nil
	})
	r.stop(t)
	stoppedAt := len(dockertest.ReadSubject(t, js, "LOGS", subject))
	// Let the container write while nobody reads: its log grows past what LOGS holds.
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		body, err := cli.ContainerLogs(context.Background(), id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Tail: "1"})
		if err != nil {
			return err
		}
		defer body.Close()
		rec, err := NewDecoder(body, false, 0).Next()
		if err != nil {
			return err
		}
		// 500 lines past the stop, or the end of its output if the stop came late (a loaded
		// machine: the container runs on while the monitor stops).
		if f := strings.Fields(string(rec.Line)); len(f) < 3 || mustAtoi(f[2])*2 < min(stoppedAt+500, lines) {
			return fmt.Errorf("container at %q", rec.Line)
		}
		return nil
	})
	startMonitor(t, js, opts, log)
	natstest.CheckFor(t, time.Minute, 50*time.Millisecond, func() error {
		return checkSeqs(dockertest.ReadSubject(t, js, "LOGS", subject), map[string]int{"stdout": lines / 2, "stderr": lines / 2}, false)
	})
	t.Logf("restart: %d lines in LOGS at stop, %d after restart", stoppedAt, lines)
	if stoppedAt >= lines {
		t.Errorf("the monitor was stopped only after the container's last line: the restart caught up nothing")
	}
}

func mustAtoi(s string) int { n, _ := strconv.Atoi(s); return n }
