package faults

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logcap/logcap/internal/proctest"
)

// data_dir on a 256 MiB tmpfs that something else fills (a 200 MiB file written after
// logcap started), then 300,000 lines of 250 B (75 MB) into a tailed file: the disk fills.
// Before: capture stopped for good — not even deleting the filler moved it — while /readyz
// said ready (nats-server's file store keeps a write error until JetStream restarts; the
// issue's 64 MiB tmpfs grown to 256 MiB: 45,990 of 300,000 lines, then nothing for 180 s).
// Now capture is held before the store fails (the reserve) and /readyz says why; with a
// reserve too small to catch it the store does fail, and JetStream is restarted once space
// is back. Either way every line arrives once after the filler is deleted.
func TestDiskFull(t *testing.T) {
	for _, tc := range []struct {
		name, reserve string
		wantRestart   bool
	}{
		{"held before the store fails", "8MiB", false},
		{"the store failed: JetStream restarted", "1KiB", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			total := size(300_000, 300_000)
			logs := t.TempDir()
			n := newNode(t, fmt.Sprintf(`streams: {logs: {max_bytes: 120MiB}, deadletter: {max_bytes: 8MiB}}
sources:
  - {name: app, type: file, paths: [%q], start_at: beginning, max_chunk_bytes: 256KiB, max_line_bytes: 4KiB}
`, filepath.Join(logs, "*.log")))
			cfg, err := os.ReadFile(n.cfg)
			if err != nil {
				t.Fatal(err)
			}
			cfg = []byte(strings.Replace(string(cfg), "nats: {embedded: {", fmt.Sprintf("nats: {embedded: {store_reserve: %s, ", tc.reserve), 1))
			if err := os.WriteFile(n.cfg, cfg, 0o600); err != nil {
				t.Fatal(err)
			}
			data := filepath.Join(n.dir, "data")
			mountTmpfs(t, data, "256m")
			p := n.start(t)
			dumpLogsOnFailure(t, p)
			js := n.connect(t)
			filler := filepath.Join(data, "filler")
			writeRandomLines(t, filler, 200<<20/1024, 1024)
			writeRandomLines(t, filepath.Join(logs, "app.log"), total, 250)

			var body string
			poll(t, 2*time.Minute, 100*time.Millisecond, func() error {
				code, b := readyz(t, n.adminPort)
				if code != http.StatusServiceUnavailable || !strings.Contains(b, "store "+data) {
					return fmt.Errorf("/readyz %d %q", code, b)
				}
				body = b
				return nil
			})
			t.Logf("/readyz while the disk is full: %s", strings.TrimSpace(body))
			if v, err := metric(n.adminPort, "logcap_store_space_held"); err != nil || v != 1 {
				t.Errorf("logcap_store_space_held = %v (%v), want 1", v, err)
			}
			held := storedMsgs(t, js)
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			ta := readAll(t, js, "logs.file.>", total, 2*time.Minute)
			t.Logf("%d chunks in LOGS while held; after the filler was deleted: %d lines", held, ta.total)
			ta.exactlyOnce(t, "LOGS", total)
			if code, b := readyz(t, n.adminPort); code != http.StatusOK {
				t.Errorf("/readyz after the disk has space again: %d %q", code, b)
			}
			restarts, err := metric(n.adminPort, "logcap_store_jetstream_restarts_total")
			if err != nil || (restarts > 0) != tc.wantRestart {
				t.Errorf("logcap_store_jetstream_restarts_total = %v (%v), want restarts: %v", restarts, err, tc.wantRestart)
			}
		})
	}
}

// mountTmpfs mounts a tmpfs of size at dir for the test; it skips where mounting is not
// allowed, unless LOGCAP_REQUIRE_TMPFS=1 (.ci/run runs as root).
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("LOGCAP_REQUIRE_TMPFS") == "1" {
			t.Fatalf("mount a tmpfs (LOGCAP_REQUIRE_TMPFS=1): %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs here (%v: %s); LOGCAP_REQUIRE_TMPFS=1 makes this a failure", err, strings.TrimSpace(string(out)))
	}
	// Registered after the node's cleanups that stop logcap: runs before them, so unmount
	// lazily — the process may still hold files.
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
}

// writeRandomLines appends lines "line <n> <random hex>" of about size bytes to path:
// random, so that no layer compresses the disk's fill away.
func writeRandomLines(t *testing.T, path string, n, size int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	pad := make([]byte, size)
	for i := range n {
		for j := range pad {
			pad[j] = "0123456789abcdef"[rand.IntN(16)]
		}
		fmt.Fprintf(w, "line %d %s\n", i, pad[:size-20])
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestProcessorOnSmallDisk: a processor's derived stream is made on a disk with less free
// space than the streams' max_bytes add up to over nats-server's default store limit (75 %
// of the space free at start), but within the disk's size. nats-server reserves every
// stream's max_bytes against that limit, so the derived stream could not be made
// ("insufficient storage resources available") and the processor retried for ever while
// LOGS filled: on a node with less than ~28 GB free, the default streams (LOGS 10 GiB, each
// derived stream 10 GiB) with one processor. logcap sets the limit to the disk's size: the
// store_reserve guard (TestDiskFull) is what handles a full disk.
func TestProcessorOnSmallDisk(t *testing.T) {
	const total = 2_000
	n, logs := processorOnTmpfs(t, "128m") // 75 % of it, 96 MiB, is less than 48 + 4 + 48 MiB
	p := n.start(t)
	dumpLogsOnFailure(t, p)
	writeRandomLines(t, filepath.Join(logs, "app.log"), total, 100)
	const out = `logcap_pipeline_processor_entries_out_total{processor="parsed"}`
	poll(t, time.Minute, 50*time.Millisecond, func() error {
		if v, err := metric(n.adminPort, out); err != nil || v != total {
			return fmt.Errorf("%s = %v (%v), want %d", out, v, err, total)
		}
		return nil
	})
}

// TestProcessorStreamDoesNotFitDisk: when the streams' max_bytes add up to more than the
// disk holds, the derived stream is refused; the processor retries, and /readyz says which
// one and why instead of staying ready while nothing flows through it.
func TestProcessorStreamDoesNotFitDisk(t *testing.T) {
	n, _ := processorOnTmpfs(t, "96m") // 48 + 4 + 48 MiB do not fit
	p := proctest.Start(t, n.cfg)      // never ready: not n.start
	dumpLogsOnFailure(t, p)
	poll(t, time.Minute, 50*time.Millisecond, func() error {
		code, body := readyz(t, n.adminPort)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "processor parsed") || !strings.Contains(body, "create stream PARSED") {
			return fmt.Errorf("/readyz %d %q, want 503 naming processor parsed and its stream", code, body)
		}
		t.Logf("/readyz: %d %s", code, strings.TrimSpace(body))
		return nil
	})
}

// processorOnTmpfs is a node with a file source and a json processor, LOGS and the derived
// stream 48 MiB each, its data_dir on a tmpfs of size; it returns the node and the
// directory its source reads.
func processorOnTmpfs(t *testing.T, size string) (*node, string) {
	logs := t.TempDir()
	n := newNode(t, fmt.Sprintf(`streams: {logs: {max_bytes: 48MiB}, deadletter: {max_bytes: 4MiB, max_msg_size: 1MiB}}
sources:
  - {name: app, type: file, paths: [%q], start_at: beginning}
processors:
  - {name: parsed, input: logs.>, steps: [{json: {}}]}
`, filepath.Join(logs, "*.log")))
	mountTmpfs(t, filepath.Join(n.dir, "data"), size)
	return n, logs
}
