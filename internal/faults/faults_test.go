// Package faults gathers the fault tests that need a real logcap process: kill -9 in the
// middle of a burst, then restart, then count what arrived. Each test reports lines written,
// delivered, lost and duplicated.
package faults

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/logcap/logcap/internal/interop"
	"github.com/logcap/logcap/internal/proctest"
	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// node is one logcap process under test, with the ports it listens on.
type node struct {
	dir, cfg            string
	natsPort, adminPort int
	embedded            bool // the embedded server, with the credentials logcap generates
}

func newNode(t *testing.T, sources string) *node {
	t.Helper()
	return newNodeWith(t, 0, sources)
}

// newNodeWith writes a node config whose body (sources, processors, sinks) is body. With
// externalNATS > 0 logcap connects to a nats-server on that port instead of embedding one.
func newNodeWith(t *testing.T, externalNATS int, body string) *node {
	t.Helper()
	n := &node{dir: t.TempDir(), natsPort: proctest.FreePort(t), adminPort: proctest.FreePort(t), embedded: externalNATS == 0}
	n.cfg = filepath.Join(n.dir, "logcap.yaml")
	natsCfg := fmt.Sprintf(`{embedded: {listen: "127.0.0.1:%d"}}`, n.natsPort)
	if externalNATS > 0 {
		n.natsPort = externalNATS
		natsCfg = fmt.Sprintf(`{urls: ["nats://127.0.0.1:%d"]}`, externalNATS)
	}
	cfg := fmt.Sprintf(`node: faults
data_dir: %s
shutdown_timeout: 10s
nats: %s
admin: {listen: "127.0.0.1:%d"}
%s`, filepath.Join(n.dir, "data"), natsCfg, n.adminPort, body)
	if err := os.WriteFile(n.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *node) start(t *testing.T) *proctest.Proc {
	t.Helper()
	p := proctest.Start(t, n.cfg)
	p.WaitReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", n.adminPort), 60*time.Second)
	return p
}

func (n *node) connect(t *testing.T) jetstream.JetStream {
	t.Helper()
	var opts []nats.Option
	if n.embedded {
		// The read-only identity: the faults tests only read.
		opts = append(opts, interop.UserOption(t, filepath.Join(n.dir, "data"), natsd.ReaderUser))
	}
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", n.natsPort), opts...)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	t.Cleanup(func() { nc.Close(); <-closed })
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// tally counts numbered lines ("<prefix> <n> ...") read back from a stream.
type tally struct {
	seen        map[int]int
	total, dups int
	outOfOrder  int
	last        int
}

func newTally() *tally { return &tally{seen: map[int]int{}, last: -1} }

func (ta *tally) add(line []byte) error {
	f := bytes.Fields(line)
	if len(f) < 2 {
		return fmt.Errorf("unexpected line %q", line)
	}
	n, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return fmt.Errorf("unexpected line %q", line)
	}
	ta.addN(n)
	return nil
}

// addN counts number n.
func (ta *tally) addN(n int) {
	ta.total++
	ta.seen[n]++
	if ta.seen[n] > 1 {
		ta.dups++
	}
	if n <= ta.last {
		ta.outOfOrder++
	}
	ta.last = n
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

// readAll reads every entry on filter from stream LOGS with an ordered consumer until want
// entries arrived or timeout passes.
func readAll(t *testing.T, js jetstream.JetStream, filter string, want int, timeout time.Duration) *tally {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "LOGS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatal(err)
	}
	ta := newTally()
	for ta.total < want {
		batch, err := cons.FetchBytes(8<<20, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			c, err := streams.DecodeChunk(m.Subject(), m.Headers(), m.Data())
			if err != nil {
				t.Fatal(err)
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
		if ctx.Err() != nil {
			break
		}
	}
	return ta
}

// writeLines appends numbered lines [from, to) to path.
func writeLines(t *testing.T, path string, from, to int) {
	proctest.AppendLines(t, path, from, to, "of the kill-9 burst")
}
