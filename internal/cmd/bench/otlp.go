// The OpenTelemetry rows: logcap's otlp sink and otlp source against the real Collector
// (bin/otelcol, `make tools`), with the Collector alone on the same input as the peer.

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/logcap/logcap/otlp"
)

// collector is a running otelcol with its own metrics on a free port.
type collector struct {
	cmd     *exec.Cmd
	dir     string
	metrics string
	log     *os.File
}

func startCollector(bin, dir, body string) (*collector, error) {
	cd, err := os.MkdirTemp(dir, "otelcol-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := strings.ReplaceAll(body, "$DIR", cd) + fmt.Sprintf(`  telemetry:
    metrics:
      level: basic
      readers:
        - pull: {exporter: {prometheus: {host: 127.0.0.1, port: %d}}}
`, port)
	path := filepath.Join(cd, "otelcol.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	c := &collector{dir: cd, metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", port)}
	if c.log, err = os.Create(filepath.Join(cd, "otelcol.log")); err != nil {
		return nil, err
	}
	c.cmd = exec.Command(bin, "--config", path)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(c.log.Name())
		if bytes.Contains(b, []byte("Everything is ready")) {
			return c, nil
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("otelcol not ready after 60s:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// counter sums the Collector's metric lines that start with name.
func (c *collector) counter(name string) float64 {
	resp, err := http.Get(c.metrics)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, name) {
			v, _ := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			sum += v
		}
	}
	return sum
}

func (c *collector) cpu() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(ut+st) / 100
}

func (c *collector) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.AfterFunc(30*time.Second, func() { _ = c.cmd.Process.Kill() })
	defer timer.Stop()
	_ = c.cmd.Wait()
	_ = c.log.Close()
	_ = os.RemoveAll(c.dir)
}

// checkExport checks that the file exporter's OTLP/JSON lines hold every line once as a body.
func checkExport(path string, n int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	t := &tally{seen: make([]bool, n)}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 512<<20)
	for sc.Scan() {
		l, err := otlp.DecodeJSON(sc.Bytes())
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for _, r := range l.Resources {
			for _, s := range r.Scopes {
				for _, rec := range s.Records {
					body, _ := rec.Body.(string)
					t.add([]byte(body))
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return t.result()
}

const (
	otlpExported = "otelcol_exporter_sent_log_records"
	fileExporter = "exporters:\n  file: {path: $DIR/out.json}\n"
)

// waitFor polls cond every 50 ms for up to 10 minutes.
func waitFor(what string, cond func() bool) error {
	deadline := time.Now().Add(10 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not done after 10m", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// otelcolAlone is the peer: the Collector's filelog receiver into its file exporter, with
// the receiver's operators (e.g. `[{type: json_parser}]`, the json processor's peer).
func otelcolAlone(col, dir, input string, size int64, n int, name, operators string) (row, error) {
	ops := ""
	if operators != "" {
		ops = ", operators: " + operators
	}
	c, err := startCollector(col, dir, "receivers:\n  file_log: {include: [$DIR/in/*.log], start_at: beginning"+ops+"}\n"+fileExporter+
		"service:\n  pipelines: {logs: {receivers: [file_log], exporters: [file]}}\n")
	if err != nil {
		return row{}, err
	}
	defer c.stop()
	if err := os.MkdirAll(filepath.Join(c.dir, "in"), 0o755); err != nil {
		return row{}, err
	}
	cpu0, load, t0 := c.cpu(), loadavg(), time.Now()
	if err := os.Link(input, filepath.Join(c.dir, "in", "bench.log")); err != nil {
		return row{}, err
	}
	if err := waitFor(name, func() bool { return c.counter(otlpExported) >= float64(n) }); err != nil {
		return row{}, err
	}
	el, cpu := time.Since(t0), c.cpu()-cpu0
	fmt.Fprintf(os.Stderr, "bench:   %s: cpu %.2f s (%.2f → %.2f)\n", name, cpu, cpu0, cpu+cpu0)
	if err := checkExport(filepath.Join(c.dir, "out.json"), n); err != nil {
		return row{}, fmt.Errorf("%s: %w", name, err)
	}
	return row{name: name, lines: n, bytes: size, elapsed: el, cpu: cpu, load: load, note: "all lines once; CPU is the Collector's"}, nil
}

// otlpSinkRow: file → LOGS → otlp sink → the Collector's OTLP receiver → file exporter.
func otlpSinkRow(bin, col, dir, input string, size int64, n int) (row, error) {
	const name = "file → LOGS → otlp sink → otelcol (otlp → file)"
	addr, err := freePort()
	if err != nil {
		return row{}, err
	}
	c, err := startCollector(col, dir, fmt.Sprintf("receivers:\n  otlp: {protocols: {http: {endpoint: 127.0.0.1:%d}}}\n", addr)+fileExporter+
		"service:\n  pipelines: {logs: {receivers: [otlp], exporters: [file]}}\n")
	if err != nil {
		return row{}, err
	}
	defer c.stop()
	watch, err := os.MkdirTemp(dir, "watch-")
	if err != nil {
		return row{}, err
	}
	defer os.RemoveAll(watch)
	p, err := start(bin, dir, false, fmt.Sprintf("sources:\n  - {name: app, type: file, paths: [%q], start_at: beginning}\n"+
		"sinks:\n  - {name: otel, type: otlp, input: logs.>, url: \"http://127.0.0.1:%d\"}\n", filepath.Join(watch, "*.log"), addr))
	if err != nil {
		return row{}, err
	}
	defer p.stop()
	time.Sleep(500 * time.Millisecond) // the consumers bind: not part of the measure
	cpu0, _, err := p.stat()
	if err != nil {
		return row{}, err
	}
	ccpu0, load, t0 := c.cpu(), loadavg(), time.Now()
	if err := os.Link(input, filepath.Join(watch, "bench.log")); err != nil {
		return row{}, err
	}
	if err := waitFor(name, func() bool { return c.counter(otlpExported) >= float64(n) }); err != nil {
		return row{}, err
	}
	el, cpu1, hwm, err := p.since(t0)
	if err != nil {
		return row{}, err
	}
	ccpu := c.cpu() - ccpu0
	if err := checkExport(filepath.Join(c.dir, "out.json"), n); err != nil {
		return row{}, fmt.Errorf("%s: %w", name, err)
	}
	return row{name: name, lines: n, bytes: size, elapsed: el, cpu: cpu1 - cpu0, rssKiB: hwm, load: load,
		note: fmt.Sprintf("all lines once; CPU is logcap's (the Collector's: %.1f s)", ccpu)}, p.stop()
}

// otlpSourceRow: the Collector's filelog → otlp_http → logcap's otlp source → LOGS → file sink.
func otlpSourceRow(bin, col, dir, input string, size int64, n int) (row, error) {
	const name = "otelcol file_log → otlp_http → otlp source → LOGS"
	addr, err := freePort()
	if err != nil {
		return row{}, err
	}
	p, err := start(bin, dir, false, fmt.Sprintf("sources:\n  - {name: otel, type: otlp, listen: \"127.0.0.1:%d\"}\n"+
		"sinks:\n  - {name: out, type: file, input: logs.otlp.>, path: $RUN/out.log, format: raw}\n", addr))
	if err != nil {
		return row{}, err
	}
	defer p.stop()
	// The filelog receiver retries when the exporter's queue is full instead of dropping
	// (the Collector's default drops, and says so in its log).
	c, err := startCollector(col, dir, "receivers:\n  file_log: {include: [$DIR/in/*.log], start_at: beginning, retry_on_failure: {enabled: true}}\n"+
		fmt.Sprintf("exporters:\n  otlp_http: {endpoint: \"http://127.0.0.1:%d\", retry_on_failure: {max_elapsed_time: 10m}}\n", addr)+
		"service:\n  pipelines: {logs: {receivers: [file_log], exporters: [otlp_http]}}\n")
	if err != nil {
		return row{}, err
	}
	defer c.stop()
	if err := os.MkdirAll(filepath.Join(c.dir, "in"), 0o755); err != nil {
		return row{}, err
	}
	cpu0, _, err := p.stat()
	if err != nil {
		return row{}, err
	}
	ccpu0, load, t0 := c.cpu(), loadavg(), time.Now()
	if err := os.Link(input, filepath.Join(c.dir, "in", "bench.log")); err != nil {
		return row{}, err
	}
	out := filepath.Join(p.dir, "out.log")
	if err := waitFor(name, func() bool { v, err := p.metric("logcap_otlp_records_total"); return err == nil && v >= float64(n) }); err != nil {
		return row{}, err
	}
	// The row ends when LOGS holds every record (the source's work); the file sink only
	// serves the check that each line is there once.
	el, cpu1, hwm, err := p.since(t0)
	if err != nil {
		return row{}, err
	}
	ccpu := c.cpu() - ccpu0
	if err := waitFor(name, func() bool { fi, err := os.Stat(out); return err == nil && fi.Size() >= size }); err != nil {
		return row{}, err
	}
	if err := checkFile(out, n); err != nil {
		return row{}, fmt.Errorf("%s: %w", name, err)
	}
	return row{name: name, lines: n, bytes: size, elapsed: el, cpu: cpu1 - cpu0, rssKiB: hwm, load: load,
		note: fmt.Sprintf("all lines once (checked through a file sink); CPU is logcap's, that sink's included (the Collector's: %.1f s)", ccpu)}, p.stop()
}
