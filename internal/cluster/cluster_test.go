// Package cluster tests logcap on three nodes: three `logcap run` processes whose embedded
// nats-servers form one cluster, and one logcap against an external three-node nats-server
// cluster. LOGS keeps three replicas; a node is killed with SIGKILL in the middle of a burst
// and every line must still be stored exactly once. Each test logs the publish stall it saw.
package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/logcap/logcap/internal/interop"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/internal/proctest"
	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	burstLines = 100_000
	// The burst is written in batches at a steady pace, so that reading and publishing are
	// in full swing when a node dies and the stall shows as a gap between stored chunks.
	burstBatches = 100
	burstPace    = 40 * time.Millisecond
	killAtBatch  = 30
)

// routePassword is nats.embedded.cluster.password of the test clusters: a node must
// present it (user "route") to join.
const routePassword = "r0ute-s3cret"

// node is one logcap process of a three-node embedded cluster.
type node struct {
	name                             string
	dir, cfg                         string
	natsPort, clusterPort, adminPort int
	proc                             *proctest.Proc
}

// embeddedCluster writes the configs of three nodes whose embedded servers route to each
// other; sources[i] is node i's `sources:` block ("" for none).
func embeddedCluster(t *testing.T, sources [3]string) []*node {
	t.Helper()
	nodes := make([]*node, 3)
	var routes []string
	for i := range nodes {
		nodes[i] = &node{
			name: fmt.Sprintf("node%d", i+1), dir: t.TempDir(),
			natsPort: proctest.FreePort(t), clusterPort: proctest.FreePort(t), adminPort: proctest.FreePort(t),
		}
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", nodes[i].clusterPort))
	}
	for i, n := range nodes {
		n.cfg = filepath.Join(n.dir, "logcap.yaml")
		cfg := fmt.Sprintf(`node: %s
data_dir: %s
shutdown_timeout: 10s
nats:
  embedded:
    listen: 127.0.0.1:%d
    cluster: {name: logcap-test, listen: 127.0.0.1:%d, routes: [%s], user: route, password: %s}
streams:
  logs: {replicas: 3}
  deadletter: {replicas: 3}
admin: {listen: "127.0.0.1:%d"}
%s`, n.name, filepath.Join(n.dir, "data"), n.natsPort, n.clusterPort, strings.Join(routes, ", "), routePassword, n.adminPort, sources[i])
		if err := os.WriteFile(n.cfg, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

// start starts the processes first and waits for them after: a node is ready only once
// LOGS exists with its three replicas, which needs the other nodes.
func startAll(t *testing.T, nodes ...*node) {
	t.Helper()
	for _, n := range nodes {
		n.proc = proctest.Start(t, n.cfg)
	}
	for _, n := range nodes {
		n.waitReady(t)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("%s's log:\n%s", n.name, tail(n.proc.Logs(), 60))
			}
		}
	})
}

func (n *node) waitReady(t *testing.T) {
	t.Helper()
	n.proc.WaitReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", n.adminPort), 90*time.Second)
}

func (n *node) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.natsPort) }

// logcap authenticates as the node's own identity (the tests move stream leaders), with the
// credentials its embedded server generated.
func (n *node) logcap(t *testing.T) nats.Option {
	return interop.UserOption(t, filepath.Join(n.dir, "data"), natsd.LogcapUser)
}

// tail returns the last lines of a log, without the route chatter of a cluster.
func tail(s string, lines int) string {
	var l []string
	for line := range strings.Lines(s) {
		if !strings.Contains(line, "oute connection") && !strings.Contains(line, "connect to route") {
			l = append(l, strings.TrimSuffix(line, "\n"))
		}
	}
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// connect opens a client connection that only ever talks to url (no reconnect elsewhere),
// closed at the end of the test.
func connect(t *testing.T, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.NoReconnect(), nats.DontRandomize()}, opts...)...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	t.Cleanup(func() { nc.Close(); <-closed })
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func streamInfo(ctx context.Context, js jetstream.JetStream, name string) (*jetstream.StreamInfo, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	return s.CachedInfo(), nil
}

