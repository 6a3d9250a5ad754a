package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/logcap/logcap/internal/natstest"
)

// logCapture is a nats-server logger that keeps every line.
type logCapture struct {
	mu    sync.Mutex
	lines []string
}

func (l *logCapture) add(f string, v ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(f, v...))
	l.mu.Unlock()
}

func (l *logCapture) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

func (l *logCapture) Noticef(f string, v ...any) { l.add(f, v...) }
func (l *logCapture) Warnf(f string, v ...any)   { l.add(f, v...) }
func (l *logCapture) Fatalf(f string, v ...any)  { l.add(f, v...) }
func (l *logCapture) Errorf(f string, v ...any)  { l.add(f, v...) }
func (l *logCapture) Debugf(f string, v ...any)  { l.add(f, v...) }
func (l *logCapture) Tracef(string, ...any)      {}

// A rogue nats-server that knows a node's route address and the cluster name, but not the
// route credentials (nats.embedded.cluster.user/password), is refused: it never becomes a
// route, and a client of it subscribed to logs.> sees none of the lines the cluster captures.
// (Without route auth it joined at once and read every line.)
func TestEmbeddedClusterRogueNodeRefused(t *testing.T) {
	logs := t.TempDir()
	path := filepath.Join(logs, "app.log")
	nodes := embeddedCluster(t, [3]string{sourceBlock(filepath.Join(logs, "*.log")), "", ""})
	startAll(t, nodes...)

	captured := &logCapture{}
	opts := natstest.Options(t.TempDir())
	opts.JetStream = false
	opts.NoLog = false
	opts.ServerName = "rogue"
	opts.Cluster.Name, opts.Cluster.Host, opts.Cluster.Port = "logcap-test", "127.0.0.1", -1
	opts.Routes = server.RoutesFromStr(fmt.Sprintf("nats-route://127.0.0.1:%d", nodes[0].clusterPort))
	rogue, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	rogue.SetLoggerV2(captured, true, false, false)
	rogue.Start()
	t.Cleanup(func() { rogue.Shutdown(); rogue.WaitForShutdown() })
	if !rogue.ReadyForConnections(10 * time.Second) {
		t.Fatal("rogue server not ready")
	}
	rnc, err := nats.Connect(rogue.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	rnc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	t.Cleanup(func() { rnc.Close(); <-closed })
	var n int
	var mu sync.Mutex
	if _, err := rnc.Subscribe("logs.>", func(*nats.Msg) {
		mu.Lock()
		n++
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := rnc.Flush(); err != nil {
		t.Fatal(err)
	}

	// The rogue's route attempt is answered: refused (it joined at once without route auth).
	natstest.Eventually(t, 30*time.Second, func() error {
		if rogue.NumRoutes() > 0 {
			return nil
		}
		if captured.contains("Authorization Violation") {
			return nil
		}
		return errors.New("the rogue's route attempt is not answered yet")
	})
	if r := rogue.NumRoutes(); r > 0 {
		t.Fatalf("a rogue server without the route credentials joined the cluster (%d routes)", r)
	}

	// The cluster captures lines; LOGS holds them; the rogue's subscriber saw none.
	const lines = 200
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	writeLines(t, path, 0, lines)
	_, js := connect(t, nodes[2].url(), nodes[2].logcap(t))
	ta := readAll(t, js, "logs.file.>", lines, 60*time.Second)
	if lost := ta.missing(lines); lost != 0 || ta.total != lines || ta.dups != 0 {
		t.Fatalf("lines captured while a rogue server tried to join: written %d, stored %d, lost %d, duplicated %d", lines, ta.total, lost, ta.dups)
	}
	// The rogue's subscription was flushed before the lines were written: had it joined,
	// it would have had each publish before LOGS acknowledged it.
	if err := rnc.Flush(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := n
	mu.Unlock()
	if got > 0 || rogue.NumRoutes() > 0 {
		t.Fatalf("the rogue server read %d messages of logs.> (routes %d)", got, rogue.NumRoutes())
	}
}
