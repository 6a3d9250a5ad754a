package faults

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/internal/proctest"
)

// logcap against an external nats-server that goes away for ~5 s while the file it tails
// keeps growing, then comes back on the same port with the same store: every line is in
// LOGS exactly once, in order. While NATS is down the source stops reading (the file is the
// buffer); the publisher retries the chunk in flight with the same msg id.
func TestNATSRestart(t *testing.T) {
	total := size(150_000, 1_500_000)
	down := time.Duration(size(5, 30)) * time.Second
	port, store := proctest.FreePort(t), t.TempDir()
	opts := func() *server.Options {
		o := natstest.Options(store)
		o.Port = port
		return o
	}
	s := natstest.RunServer(t, opts())
	_, js := natstest.Connect(t, s)

	logs := t.TempDir()
	path := filepath.Join(logs, "app.log")
	n := newNodeWith(t, port, fmt.Sprintf(`sources:
  - {name: app, type: file, paths: [%q], start_at: beginning, max_chunk_bytes: 64KiB, max_line_bytes: 4KiB}
`, filepath.Join(logs, "*.log")))
	p := n.start(t)
	dumpLogsOnFailure(t, p)

	third := total / 3
	writeLines(t, path, 0, third)
	waitStored(t, js, 1)
	atStop := storedMsgs(t, js)
	s.Shutdown()
	s.WaitForShutdown()
	stopped := time.Now()
	// The file grows in steps while NATS is away.
	const steps = 20
	for i := range steps {
		writeLines(t, path, third+i*third/steps, third+(i+1)*third/steps)
		time.Sleep(time.Until(stopped.Add(time.Duration(i+1) * down / steps)))
	}
	natstest.RunServer(t, opts())
	t.Logf("NATS stopped with %d chunks stored (%d lines written), down for %v",
		atStop, third, time.Since(stopped).Round(100*time.Millisecond))
	writeLines(t, path, 2*third, total)

	readAll(t, js, "logs.file.>", total, 2*time.Minute).exactlyOnce(t, "LOGS", total)
}
