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
	port, opts := restartable(t)
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

// The whole path — file source → LOGS → processor → PARSED → file sink, and a second file
// sink straight on LOGS — against an external nats-server restarted again and again while
// lines keep coming: each sink's output holds every line exactly once, in order. The
// restarts land while pulls, acks and publishes are in flight: a message delivered to a
// pull the client gave up on, an ack buffered across the reconnect, a processor publish
// retried against the new server. The last outage lasts 8 s, longer than ack_wait.
func TestNATSRestartsSinks(t *testing.T) {
	restarts := size(6, 30)
	perStep := 5_000
	port, opts := restartable(t)
	s := natstest.RunServer(t, opts())
	logs, outDir := t.TempDir(), t.TempDir()
	path := filepath.Join(logs, "app.log")
	viaParsed, direct := filepath.Join(outDir, "parsed.log"), filepath.Join(outDir, "direct.log")
	n := newNodeWith(t, port, fmt.Sprintf(`sources:
  - {name: app, type: file, paths: [%q], start_at: beginning, max_chunk_bytes: 4KiB, max_line_bytes: 4KiB}
processors:
  - {name: parsed, input: logs.>, ack_wait: 5s, steps: [{set: {fields: {env: faults}}}]}
sinks:
  - {name: viaparsed, type: file, input: parsed.file.>, path: %q, format: raw, ack_wait: 5s}
  - {name: direct, type: file, input: logs.>, path: %q, format: raw, ack_wait: 5s}
`, filepath.Join(logs, "*.log"), viaParsed, direct))
	p := n.start(t)
	dumpLogsOnFailure(t, p)

	written := 0
	for i := range restarts {
		writeLines(t, path, written, written+perStep)
		written += perStep
		// Restart while the sinks are part-way through what was just written.
		poll(t, time.Minute, time.Millisecond, func() error {
			if c := countLines(t, viaParsed); c < written-perStep/2 {
				return fmt.Errorf("restart %d: %d lines in %s", i, c, viaParsed)
			}
			return nil
		})
		s.Shutdown()
		s.WaitForShutdown()
		writeLines(t, path, written, written+perStep/5)
		written += perStep / 5
		down := time.Duration(200+100*(i%8)) * time.Millisecond // long enough for reconnects to fail, at varied points
		if i == restarts-1 {
			down = 8 * time.Second // and once longer than ack_wait: pulls expire, acks are lost
		}
		time.Sleep(down)
		s = natstest.RunServer(t, opts())
	}
	writeLines(t, path, written, written+perStep)
	written += perStep
	_, js := natstest.Connect(t, s)
	for _, out := range []struct{ path, stream, consumer string }{{viaParsed, "PARSED", "viaparsed"}, {direct, "LOGS", "direct"}} {
		if err := waitFor(2*time.Minute, 100*time.Millisecond, func() error {
			if c := countLines(t, out.path); c < written {
				return fmt.Errorf("%d of %d lines in %s", c, written, out.path)
			}
			return consumerDone(js, out.stream, out.consumer)
		}); err != nil {
			t.Error(err)
		}
		readFileTally(t, out.path).exactlyOnce(t, out.path, written)
	}
	t.Logf("%d NATS restarts, %d lines", restarts, written)
}

// restartable picks a port and a store for an external nats-server that a test shuts down
// and starts again: opts gives the same options each time.
func restartable(t *testing.T) (port int, opts func() *server.Options) {
	port, store := proctest.FreePort(t), t.TempDir()
	return port, func() *server.Options {
		o := natstest.Options(store)
		o.Port = port
		return o
	}
}
