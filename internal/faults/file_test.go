package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// kill -9 of a real `logcap run` in the middle of a 1,000,000-line burst, then restart:
// every line exactly once, in order. The position is the stream: there is no offsets file
// to be out of step with what was stored.
func TestFileKill9MidBurst(t *testing.T) {
	const total = 1_000_000
	logs := t.TempDir()
	path := filepath.Join(logs, "app.log")
	n := newNode(t, fmt.Sprintf("sources:\n  - {name: app, type: file, paths: [%q], start_at: beginning}\n", filepath.Join(logs, "*.log")))
	p := n.start(t)
	js := n.connect(t)

	// The burst goes to disk in pieces while logcap reads; it is killed part-way.
	writeLines(t, path, 0, total/2)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logcap's log:\n%s", p.Logs())
		}
	})
	waitStored(t, js, 1) // reading has begun
	stored := storedMsgs(t, js)
	p.Kill9()                           // the embedded server dies with it: the stream is what was fsynced or in the page cache
	writeLines(t, path, total/2, total) // the rest of the burst arrives while logcap is dead

	n.start(t)
	ta := readAll(t, js, "logs.file.>", total, 3*time.Minute)
	lost := ta.missing(total)
	t.Logf("kill -9 after %d chunks stored: written %d, delivered %d, lost %d, duplicated %d, out of order %d",
		stored, total, ta.total, lost, ta.dups, ta.outOfOrder)
	if lost != 0 || ta.dups != 0 || ta.outOfOrder != 0 || ta.total != total {
		t.Fatalf("want every line exactly once in order")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

func storedMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), "LOGS")
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return s.CachedInfo().State.Msgs
}

func waitStored(t *testing.T, js jetstream.JetStream, atLeast uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if storedMsgs(t, js) >= atLeast {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("fewer than %d chunks stored after 60s", atLeast)
}
