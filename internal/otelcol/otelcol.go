// Package otelcol runs a real OpenTelemetry Collector (./bin/otelcol, which `make tools`
// builds from tools/otelcol: the OTLP receiver and OTLP/HTTP exporter of core v0.165.0, the
// filelog receiver and file exporter of contrib v0.165.1) for the otlp sink's and source's
// tests: with a config written into a temporary directory, on free loopback ports, its own
// telemetry off.
//
// Without the binary a test skips, loudly; with LOGCAP_REQUIRE_OTELCOL=1 (CI) it fails.
// The Collector is a child process whose output goes to a file: no goroutine is started here.
package otelcol

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logcap/logcap/internal/proctest"
	"github.com/logcap/logcap/otlp"
)

// ready is what the Collector logs once every pipeline runs.
const ready = "Everything is ready"

// Telemetry is the service.telemetry block every config should carry: the Collector's own
// metrics would otherwise listen on :8888, which parallel tests share.
const Telemetry = `  telemetry:
    metrics:
      level: none
    logs:
      level: info
`

// Collector is one Collector process.
type Collector struct {
	// Dir is the process's directory: its config, its log, and whatever the test puts there
	// (the file exporter's output, the filelog receiver's input).
	Dir string

	bin, cfg, logPath string
	cmd               *exec.Cmd
	logFile           *os.File
}

// Binary finds otelcol on PATH or in the repository's ./bin; it skips the test (or fails
// it, with LOGCAP_REQUIRE_OTELCOL=1) when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("otelcol"); err == nil {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "bin", "otelcol")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	msg := "otelcol not found on PATH nor in ./bin: run `make tools` (builds tools/otelcol)"
	if os.Getenv("LOGCAP_REQUIRE_OTELCOL") == "1" {
		t.Fatal(msg + " (LOGCAP_REQUIRE_OTELCOL=1)")
	}
	t.Skip("SKIPPED, NOT TESTED AGAINST THE REAL OPENTELEMETRY COLLECTOR: " + msg)
	return ""
}

// FreeAddr returns a loopback host:port nobody listens on right now (proctest.FreePort:
// not one handed out before, such as the ports of the logcap it is given to).
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))
}

// New prepares a Collector in a fresh directory; config is its YAML, with {{DIR}} standing
// for that directory. Start runs it.
func New(t testing.TB, config string) *Collector {
	t.Helper()
	c := &Collector{bin: Binary(t), Dir: t.TempDir()}
	c.cfg = filepath.Join(c.Dir, "otelcol.yaml")
	c.logPath = filepath.Join(c.Dir, "otelcol.log")
	if err := os.WriteFile(c.cfg, []byte(strings.ReplaceAll(config, "{{DIR}}", c.Dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("otelcol's log (last lines):\n%s", lastLines(c.Log(), 60))
		}
		c.Stop(t)
	})
	return c
}

// Start runs the Collector and waits until it logs that every pipeline runs.
func (c *Collector) Start(t testing.TB) {
	t.Helper()
	if c.cmd != nil {
		t.Fatal("otelcol: Start while running")
	}
	f, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	c.logFile = f
	from := c.logSize()
	c.cmd = exec.Command(c.bin, "--config", c.cfg)
	c.cmd.Stdout, c.cmd.Stderr = f, f // *os.File outputs: exec starts no copying goroutine
	if err := c.cmd.Start(); err != nil {
		_ = f.Close()
		c.cmd, c.logFile = nil, nil
		t.Fatalf("otelcol: start %s: %v", c.bin, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(c.Log()[from:], ready) {
		if exited(c.cmd.Process.Pid) || time.Now().After(deadline) {
			log := c.Log()
			c.Stop(t)
			t.Fatalf("otelcol did not get ready; its log:\n%s", lastLines(log, 60))
		}
		time.Sleep(20 * time.Millisecond) // polling a child's log file: nothing to wait on
	}
}

// exited reports whether the child pid is gone or a zombie (exited, not waited for yet):
// a signal 0 still reaches a zombie.
func exited(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z'
}

// Stop ends the process with SIGTERM (its exporters flush) and waits for it.
func (c *Collector) Stop(t testing.TB) {
	t.Helper()
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	_ = c.cmd.Wait()
	_ = c.logFile.Close()
	c.cmd, c.logFile = nil, nil
}

// Log is what the Collector printed so far.
func (c *Collector) Log() string {
	b, _ := os.ReadFile(c.logPath)
	return string(b)
}

func (c *Collector) logSize() int {
	st, err := os.Stat(c.logPath)
	if err != nil {
		return 0
	}
	return int(st.Size())
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ReadFileExport reads what the file exporter wrote to path (format json: one OTLP/JSON
// export request per line); a missing file is no requests yet.
func ReadFileExport(t testing.TB, path string) []*otlp.Logs {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []*otlp.Logs
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 1<<20), 256<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		l, err := otlp.DecodeJSON(sc.Bytes())
		if err != nil {
			// The exporter may be writing the last line right now.
			break
		}
		out = append(out, l)
	}
	return out
}