// makeLeader moves the leadership of stream to server (a step-down with a preferred
// placement) and waits until the cluster reports it.
func makeLeader(t *testing.T, nc *nats.Conn, js jetstream.JetStream, stream, server string) {
	t.Helper()
	natstest.Eventually(t, 30*time.Second, func() error {
		si, err := streamInfo(t.Context(), js, stream)
		if err != nil {
			return err
		}
		if si.Cluster == nil {
			return fmt.Errorf("stream %s has no cluster info", stream)
		}
		if si.Cluster.Leader == server {
			return nil
		}
		req := fmt.Sprintf(`{"placement":{"preferred":%q}}`, server)
		resp, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+stream, []byte(req), 5*time.Second)
		if err != nil {
			return fmt.Errorf("step down %s: %w", stream, err)
		}
		return fmt.Errorf("leader of %s is %q, not %q yet (step-down answered %s)", stream, si.Cluster.Leader, server, resp.Data)
	})
}

// waitCurrent waits until server's replica of stream is current with no lag.
func waitCurrent(t *testing.T, js jetstream.JetStream, stream, server string, timeout time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	natstest.Eventually(t, timeout, func() error {
		si, err := streamInfo(t.Context(), js, stream)
		if err != nil {
			return err
		}
		if si.Cluster == nil {
			return fmt.Errorf("stream %s has no cluster info", stream)
		}
		if si.Cluster.Leader == server {
			return nil
		}
		for _, p := range si.Cluster.Replicas {
			if p.Name == server {
				if p.Current && !p.Offline && p.Lag == 0 {
					return nil
				}
				return fmt.Errorf("replica %s of %s: current %v, offline %v, lag %d", server, stream, p.Current, p.Offline, p.Lag)
			}
		}
		return fmt.Errorf("%s is not a replica of %s: %+v", server, stream, si.Cluster)
	})
	return time.Since(began)
}

// burst appends burstLines numbered lines to path in burstBatches batches, one every
// burstPace, and calls kill (once) after killAtBatch batches. It returns when kill was
// called.
func burst(t *testing.T, path string, kill func()) time.Time {
	t.Helper()
	per := burstLines / burstBatches
	tick := time.NewTicker(burstPace)
	defer tick.Stop()
	var killedAt time.Time
	for b := range burstBatches {
		if b == killAtBatch {
			killedAt = time.Now()
			kill()
		}
		writeLines(t, path, b*per, (b+1)*per)
		<-tick.C
	}
	return killedAt
}

// writeLines appends numbered lines [from, to) to path.
func writeLines(t *testing.T, path string, from, to int) {
	proctest.AppendLines(t, path, from, to, "of the cluster burst")
}

// tally counts numbered lines read back from LOGS, and keeps the stored time of each chunk.
type tally struct {
	seen        map[int]int
	total, dups int
	outOfOrder  int
	last        int
	stored      []time.Time
}

func (ta *tally) add(line []byte) error {
	f := bytes.Fields(line)
	if len(f) < 2 {
		return fmt.Errorf("unexpected line %q", line)
	}
	n, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return fmt.Errorf("unexpected line %q", line)
	}
	ta.total++
	ta.seen[n]++
	if ta.seen[n] > 1 {
		ta.dups++
	}
	if n <= ta.last {
		ta.outOfOrder++
	}
	ta.last = n
	return nil
}

func (ta *tally) missing(want int) int {
	m := 0
	for i := range want {
		if ta.seen[i] == 0 {
			m++
		}
	}
	return m
}

// check fails the test unless every line arrived exactly once, in order.
func (ta *tally) check(t *testing.T, what string) {
	t.Helper()
	lost := ta.missing(burstLines)
	t.Logf("%s: written %d, stored %d, lost %d, duplicated %d, out of order %d (%d chunks)",
		what, burstLines, ta.total, lost, ta.dups, ta.outOfOrder, len(ta.stored))
	if lost != 0 || ta.dups != 0 || ta.outOfOrder != 0 || ta.total != burstLines {
		t.Fatalf("%s: want every line exactly once, in order", what)
	}
}

// stall returns the gap between stored chunks that spans at (the kill), the largest gap
// anywhere, and the median gap.
func (ta *tally) stall(at time.Time) (spanning, largest, median time.Duration) {
	var gaps []time.Duration
	for i := 1; i < len(ta.stored); i++ {
		g := ta.stored[i].Sub(ta.stored[i-1])
		gaps = append(gaps, g)
		largest = max(largest, g)
		if !ta.stored[i-1].After(at) && ta.stored[i].After(at) {
			spanning = g
		}
	}
	if len(gaps) > 0 {
		slices.Sort(gaps)
		median = gaps[len(gaps)/2]
	}
	return spanning, largest, median
}

