package faults

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/internal/dockertest"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/internal/proctest"
	"github.com/logcap/logcap/streams"
)

// rotatingWriter appends numbered lines to path at a steady rate and rotates it by rename
// (app.log → app.log.N, renamed out of the source's glob), keeping the newest keep renamed
// generations and deleting older ones: logrotate's create mode, faster.
type rotatingWriter struct {
	t           *testing.T
	path        string
	perTick     int           // lines per tick
	tick        time.Duration // 100 ms
	rotateEvery int           // ticks between rotations
	keep        int
	written     int
	ticks       int
	gens        []string
	rotations   int
}

// run writes for d, one tick at a time.
func (w *rotatingWriter) run(d time.Duration) {
	end := time.Now().Add(d)
	for next := time.Now(); next.Before(end); next = next.Add(w.tick) {
		proctest.AppendLines(w.t, w.path, w.written, w.written+w.perTick, "of the outage test")
		w.written += w.perTick
		w.ticks++
		if w.ticks%w.rotateEvery == 0 {
			w.rotate()
		}
		time.Sleep(time.Until(next.Add(w.tick))) // the pace of a real writer, not a wait for a condition
	}
}

func (w *rotatingWriter) rotate() {
	w.rotations++
	to := fmt.Sprintf("%s.%d", w.path, w.rotations)
	if err := os.Rename(w.path, to); err != nil {
		w.t.Fatal(err)
	}
	w.gens = append(w.gens, to)
	for len(w.gens) > w.keep {
		if err := os.Remove(w.gens[0]); err != nil {
			w.t.Fatal(err)
		}
		w.gens = w.gens[1:]
	}
}

// outageRig is a logcap whose file source tails dir/app.log, on an external nats-server the
// test stops and starts again.
type outageRig struct {
	n    *node
	p    *proctest.Proc
	s    *server.Server
	opts func() *server.Options
	js   jetstream.JetStream
	path string
}

// newOutageRig starts it; sourceOpts are more keys of the file source (", key: value").
func newOutageRig(t *testing.T, sourceOpts string) *outageRig {
	port, opts := restartable(t)
	r := &outageRig{s: natstest.RunServer(t, opts()), opts: opts, path: filepath.Join(t.TempDir(), "app.log")}
	_, r.js = natstest.Connect(t, r.s)
	r.n = newNodeWith(t, port, fmt.Sprintf(`sources:
  - {name: app, type: file, paths: [%q], start_at: beginning%s}
`, r.path, sourceOpts))
	r.p = r.n.start(t)
	dumpLogsOnFailure(t, r.p)
	return r
}

// outage stops the external server for down while w keeps writing and rotating, then starts
// it again (same port, same store); it returns the new server.
func outage(t *testing.T, s *server.Server, opts func() *server.Options, w *rotatingWriter, down time.Duration) *server.Server {
	t.Helper()
	s.Shutdown()
	s.WaitForShutdown()
	w.run(down)
	return natstest.RunServer(t, opts())
}

// A NATS outage several rotations long: the file is renamed out of the glob every second
// (older generations deleted after three) while the external nats-server is down. Every
// line written is in LOGS exactly once, in order: logcap holds each generation open from
// the moment it appears, and reads it through that descriptor once NATS is back. Before, a
// file was opened only after NATS answered for its position, and every generation created
// and renamed away during an outage was lost (5,770 of 11,770 lines in LOGS with three 8 s
// outages).
func TestNATSOutageLongerThanRotations(t *testing.T) {
	outages, down := size(2, 3), time.Duration(size(5, 8))*time.Second
	r := newOutageRig(t, "")
	n, s, opts, js, path := r.n, r.s, r.opts, r.js, r.path

	w := &rotatingWriter{t: t, path: path, perTick: 20, tick: 100 * time.Millisecond, rotateEvery: 10, keep: 3}
	w.run(2 * time.Second)
	for range outages {
		s = outage(t, s, opts, w, down)
		w.run(3 * time.Second)
	}
	t.Logf("%d lines, %d rotations, %d outages of %v", w.written, w.rotations, outages, down)
	readAll(t, js, "logs.file.>", w.written, 2*time.Minute).exactlyOnce(t, "LOGS", w.written)
	if lost, err := metric(n.adminPort, "logcap_filemon_files_lost_total"); err != nil || lost != 0 {
		t.Errorf("files_lost_total = %v (%v), want 0", lost, err)
	}
}

