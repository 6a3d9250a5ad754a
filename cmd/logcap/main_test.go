package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/logcap/logcap/internal/interop"
	"github.com/logcap/logcap/internal/proctest"
	"github.com/logcap/logcap/modules/natsd"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Every broken config makes `logcap check` and `logcap run` exit 2 with one line per error,
// each naming the file and line (run exited 1 for an error in a source's or sink's options).
func TestCheckBrokenConfigs(t *testing.T) {
	files, err := filepath.Glob("../../config/testdata/broken/*.yaml")
	if err != nil || len(files) < 15 {
		t.Fatalf("want at least 15 broken configs, found %d (%v)", len(files), err)
	}
	// and configs whose errors only a component's own options decoder finds
	more, _ := filepath.Glob("testdata/broken/*.yaml")
	files = append(files, more...)
	t.Setenv("LOGCAP_TEST_UNSET", "")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			for _, cmd := range []string{"check", "run"} {
				var stdout, stderr bytes.Buffer
				code := run([]string{cmd, "-c", f}, &stdout, &stderr)
				if code != exitUsage {
					t.Fatalf("%s: exit %d, want %d; stderr %q", cmd, code, exitUsage, stderr.String())
				}
				lines := strings.Split(strings.TrimSpace(strings.TrimPrefix(stderr.String(), "logcap: ")), "\n")
				for _, l := range lines {
					if !strings.HasPrefix(l, f+":") {
						t.Errorf("%s: error line %q does not start with %q", cmd, l, f+":")
					}
				}
				if stdout.Len() != 0 {
					t.Errorf("%s: printed to stdout for a broken file: %q", cmd, stdout.String())
				}
			}
		})
	}
}

func TestCheckPrintsMaskedConfig(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "logcap.yaml")
	if err := os.WriteFile(f, []byte("nats:\n  urls: [nats://127.0.0.1:4222]\n  user: u\n  password: ${SECRET_PW}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SECRET_PW", "hunter2")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "-c", f}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if strings.Contains(stdout.String(), "hunter2") || !strings.Contains(stdout.String(), "password: '****'") && !strings.Contains(stdout.String(), `password: "****"`) {
		t.Fatalf("secret not masked:\n%s", stdout.String())
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"bogus"}, {"run", "--nope"}, {"check"}, {"run", "-c", "/does/not/exist.yaml"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, exitUsage, stderr.String())
		}
	}
	var stdout bytes.Buffer
	if code := run([]string{"version"}, &stdout, io.Discard); code != exitOK || !strings.HasPrefix(stdout.String(), "logcap ") {
		t.Fatalf("version: %d %q", code, stdout.String())
	}
}

// A real `logcap run` process: ready, readable with the nats CLI, stopped by SIGTERM with
// exit 0 inside shutdown_timeout.
func TestRunProcess(t *testing.T) {
	dir := t.TempDir()
	natsPort, adminPort := proctest.FreePort(t), proctest.FreePort(t)
	cfg := filepath.Join(dir, "logcap.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `node: ci
data_dir: %s
shutdown_timeout: 5s
nats: {embedded: {listen: "127.0.0.1:%d"}}
admin: {listen: "127.0.0.1:%d"}
`, filepath.Join(dir, "data"), natsPort, adminPort), 0o600); err != nil {
		t.Fatal(err)
	}
	p := proctest.Start(t, cfg)
	p.WaitReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", adminPort), 60*time.Second)

	if nats, err := exec.LookPath("nats"); err == nil {
		// As the read-only identity, with the password logcap generated in data_dir/auth.
		url := interop.UserURL(t, fmt.Sprintf("nats://127.0.0.1:%d", natsPort), filepath.Join(dir, "data"), natsd.ReaderUser)
		out, err := exec.Command(nats, "-s", url, "--no-context", "stream", "ls", "-n").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "LOGS") || !strings.Contains(string(out), "DEADLETTER") {
			t.Fatalf("nats stream ls: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") != "" {
		t.Fatal("the nats CLI is not in PATH (make tools installs it into ./bin)")
	}

	err, took := p.Signal(syscall.SIGTERM, 6*time.Second)
	if err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.Logs())
	}
	t.Logf("SIGTERM → exit 0 in %v", took.Round(time.Millisecond))
	first, _, _ := strings.Cut(p.Logs(), "\n")
	if !strings.Contains(first, "configuration loaded") {
		t.Errorf("first log line %q", first)
	}
}

// `check` warns (exit 0) when LOGS' max_bytes cannot fit the free space of data_dir: the
// disk would fill before the stream's limit, and capture would be held.
func TestCheckWarnsMaxBytesOverFreeSpace(t *testing.T) {
	for _, tc := range []struct {
		maxBytes string
		warn     bool
	}{
		{"64MiB", false},
		{"1000000TiB", true},
	} {
		t.Run(tc.maxBytes, func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "logcap.yaml")
			cfg := fmt.Sprintf("data_dir: %s\nstreams: {logs: {max_bytes: %s}}\n", filepath.Join(dir, "not-yet", "data"), tc.maxBytes)
			if err := os.WriteFile(f, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			if code := run([]string{"check", "-c", f}, &stdout, &stderr); code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			warned := strings.Contains(stderr.String(), "warning: streams.logs.max_bytes "+tc.maxBytes+" does not fit the free space of data_dir")
			if warned != tc.warn {
				t.Errorf("warned %v, want %v: %q", warned, tc.warn, stderr.String())
			}
		})
	}
}