// readAll reads every chunk on filter from LOGS with an ordered consumer until want entries
// arrived or timeout passed.
func readAll(t *testing.T, js jetstream.JetStream, filter string, want int, timeout time.Duration) *tally {
	t.Helper()
	var cons jetstream.Consumer
	natstest.Eventually(t, 30*time.Second, func() error {
		var err error
		cons, err = js.OrderedConsumer(t.Context(), "LOGS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
		return err
	})
	return drain(t, cons, want, timeout)
}

// readFrom reads every chunk on filter through a consumer hosted by server, so what comes
// back is that server's own copy of LOGS. An R1 consumer lands on a random replica: create
// it until it lands on server.
func readFrom(t *testing.T, js jetstream.JetStream, server, filter string, want int, timeout time.Duration) *tally {
	t.Helper()
	var cons jetstream.Consumer
	natstest.Eventually(t, 60*time.Second, func() error {
		c, err := js.CreateConsumer(t.Context(), "LOGS", jetstream.ConsumerConfig{
			FilterSubjects: []string{filter}, AckPolicy: jetstream.AckNonePolicy,
			DeliverPolicy: jetstream.DeliverAllPolicy, Replicas: 1, InactiveThreshold: time.Minute,
		})
		if err != nil {
			return err
		}
		ci, err := c.Info(t.Context())
		if err != nil {
			return err
		}
		if ci.Cluster != nil && ci.Cluster.Leader == server {
			cons = c
			return nil
		}
		_ = js.DeleteConsumer(t.Context(), "LOGS", ci.Name)
		return fmt.Errorf("consumer landed on %s, not %s", mustJSON(ci.Cluster), server)
	})
	return drain(t, cons, want, timeout)
}

func drain(t *testing.T, cons jetstream.Consumer, want int, timeout time.Duration) *tally {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	ta := &tally{seen: map[int]int{}, last: -1}
	// One more fetch after the last wanted line: a duplicate stored after it must show too.
	for last := false; !last && ctx.Err() == nil; {
		last = ta.total >= want
		batch, err := cons.FetchBytes(8<<20, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatalf("fetch from LOGS: %v", err)
		}
		for m := range batch.Messages() {
			c, err := streams.DecodeChunk(m.Subject(), m.Headers(), m.Data())
			if err != nil {
				t.Fatal(err)
			}
			if md, err := m.Metadata(); err == nil {
				ta.stored = append(ta.stored, md.Timestamp)
			}
			var addErr error
			c.EachEntry(func(_ int, e []byte, _ bool) {
				if err := ta.add(streams.TrimEOL(e)); err != nil && addErr == nil {
					addErr = err
				}
			})
			if addErr != nil {
				t.Fatal(addErr)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			t.Logf("fetch: %v", err)
		}
	}
	return ta
}

// slowPublishes scrapes logcap_filemon_publish_seconds from an admin /metrics and returns
// the number of chunks whose publish (retries included) took longer than 1s, and the total.
func slowPublishes(t *testing.T, adminPort int) (slow, total uint64) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", adminPort))
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	var under1s uint64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "logcap_filemon_publish_seconds_bucket{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseUint(f[len(f)-1], 10, 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		switch {
		case strings.Contains(line, `le="+Inf"`):
			total = v
		case strings.Contains(line, `le="1.024"`):
			under1s = v
		}
	}
	return total - under1s, total
}

// sourceBlock is a `sources:` block tailing path from its beginning.
func sourceBlock(path string) string {
	return fmt.Sprintf("sources:\n  - {name: app, type: file, paths: [%q], start_at: beginning}\n", path)
}

// replicasOf returns a stream's configured replicas and whether it allows direct gets.
func replicasOf(t *testing.T, js jetstream.JetStream, stream string) (int, bool) {
	t.Helper()
	si, err := streamInfo(t.Context(), js, stream)
	if err != nil {
		t.Fatal(err)
	}
	return si.Config.Replicas, si.Config.AllowDirect
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// electedAt finds, in logcap logs (JSON lines), when a new leader of stream was elected
// after the given time: nats-server logs it on the node that won.
func electedAt(stream string, after time.Time, logs ...string) (time.Time, bool) {
	needle := fmt.Sprintf("new stream leader for '$G > %s'", stream)
	for _, l := range logs {
		for line := range strings.Lines(l) {
			if !strings.Contains(line, needle) {
				continue
			}
			var rec struct {
				Time time.Time `json:"time"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Time.After(after) {
				return rec.Time, true
			}
		}
	}
	return time.Time{}, false
}
