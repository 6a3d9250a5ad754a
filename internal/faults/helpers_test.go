package faults

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/internal/proctest"
)

// long reports whether the larger sizes were asked for (LOGCAP_LONG=1).
func long() bool { return os.Getenv("LOGCAP_LONG") == "1" }

// size picks the short or the LOGCAP_LONG=1 size of a test.
func size(short, longer int) int {
	if long() {
		return longer
	}
	return short
}

// report logs the tally in the suite's one format and returns how many of want were lost.
func (ta *tally) report(t *testing.T, what string, want int) int {
	t.Helper()
	lost := ta.missing(want)
	t.Logf("%s: written %d, delivered %d, lost %d, duplicated %d, out of order %d",
		what, want, ta.total, lost, ta.dups, ta.outOfOrder)
	return lost
}

// exactlyOnce fails the test unless numbers [0, want) each arrived once, in order.
func (ta *tally) exactlyOnce(t *testing.T, what string, want int) {
	t.Helper()
	if lost := ta.report(t, what, want); lost != 0 || ta.dups != 0 || ta.outOfOrder != 0 || ta.total != want {
		t.Errorf("%s: want every line exactly once, in order; missing: %s", what, ta.missingRanges(want))
	}
}

// dumpLogsOnFailure prints the processes' output when the test fails.
func dumpLogsOnFailure(t *testing.T, ps ...*proctest.Proc) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, p := range ps {
			t.Logf("logcap's log:\n%s", tail(p.Logs(), 200))
		}
	})
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	b := []byte(s)
	for i, seen := len(b)-1, 0; i >= 0; i-- {
		if b[i] == '\n' {
			if seen++; seen > n {
				return string(b[i+1:])
			}
		}
	}
	return s
}

// countLines counts the '\n' in the file at path (0 when it does not exist yet).
func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte{'\n'})
}

// poll calls f every interval until it returns nil; it fails the test after timeout.
func poll(t *testing.T, timeout, interval time.Duration, f func() error) {
	t.Helper()
	if err := waitFor(timeout, interval, f); err != nil {
		t.Fatal(err)
	}
}

// waitFor calls f every interval until it returns nil, or returns its last error after
// timeout.
func waitFor(timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}

// consumerDone reports nil once the durable consumer has nothing pending and nothing
// unacked: whatever it will write has been written.
func consumerDone(js jetstream.JetStream, stream, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, stream, name)
	if err != nil {
		return fmt.Errorf("consumer %s on %s: %w", name, stream, err)
	}
	ci := c.CachedInfo()
	if ci.NumPending != 0 || ci.NumAckPending != 0 {
		return fmt.Errorf("consumer %s: %d pending, %d unacked", name, ci.NumPending, ci.NumAckPending)
	}
	return nil
}

// missingRanges describes up to 10 runs of numbers in [0, want) that never arrived.
func (ta *tally) missingRanges(want int) string {
	var b bytes.Buffer
	runs := 0
	for i := 0; i < want && runs < 10; i++ {
		if ta.seen[i] != 0 {
			continue
		}
		j := i
		for j+1 < want && ta.seen[j+1] == 0 {
			j++
		}
		fmt.Fprintf(&b, "[%d, %d] ", i, j)
		runs++
		i = j
	}
	return b.String()
}

// readFileTally counts the numbered lines of a sink's output file.
func readFileTally(t *testing.T, path string) *tally {
	t.Helper()
	f, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ta := newTally()
	sc := bufio.NewScanner(bytes.NewReader(f))
	for sc.Scan() {
		if err := ta.add(sc.Bytes()); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	return ta
}
