package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The sink rows: each sink alone (LOGS filled first by a logcap with only the file source,
// which then stops), writing every line into a real VictoriaLogs on loopback (it takes the
// Loki push API, the Elasticsearch _bulk API and JSON lines), with the file sink of the same
// run beside them. The clock runs from the sink's first accepted entry to its last (the
// process's start is not the sink's cost); logcap's CPU and the store's (from /proc) are
// taken at both ends. The store is then asked (LogsQL) whether it holds every line.

// sinkCase is one sink row: its type and its mapping's keys besides name and input.
type sinkCase struct {
	key, typ, keys string
}

var sinkCases = []sinkCase{
	{"file", "file", "path: $RUN/$SINK.log, format: raw"},
	{"loki", "loki", "url: $VL/insert"},
	{"elasticsearch", "elasticsearch", "url: '$VL/insert/elasticsearch?_msg_field=message&_time_field=@timestamp&_stream_fields=source', index: logs"},
	{"http", "http", "url: '$VL/insert/jsonline?_msg_field=message&_time_field=time&_stream_fields=source'"},
}

// sinks fills LOGS once, then measures each sink (best of -runs) into a fresh store.
func (b *bench) sinks() error {
	if !want("sinks") {
		return nil
	}
	vlBin, err := victoriaLogs(b.bin)
	if err != nil {
		return err
	}
	data, err := fillLogs(b.bin, b.dir, b.input, *nLines)
	if err != nil {
		return err
	}
	defer os.RemoveAll(data)
	for _, c := range sinkCases {
		if !slices.Contains(strings.Split(*sinkRows, ","), c.key) {
			continue
		}
		run := 0 // each run's sink has a name of its own, so it reads LOGS from the start
		if err := b.best(c.key+" sink", func() (row, error) {
			run++
			return sinkRun(b.bin, vlBin, b.dir, data, c, b.size, *nLines, run)
		}); err != nil {
			return err
		}
	}
	return nil
}

// victoriaLogs finds the store: beside the logcap binary (make tools puts both into ./bin),
// else on PATH.
func victoriaLogs(bin string) (string, error) {
	p := filepath.Join(filepath.Dir(bin), "victoria-logs")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if p, err := exec.LookPath("victoria-logs"); err == nil {
		return p, nil
	}
	return "", errors.New("sink rows: victoria-logs not found beside the logcap binary nor on PATH (make tools installs it; -only to skip the sink rows)")
}

// fillLogs runs a logcap with only the file source until LOGS holds every line, stops it,
// and returns its directory (its data_dir is what the sink runs read).
func fillLogs(bin, dir, input string, lines int) (string, error) {
	rd, err := os.MkdirTemp(dir, "sinks-")
	if err != nil {
		return "", err
	}
	watch := filepath.Join(rd, "watch")
	if err := os.MkdirAll(watch, 0o755); err != nil {
		return "", err
	}
	if err := os.Link(input, filepath.Join(watch, "bench.log")); err != nil {
		return "", err
	}
	p, err := startIn(bin, rd, false, sinkSource(rd))
	if err != nil {
		return "", err
	}
	p.keep = true
	t0 := time.Now()
	for {
		v, err := p.metric("logcap_filemon_lines_total")
		if err == nil && v >= float64(lines) {
			break
		}
		if time.Since(t0) > 10*time.Minute {
			p.stop()
			return "", fmt.Errorf("sink rows: LOGS has %.0f of %d lines after 10m", v, lines)
		}
		time.Sleep(50 * time.Millisecond) // polling a child's metric
	}
	fmt.Fprintf(os.Stderr, "bench: LOGS filled with %d lines in %v for the sink rows\n", lines, time.Since(t0).Round(time.Millisecond))
	return rd, p.stop()
}

// sinkSource is the fill's source; the sink runs keep it (same streams, nothing new to read).
func sinkSource(rd string) string {
	return fmt.Sprintf("sources:\n  - {name: app, type: file, paths: [%q], start_at: beginning}\n", filepath.Join(rd, "watch", "*.log"))
}

// sinkRun measures one run of one sink: a sink of its own name, so it reads LOGS from the
// start; a store of its own.
func sinkRun(bin, vlBin, dir, data string, c sinkCase, size int64, lines, run int) (row, error) {
	name := fmt.Sprintf("LOGS → %s sink", c.typ)
	sink := fmt.Sprintf("bench_%s_%d", c.key, run)
	keys := strings.NewReplacer("$RUN", data, "$SINK", sink).Replace(c.keys)
	var vl *vlProc
	if c.typ != "file" {
		var err error
		if vl, err = startVL(vlBin, dir); err != nil {
			return row{}, err
		}
		defer vl.stop()
		keys = strings.ReplaceAll(keys, "$VL", vl.url)
		name += " → VictoriaLogs"
	}
	body := sinkSource(data) + fmt.Sprintf("sinks:\n  - {name: %s, type: %s, input: logs.>, %s%s}\n", sink, c.typ, keys, rowOpts(c.typ))
	p, err := startIn(bin, data, false, body)
	if err != nil {
		return row{}, err
	}
	p.keep = true
	defer p.stop()
	load, metric := loadavg(), fmt.Sprintf(`logcap_pipeline_sink_entries_total{sink="%s"}`, sink)
	var t0 time.Time
	var n0, cpu0, store0 float64
	var prof chan error
	deadline := time.Now().Add(3 * time.Minute)
	for {
		n, err := p.metricExact(metric)
		if err != nil {
			return row{}, err
		}
		if t0.IsZero() && n > 0 {
			t0, n0, prof = time.Now(), n, sinkProfile(p, sink)
			if cpu0, _, err = p.stat(); err != nil {
				return row{}, err
			}
			if store0, err = vl.cpu(); err != nil {
				return row{}, err
			}
		}
		if n >= float64(lines) {
			break
		}
		if time.Now().After(deadline) {
			return row{}, fmt.Errorf("%s: %.0f of %d entries after 3m", name, n, lines)
		}
		time.Sleep(20 * time.Millisecond) // polling a child's metric (each poll costs logcap a /metrics; 20 ms is 0.5% of a 4 s run)
	}
	el := time.Since(t0)
	cpu1, hwm, err := p.stat()
	if err == nil && prof != nil {
		err = <-prof
	}
	if err != nil {
		return row{}, err
	}
	store1, err := vl.cpu()
	if err != nil {
		return row{}, err
	}
	// What was measured: the entries after the first Write returned (n0 of them before it).
	frac := (float64(lines) - n0) / float64(lines)
	bytes := int64(float64(size) * frac)
	note, err := sinkCheck(vl, data, sink, lines, float64(bytes), cpu1-cpu0+store1-store0, store1-store0, el)
	if err != nil {
		return row{}, fmt.Errorf("%s: %w", name, err)
	}
	return row{name: name + " (sink only)", lines: int(float64(lines) * frac), bytes: bytes, elapsed: el, cpu: cpu1 - cpu0,
		rssKiB: hwm, load: load, note: note}, nil
}

// sinkCheck checks that the store (or the file sink's file) holds every line once, and
// says what the store's CPU was.
func sinkCheck(vl *vlProc, data, sink string, lines int, bytes, cpuBoth, cpuStore float64, el time.Duration) (string, error) {
	if vl == nil {
		out := filepath.Join(data, sink+".log")
		err := checkFile(out, lines)
		_ = os.Remove(out)
		return "all lines once", err
	}
	if err := vl.checkCount(lines); err != nil {
		return "", err
	}
	// Cores: what logcap and the store used together over the run; well under 2 on this
	// 2-core machine means the rest went to other processes (the load).
	return fmt.Sprintf("store: %.1f CPU-s/GB; logcap+store %.2f cores; all lines once", cpuStore/(bytes/1e9), cpuBoth/el.Seconds()), nil
}

// rowOpts is -store-sink-opts for the rows into the store, else -sink-opts.
func rowOpts(typ string) string {
	if typ != "file" && *storeOpts != "" {
		return ", " + *storeOpts
	}
	return extra()
}

// sinkProfile starts a CPU profile of the sink's run (-profile, for -profile-seconds: no
// longer than the run, or it profiles an idle logcap too); nil without -profile.
func sinkProfile(p *proc, sink string) chan error {
	if *profileDir == "" {
		return nil
	}
	prof := make(chan error, 1)
	if err := os.MkdirAll(*profileDir, 0o755); err != nil {
		prof <- err
		return prof
	}
	startProfile(p, filepath.Join(*profileDir, "cpu-"+sink+".pprof"), *profileSecs, prof)
	return prof
}

// metricExact is the value of one series, e.g. logcap_pipeline_sink_entries_total{sink="x"} (0 when
// it is not there yet).
func (p *proc) metricExact(series string) (v float64, err error) {
	perr := p.scrape(func(l string) bool {
		if strings.HasPrefix(l, series+" ") {
			v, err = strconv.ParseFloat(l[len(series)+1:], 64)
			return false
		}
		return true
	})
	if err == nil {
		err = perr
	}
	return v, err
}

// vlProc is a VictoriaLogs child process with a store of its own.
type vlProc struct {
	cmd      *exec.Cmd
	url, dir string
}

func startVL(bin, dir string) (*vlProc, error) {
	d, err := os.MkdirTemp(dir, "vl-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	v := &vlProc{url: fmt.Sprintf("http://127.0.0.1:%d", port), dir: d}
	log, err := os.Create(filepath.Join(d, "victoria-logs.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	v.cmd = exec.Command(bin, "-storageDataPath="+filepath.Join(d, "data"), fmt.Sprintf("-httpListenAddr=127.0.0.1:%d", port),
		"-retentionPeriod=100y", "-loggerLevel=WARN")
	v.cmd.Stdout, v.cmd.Stderr = log, log
	if err := v.cmd.Start(); err != nil {
		return nil, fmt.Errorf("victoria-logs: %w", err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(v.url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return v, nil
			}
		}
		if time.Now().After(deadline) {
			v.stop()
			return nil, fmt.Errorf("victoria-logs not ready after 30s (last error %v)", err)
		}
		time.Sleep(20 * time.Millisecond) // polling a child's readiness
	}
}

func (v *vlProc) stop() {
	_ = v.cmd.Process.Signal(syscall.SIGTERM)
	_ = v.cmd.Wait()
	_ = os.RemoveAll(v.dir)
}

// cpu is the store's CPU seconds so far (0 without a store: the file sink).
func (v *vlProc) cpu() (float64, error) {
	if v == nil {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", v.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(ut+st) / 100, nil
}

// checkCount asks the store how many entries it holds, and how many distinct lines (each
// is numbered: its start, or the seq of a JSON line, which the loki endpoint parses into
// fields): both must be lines.
func (v *vlProc) checkCount(lines int) error {
	if resp, err := http.Get(v.url + "/internal/force_flush"); err == nil {
		resp.Body.Close()
	}
	q := url.Values{"query": {"* | stats count() as n, count_uniq(_msg, seq) as u"}}
	resp, err := http.PostForm(v.url+"/select/logsql/query", q)
	if err != nil {
		return fmt.Errorf("victoria-logs: query: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var res struct{ N, U string }
	if err := json.Unmarshal(bytes.TrimSpace(b), &res); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("victoria-logs: query: status %d: %s (%v)", resp.StatusCode, b, err)
	}
	if res.N != strconv.Itoa(lines) || res.U != strconv.Itoa(lines) {
		return fmt.Errorf("victoria-logs holds %s entries, %s distinct, want %d of each", res.N, res.U, lines)
	}
	return nil
}