// What logcap cannot hold it reports: with max_open_files 1 a generation found during an
// outage is not kept open, and once renamed away it cannot be reopened. The loss is counted,
// logged with the file's path, and /readyz says so; what was delivered is neither
// duplicated nor out of order.
func TestNATSOutageReportsWhatItCouldNotHold(t *testing.T) {
	r := newOutageRig(t, ", max_open_files: 1")
	n, p, s, opts, js, path := r.n, r.p, r.s, r.opts, r.js, r.path

	w := &rotatingWriter{t: t, path: path, perTick: 20, tick: 100 * time.Millisecond, rotateEvery: 10, keep: 100}
	w.run(time.Second)
	s = outage(t, s, opts, w, 4*time.Second)
	w.rotateEvery = 1 << 30 // the last generation stays at its path: it can be reopened
	w.run(time.Second)

	poll(t, time.Minute, 100*time.Millisecond, func() error {
		if lost, err := metric(n.adminPort, "logcap_filemon_files_lost_total"); err != nil || lost == 0 {
			return fmt.Errorf("files_lost_total = %v (%v)", lost, err)
		}
		return nil
	})
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", n.adminPort))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "lost") || !strings.Contains(string(body), path) {
		t.Errorf("/readyz = %d %q, want 503 naming the lost file %s", resp.StatusCode, body, path)
	}
	if !p.WaitLog("file lost", 10*time.Second) {
		t.Error("no log line about the lost file")
	}
	// Everything not lost arrives once, in order: the last generation is complete.
	var ta *tally
	poll(t, time.Minute, 100*time.Millisecond, func() error {
		if ta = readAll(t, js, "logs.file.>", w.written, 3*time.Second); ta.seen[w.written-1] == 0 {
			return fmt.Errorf("%d lines read back, not the last one", ta.total)
		}
		return nil
	})
	if ta.dups != 0 || ta.outOfOrder != 0 || ta.seen[w.written-1] != 1 {
		t.Errorf("%d lines read back: %d duplicated, %d out of order, last line seen %d times",
			ta.total, ta.dups, ta.outOfOrder, ta.seen[w.written-1])
	}
	t.Logf("%d lines written, %d read back (%d missing in lost generations)", w.written, ta.total, ta.missing(w.written))
}

// A container that starts, logs, exits and is removed while NATS is down: removal deletes
// its json-file log, so logcap must hold the log stream open before it knows the position
// (which lives in NATS). Every line it printed is in LOGS once NATS is back, in order.
// Before, the follower waited for the position first, found the container gone, and its
// lines were lost without a word.
func TestNATSOutageContainerRemoved(t *testing.T) {
	cli := dockertest.Engine(t)
	dockertest.Image(t, cli)
	port, opts := restartable(t)
	s := natstest.RunServer(t, opts())
	_, js := natstest.Connect(t, s)
	prefix := uniq("outage")
	n := newNodeWith(t, port, fmt.Sprintf(`sources:
  - {name: docker, type: docker, include_names: [%q]}
`, prefix+"*"))
	p := n.start(t)
	dumpLogsOnFailure(t, p)

	s.Shutdown()
	s.WaitForShutdown()
	const lines = 2000
	name := prefix + "-short"
	id := dockertest.Run(t, cli, dockertest.Spec{Name: name, Args: []string{"-n", strconv.Itoa(lines), "-rate", "20000", "-len", "60"}})
	poll(t, time.Minute, 20*time.Millisecond, func() error {
		if ok, err := dockertest.Exited(context.Background(), cli, id); err != nil || !ok {
			return fmt.Errorf("container still running (%v)", err)
		}
		return nil
	})
	wrote := dockerLines(t, cli, id)
	poll(t, time.Minute, 50*time.Millisecond, func() error { // logcap has seen it start
		if c, err := metric(n.adminPort, "logcap_dockermon_containers_followed"); err != nil || c != 1 {
			return fmt.Errorf("%v containers followed (%v)", c, err)
		}
		return nil
	})
	// Followed counts a follower from its start, before it asked Docker for the log (its
	// position lookup against the absent NATS comes first): removing the container in
	// between leaves it no log to open. The log line says the log is held open.
	if !p.WaitLog("container log held open until it does", time.Minute) {
		t.Fatal("logcap never said it holds the container's log open")
	}
	dockertest.Remove(t, cli, id)
	s = natstest.RunServer(t, opts())

	subject := streams.SourceSubject(streams.KindDocker, "faults", name)
	var f figures
	poll(t, time.Minute, 200*time.Millisecond, func() error {
		f = compareLines(wrote, logsLines(t, js, subject))
		if f.lost != 0 {
			return fmt.Errorf("%v", f)
		}
		return nil
	})
	if f.dups != 0 || f.outOfOrder != 0 {
		t.Errorf("%s: %v", name, f)
	}
	t.Logf("%s: %v", name, f)
}
