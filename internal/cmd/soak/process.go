package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/logcap/logcap/modules/lifecycle"
)

// process is the logcap under soak.
type process struct {
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	group   *lifecycle.Group
	exited  chan struct{}
	exitErr error
}

func startProcess(bin, cfg, logPath string) (*process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &process{logPath: logPath, logFile: f, exited: make(chan struct{}), group: lifecycle.New("soak-proc", zap.NewNop())}
	p.cmd = exec.Command(bin, "run", "-c", cfg)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	_ = p.group.Go("soak: wait for logcap", func(context.Context) error {
		p.exitErr = p.cmd.Wait()
		close(p.exited)
		return nil
	})
	return p, nil
}

func (p *process) waitReady(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if resp, err := httpClient.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("logcap exited before ready: %v; see %s", p.exitErr, p.logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after %v; see %s", url, timeout, p.logPath)
}

// terminate sends SIGTERM and waits up to timeout: exit code and how long the stop took.
func (p *process) terminate(timeout time.Duration) (int, time.Duration, error) {
	began := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, 0, fmt.Errorf("SIGTERM logcap: %w", err)
	}
	select {
	case <-p.exited:
	case <-time.After(timeout):
		return 0, 0, fmt.Errorf("logcap did not exit within %v of SIGTERM; see %s", timeout, p.logPath)
	}
	took := time.Since(began)
	var ee *exec.ExitError
	if errors.As(p.exitErr, &ee) {
		return ee.ExitCode(), took, nil
	}
	return 0, took, p.exitErr
}

func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	_ = p.group.Stop(context.Background())
	p.logFile.Close()
}

func (p *process) countLog(needle string) int {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte(needle))
}

func freePorts(n int) ([]int, error) {
	var out []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

func (d *driver) writeConfig() (string, error) {
	nats := fmt.Sprintf("nats: {embedded: {listen: \"127.0.0.1:%d\"}}", d.natsPort)
	if d.nats != nil {
		nats = fmt.Sprintf("nats: {urls: [\"nats://127.0.0.1:%d\"]}", d.natsPort)
	}
	docker := ""
	if d.docker != nil {
		docker = fmt.Sprintf("  - {name: containers, type: docker, host: %q, include_names: [\"%s-*\"], reconcile_interval: 10s}\n",
			d.docker.host, d.docker.prefix)
	}
	cfg := fmt.Sprintf(`# written by the soak driver
node: soak
data_dir: %s
shutdown_timeout: 10s
log: {level: info, format: json}
%s
admin: {listen: "127.0.0.1:%d"}
sources:
  - {name: app, type: file, paths: [%q], start_at: beginning}
%sprocessors:
  - name: parsed
    input: logs.>
    steps:
      - json: {}
      - set: {fields: {soak: "yes"}}
sinks:
  - {name: archive, type: file, input: parsed.file.>, path: %q, format: json}
  - {name: hook, type: http, input: parsed.>, url: "http://127.0.0.1:%d/ingest", timeout: 5s, batch: {max_wait: 200ms}}
`, filepath.Join(d.dir, "data"), nats, d.adminPort, d.files.path, docker, filepath.Join(d.dir, "out", "archive.log"), d.httpPort)
	path := filepath.Join(d.dir, "logcap.yaml")
	return path, os.WriteFile(path, []byte(cfg), 0o644)
}
