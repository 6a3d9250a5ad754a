package faults

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logcap/logcap/internal/proctest"
)

// reloadBody is the sources and sinks part of a node config: one file source and a file
// sink for each name.
func reloadBody(logs, out string, sinks ...string) string {
	b := fmt.Sprintf("sources:\n  - {name: app, type: file, paths: [%q], start_at: beginning, max_chunk_bytes: 64KiB, max_line_bytes: 4KiB}\nsinks:\n",
		filepath.Join(logs, "*.log"))
	for _, s := range sinks {
		b += fmt.Sprintf("  - {name: %s, type: file, input: logs.>, path: %q, format: raw, batch: {max_entries: 500}}\n",
			s, filepath.Join(out, s+".log"))
	}
	return b
}

// rewrite replaces the node's config file, keeping its head (node, data_dir, nats, admin).
func (n *node) rewrite(t *testing.T, head func(string) string, body string) {
	t.Helper()
	b, err := os.ReadFile(n.cfg)
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ := strings.Cut(string(b), "sources:")
	if head != nil {
		h = head(h)
	}
	if err := os.WriteFile(n.cfg, []byte(h+body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// sighup sends SIGHUP and waits for the n-th log line containing want (the reload's
// outcome), writing numbered lines [from, ...) into path meanwhile, in small appends, so the
// reload happens while the file grows. It returns the next number to write.
func sighup(t *testing.T, p *proctest.Proc, adminPort int, want string, n int, path string, from int) int {
	t.Helper()
	p.Send(syscall.SIGHUP)
	deadline := time.Now().Add(2 * time.Minute)
	for strings.Count(p.Logs(), want) < n {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log after SIGHUP", want)
		}
		// The admin endpoint is up throughout a reload: not answering, logcap is gone.
		if code, body := readyz(t, adminPort); code == 0 {
			t.Fatalf("logcap is gone after SIGHUP (/readyz: %s)\n%s", body, tail(p.Logs(), 20))
		}
		if path != "" {
			writeLines(t, path, from, from+200)
			from += 200
		}
		time.Sleep(5 * time.Millisecond) // the pace of the writer, not a wait for a condition
	}
	return from
}

// SIGHUP with a sink added and one removed while lines are written into the tailed file:
// the sink that exists throughout has every line exactly once, in order; the new sink gets
// every line too (its durable consumer starts at the stream's beginning) once; the removed
// one gets nothing written after the reload. The log line and /readyz say what changed;
// SIGTERM still ends the process with 0.
func TestSIGHUPReloadSinks(t *testing.T) {
	logs, out := t.TempDir(), t.TempDir()
	path := filepath.Join(logs, "app.log")
	n := newNode(t, reloadBody(logs, out, "keep", "old"))
	p := n.start(t)
	dumpLogsOnFailure(t, p)
	js := n.connect(t)

	next := 20_000
	writeLines(t, path, 0, next)
	poll(t, time.Minute, 10*time.Millisecond, func() error {
		if c := countLines(t, filepath.Join(out, "keep.log")); c < next/4 {
			return fmt.Errorf("%d lines in keep", c)
		}
		return nil
	})
	n.rewrite(t, nil, reloadBody(logs, out, "keep", "new"))
	next = sighup(t, p, n.adminPort, `"configuration reloaded"`, 1, path, next)
	oldAfter := countLines(t, filepath.Join(out, "old.log"))
	total := next + 20_000
	writeLines(t, path, next, total)
	if err := waitFor(2*time.Minute, 50*time.Millisecond, func() error {
		for _, s := range []string{"keep", "new"} {
			if c := countLines(t, filepath.Join(out, s+".log")); c < total {
				return fmt.Errorf("%s: %d of %d lines", s, c, total)
			}
			if err := consumerDone(js, "LOGS", s); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	readFileTally(t, filepath.Join(out, "keep.log")).exactlyOnce(t, "keep (throughout)", total)
	readFileTally(t, filepath.Join(out, "new.log")).exactlyOnce(t, "new (added by the reload)", total)
	if c := countLines(t, filepath.Join(out, "old.log")); c != oldAfter {
		t.Errorf("removed sink old wrote %d lines after the reload", c-oldAfter)
	}
	if !strings.Contains(p.Logs(), `"changes":"sinks: added [new], removed [old]"`) {
		t.Errorf("no log line saying what changed")
	}
	if code, body := readyz(t, n.adminPort); code != http.StatusOK || !strings.Contains(body, "sinks: added [new], removed [old]") {
		t.Errorf("/readyz = %d %q", code, body)
	}
	if err, took := p.Signal(syscall.SIGTERM, 15*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	} else {
		t.Logf("%d lines, reload in the middle; SIGTERM → exit 0 in %v", total, took.Round(time.Millisecond))
	}
}

// A config with errors and a change that needs a restart: each SIGHUP is refused with a log
// line (errors with file:line; the keys that need a restart), /readyz stays 200 and says so,
// lines keep flowing under the old config, and SIGTERM still ends the process with 0.
func TestSIGHUPRejected(t *testing.T) {
	logs, out := t.TempDir(), t.TempDir()
	path := filepath.Join(logs, "app.log")
	n := newNode(t, reloadBody(logs, out, "keep"))
	p := n.start(t)
	dumpLogsOnFailure(t, p)
	js := n.connect(t)
	next := sighupCase(t, p, n, path, 0, "has errors", func() {
		n.rewrite(t, nil, reloadBody(logs, out, "keep")+"  - {name: bad, type: nosuchsink, input: logs.>}\n")
	}, `"configuration reload rejected`, n.cfg+":")
	next = sighupCase(t, p, n, path, next, "needs a restart", func() {
		n.rewrite(t, func(h string) string { return h + "memory_limit: 96MiB\nstreams: {logs: {max_age: 1h}}\n" }, reloadBody(logs, out, "keep", "extra"))
	}, `"configuration reload refused: the change needs a restart`, `"keys":["memory_limit","streams.logs.max_age"]`)
	total := next + 5_000
	writeLines(t, path, next, total)
	poll(t, 2*time.Minute, 50*time.Millisecond, func() error {
		if c := countLines(t, filepath.Join(out, "keep.log")); c < total {
			return fmt.Errorf("keep: %d of %d lines", c, total)
		}
		return consumerDone(js, "LOGS", "keep")
	})
	readFileTally(t, filepath.Join(out, "keep.log")).exactlyOnce(t, "keep", total)
	if _, err := os.Stat(filepath.Join(out, "extra.log")); err == nil {
		t.Error("the refused config's sink extra ran")
	}
	if err, _ := p.Signal(syscall.SIGTERM, 15*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

// sighupCase writes lines [from, from+5000), rewrites the config with change, sends SIGHUP
// while writing and waits for the refusal logged with every string of want; /readyz must
// stay 200 and name the refusal. It returns the next line number.
func sighupCase(t *testing.T, p *proctest.Proc, n *node, logsPath string, from int, note string, change func(), want ...string) int {
	t.Helper()
	writeLines(t, logsPath, from, from+5_000)
	change()
	next := sighup(t, p, n.adminPort, want[0], 1, logsPath, from+5_000)
	line := lastLine(p.Logs(), want[0])
	for _, w := range want[1:] {
		if !strings.Contains(line, w) {
			t.Errorf("log line %q does not contain %q", line, w)
		}
	}
	if code, body := readyz(t, n.adminPort); code != http.StatusOK || !strings.Contains(body, note) {
		t.Errorf("/readyz = %d %q, want 200 naming %q", code, body, note)
	}
	return next
}

func lastLine(logs, containing string) string {
	i := strings.LastIndex(logs, containing)
	if i < 0 {
		return ""
	}
	start := strings.LastIndexByte(logs[:i], '\n') + 1
	end := strings.IndexByte(logs[i:], '\n')
	if end < 0 {
		return logs[start:]
	}
	return logs[start : i+end]
}

// SIGHUP that changes a processor's steps and the source's options while lines are written:
// the sink behind the processor has every line exactly once, in order (the processor's
// derived messages keep their LOGS:<seq> ids, its consumer its position), and the log names
// both changes.
func TestSIGHUPReloadProcessor(t *testing.T) {
	logs, out := t.TempDir(), t.TempDir()
	path := filepath.Join(logs, "app.log")
	body := func(env, lineBytes string) string {
		return fmt.Sprintf(`sources:
  - {name: app, type: file, paths: [%q], start_at: beginning, max_chunk_bytes: 64KiB, max_line_bytes: %s}
processors:
  - {name: parsed, input: logs.>, steps: [{set: {fields: {env: %s}}}]}
sinks:
  - {name: viaparsed, type: file, input: parsed.file.>, path: %q, format: raw, batch: {max_entries: 500}}
`, filepath.Join(logs, "*.log"), lineBytes, env, filepath.Join(out, "viaparsed.log"))
	}
	n := newNode(t, body("one", "4KiB"))
	p := n.start(t)
	dumpLogsOnFailure(t, p)
	js := n.connect(t)
	next := 20_000
	writeLines(t, path, 0, next)
	poll(t, time.Minute, 10*time.Millisecond, func() error {
		if c := countLines(t, filepath.Join(out, "viaparsed.log")); c < next/4 {
			return fmt.Errorf("%d lines in viaparsed", c)
		}
		return nil
	})
	n.rewrite(t, nil, body("two", "8KiB"))
	next = sighup(t, p, n.adminPort, `"configuration reloaded"`, 1, path, next)
	total := next + 20_000
	writeLines(t, path, next, total)
	poll(t, 2*time.Minute, 50*time.Millisecond, func() error {
		if c := countLines(t, filepath.Join(out, "viaparsed.log")); c < total {
			return fmt.Errorf("viaparsed: %d of %d lines", c, total)
		}
		return consumerDone(js, "PARSED", "viaparsed")
	})
	readFileTally(t, filepath.Join(out, "viaparsed.log")).exactlyOnce(t, "viaparsed (behind the changed processor)", total)
	if !strings.Contains(p.Logs(), `"changes":"sources: changed [app]; processors: changed [parsed]"`) {
		t.Errorf("no log line naming the changes")
	}
	if err, _ := p.Signal(syscall.SIGTERM, 15*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}
