// logcap as a child process: started on a config, asked over its admin port, stopped.

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/logcap/logcap/modules/lifecycle"
)

type proc struct {
	cmd   *exec.Cmd
	admin string
	logs  *bytes.Buffer
	dir   string
	done  bool // stopped: a second stop does nothing
	keep  bool // stop leaves dir in place
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// start runs `logcap run -c` on body (the config after the common head) in a fresh
// directory and waits for /readyz.
func start(bin, dir string, always bool, body string) (*proc, error) {
	rd, err := os.MkdirTemp(dir, "run-")
	if err != nil {
		return nil, err
	}
	return startIn(bin, rd, always, body)
}

// startIn runs logcap in directory rd (its data_dir is rd/data: a second run in rd finds
// the streams of the first).
func startIn(bin, rd string, always bool, body string) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	sync := "2m"
	if always {
		sync = "always"
	}
	if *cacheExp != "" {
		sync += ", cache_expire: " + *cacheExp
	}
	cfg := fmt.Sprintf("node: bench\ndata_dir: %s\nlog: {level: warn}\nnats:\n  embedded: {listen: none, sync_interval: %s}\nadmin: {listen: 127.0.0.1:%d}\n%s",
		filepath.Join(rd, "data"), sync, port, strings.ReplaceAll(body, "$RUN", rd))
	if *memLimit != "" {
		cfg = "memory_limit: " + *memLimit + "\n" + cfg
	}
	cfgPath := filepath.Join(rd, "logcap.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	p := &proc{admin: fmt.Sprintf("http://127.0.0.1:%d", port), logs: &bytes.Buffer{}, dir: rd}
	p.cmd = exec.Command(bin, "run", "-c", cfgPath)
	p.cmd.Env = append(os.Environ(), strings.Fields(*logcapEnv)...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs // read only after Wait
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("logcap not ready after 30s:\n%s", p.logs)
		}
		time.Sleep(20 * time.Millisecond) // polling readiness of a child process
	}
}

// stop ends logcap with SIGTERM (a clean stop is part of the check) and removes its files.
// A second call does nothing and returns nil.
func (p *proc) stop() error {
	if p.done {
		return nil
	}
	p.done = true
	if !p.keep {
		defer os.RemoveAll(p.dir)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.AfterFunc(30*time.Second, func() { _ = p.cmd.Process.Kill() })
	defer timer.Stop()
	if err := p.cmd.Wait(); err != nil {
		return fmt.Errorf("logcap stop: %w\n%s", err, p.logs)
	}
	return nil
}

// stat is the process's CPU seconds (user+sys) and peak RSS (VmHWM, KiB).
func (p *proc) stat() (float64, int64, error) {
	pid := p.cmd.Process.Pid
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	// fields after "pid (comm) ": state is f[0]; utime is field 14 → f[11], stime f[12]
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // sysconf(_SC_CLK_TCK) on Linux
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	var hwm int64
	for l := range strings.Lines(string(s)) {
		if strings.HasPrefix(l, "VmHWM:") {
			hwm, _ = strconv.ParseInt(strings.Fields(l)[1], 10, 64)
		}
	}
	return float64(ut+st) / clkTck, hwm, nil
}

// since is the time elapsed since t0, with the process's CPU seconds and peak RSS now.
func (p *proc) since(t0 time.Time) (time.Duration, float64, int64, error) {
	el := time.Since(t0)
	cpu, hwm, err := p.stat()
	return el, cpu, hwm, err
}

func (p *proc) metric(name string) (float64, error) {
	var sum float64
	err := p.scrape(func(l string) bool {
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			v, _ := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			sum += v
		}
		return true
	})
	return sum, err
}

// scrape calls line with each line of logcap's /metrics until it returns false. The answer
// is asked for uncompressed: the driver polls every 20–100 ms while waiting, and gzip cost
// logcap ~3 MiB more peak RSS on the idle row and 9% of its CPU in the sink rows (the
// driver's cost, not logcap's; a Prometheus scrape comes every 15–60 s).
func (p *proc) scrape(line func(string) bool) error {
	req, err := http.NewRequest(http.MethodGet, p.admin+"/metrics", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && line(sc.Text()) {
	}
	return sc.Err()
}

func (p *proc) fetch(path, to string) error {
	resp, err := http.Get(p.admin + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	f, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// startProfile asks the running logcap for a CPU profile beside the measurement; the result
// arrives on done. The only goroutine of the driver, owned by a lifecycle group like every other.
func startProfile(p *proc, to string, seconds int, done chan<- error) {
	g := lifecycle.New("bench", zap.NewNop())
	_ = g.Go("bench: cpu profile", func(context.Context) error {
		done <- p.fetch(fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds), to)
		return nil
	})
}
