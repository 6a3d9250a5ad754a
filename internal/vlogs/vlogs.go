// Package vlogs runs a real VictoriaLogs (the victoria-logs binary that `make tools` installs
// into ./bin) for the sinks' tests: on loopback, with a temporary -storageDataPath and a free
// -httpListenAddr, and queried through LogsQL (/select/logsql/query) to count and read what
// arrived. It accepts the Loki push API (/insert/loki), the Elasticsearch _bulk API
// (/insert/elasticsearch) and JSON lines (/insert/jsonline).
//
// Without the binary a test skips, loudly; with LOGCAP_REQUIRE_VICTORIALOGS=1 (CI) it fails.
// The server is a child process whose output goes to a file: no goroutine is started here.
package vlogs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/logcap/logcap/internal/proctest"
)

// Server is one VictoriaLogs process.
type Server struct {
	// URL is the server's base, e.g. http://127.0.0.1:9428.
	URL string
	// Addr is its listen address, kept across Stop and Restart.
	Addr string

	bin, dir, logPath string
	cmd               *exec.Cmd
	logFile           *os.File
	client            *http.Client // its own pool: Stop closes its connections (goleak)
}

// Binary finds victoria-logs on PATH or in the repository's ./bin; it skips the test (or
// fails it, with LOGCAP_REQUIRE_VICTORIALOGS=1) when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("victoria-logs"); err == nil {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "bin", "victoria-logs")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	msg := "victoria-logs not found on PATH nor in ./bin: run `make tools` (go install github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@v1.52.2)"
	if os.Getenv("LOGCAP_REQUIRE_VICTORIALOGS") == "1" {
		t.Fatal(msg + " (LOGCAP_REQUIRE_VICTORIALOGS=1)")
	}
	t.Skip("SKIPPED, NOT TESTED AGAINST A REAL LOG STORE: " + msg)
	return ""
}

// Start runs a VictoriaLogs with an empty store; it is stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{bin: Binary(t), dir: t.TempDir(), client: &http.Client{Transport: &http.Transport{}}}
	s.logPath = filepath.Join(s.dir, "victoria-logs.log")
	s.Addr = fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t)) // not one given out before (the logcap's)
	s.URL = "http://" + s.Addr
	t.Cleanup(func() { s.Stop(t) })
	s.Restart(t)
	return s
}

// Restart starts the process again on the same address and store (after Stop).
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.cmd != nil {
		t.Fatal("victoria-logs: Restart while running")
	}
	f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	s.logFile = f
	s.cmd = exec.Command(s.bin,
		"-storageDataPath="+filepath.Join(s.dir, "data"),
		"-httpListenAddr="+s.Addr,
		"-retentionPeriod=100y", // tests use fixed timestamps of 2023
		"-loggerLevel=WARN",
	)
	// *os.File outputs: exec starts no copying goroutine.
	s.cmd.Stdout, s.cmd.Stderr = f, f
	if err := s.cmd.Start(); err != nil {
		_ = f.Close()
		s.cmd, s.logFile = nil, nil
		t.Fatalf("victoria-logs: start %s: %v", s.bin, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := s.client.Get(s.URL + "/health")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if s.cmd.Process.Signal(syscall.Signal(0)) != nil || time.Now().After(deadline) {
			log, _ := os.ReadFile(s.logPath)
			s.Stop(t)
			t.Fatalf("victoria-logs on %s did not answer /health (last error %v); its log:\n%s", s.Addr, err, log)
		}
		<-tick.C
	}
}

// Stop ends the process (SIGTERM: it flushes its store) and waits for it.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
	s.client.CloseIdleConnections()
	_ = s.logFile.Close()
	s.cmd, s.logFile = nil, nil
}

// Flush makes everything ingested so far visible to queries (/internal/force_flush).
func (s *Server) Flush(t testing.TB) {
	t.Helper()
	resp, err := s.client.Get(s.URL + "/internal/force_flush")
	if err != nil {
		t.Fatalf("victoria-logs: force_flush: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("victoria-logs: force_flush: status %d", resp.StatusCode)
	}
}

// Query runs a LogsQL query (after a Flush) and returns its rows, every field as a string.
func (s *Server) Query(t testing.TB, query string) []map[string]string {
	t.Helper()
	rows, err := s.TryQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TryQuery is Query without the test: for polling.
func (s *Server) TryQuery(query string) ([]map[string]string, error) {
	if resp, err := s.client.Get(s.URL + "/internal/force_flush"); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/select/logsql/query",
		bytes.NewBufferString(url.Values{"query": {query}}.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("victoria-logs: query %q: %w", query, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("victoria-logs: query %q: status %d: %s", query, resp.StatusCode, b)
	}
	var rows []map[string]string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var row map[string]string
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			return nil, fmt.Errorf("victoria-logs: query %q: row %.200q: %w", query, sc.Bytes(), err)
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("victoria-logs: query %q: read: %w", query, err)
	}
	return rows, nil
}

// Count is the number of log entries matching filter (LogsQL, e.g. `*` or `source:"a.log"`).
func (s *Server) Count(t testing.TB, filter string) int {
	t.Helper()
	n, err := s.TryCount(filter)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TryCount is Count without the test: for polling.
func (s *Server) TryCount(filter string) (int, error) {
	rows, err := s.TryQuery(filter + " | stats count() as n")
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 {
		return 0, fmt.Errorf("victoria-logs: count %q: %d rows", filter, len(rows))
	}
	n, err := strconv.Atoi(rows[0]["n"])
	if err != nil {
		return 0, fmt.Errorf("victoria-logs: count %q: %w", filter, err)
	}
	return n, nil
}

// CPU is the CPU time (user + system) the running process has used so far, from
// /proc/<pid>/stat: benchmarks put the store's cost beside the sink's.
func (s *Server) CPU() (time.Duration, error) {
	if s.cmd == nil {
		return 0, fmt.Errorf("victoria-logs: not running")
	}
	return ProcCPU(s.cmd.Process.Pid)
}

// ProcCPU is the CPU time (user + system) process pid has used, from /proc/<pid>/stat.
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu of process %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces: count fields after its closing paren.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("cpu of process %d: unexpected /proc stat %.80q", pid, b)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu of process %d: unexpected /proc stat %.80q", pid, b)
	}
	// Fields 14 and 15 (utime, stime) are the 12th and 13th after the paren, in clock
	// ticks; USER_HZ is 100 on every Linux Go supports.
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu of process %d: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}
