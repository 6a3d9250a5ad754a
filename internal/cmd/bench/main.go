// Command bench is the end-to-end benchmark of `make bench`: it runs the real logcap binary
// (as users run it: a config file, a child process) on a generated file of numbered
// 200-byte lines and prints one table, with the ceilings of this machine measured in the
// same run (cat, dd with fdatasync, raw JetStream publish). Every run checks that the sink
// received every line exactly once, so a fast wrong result cannot pass.
//
//	go run ./internal/cmd/bench -bin bin/logcap [-lines 2000000] [-short] [-profile DIR]
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const lineLen = 200

var (
	binPath    = flag.String("bin", "bin/logcap", "the logcap binary (make build: no -race)")
	nLines     = flag.Int("lines", 2_000_000, "lines in the generated file")
	workDir    = flag.String("dir", "", "work directory (default: a temporary one, removed at the end)")
	short      = flag.Bool("short", false, "short mode: idle files measured over 30 s, latency over 5 s")
	runs       = flag.Int("runs", 2, "runs of each throughput measurement; the best is reported (the machine is shared)")
	idleFiles  = flag.String("idle-files", "1000,10000", "files of the idle measurements, comma-separated (one row each)")
	backlog    = flag.Int("backlog-lines", 8_000_000, "lines of the backlog row's file (8M: 1.6 GB)")
	latRate    = flag.Int("rate", 10_000, "lines/s of the latency measurement")
	profileDir = flag.String("profile", "", "also run file→file once more with pprof CPU and alloc profiles saved here")
	mdOut      = flag.String("md", "", "also write the table (Markdown) to this file")
	sinkExtra  = flag.String("sink-opts", "", "extra keys of the file sink's flow mapping, e.g. 'batch: {max_entries: 20000}' (exploration; the table uses the defaults)")
	memLimit   = flag.String("memory-limit", "", "logcap's memory_limit (default: logcap's default; 0: none)")
	cacheExp   = flag.String("cache-expire", "", "logcap's nats.embedded.cache_expire (default: logcap's default)")
	logcapEnv  = flag.String("logcap-env", "", "extra environment of logcap, space-separated (exploration: GOGC=50 GOMEMLIMIT=256MiB)")
	only       = flag.String("only", "", "comma-separated subset: ceilings,file,json,sync,backlog,sinks,latency,idle")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type row struct {
	name                    string
	lines                   int
	bytes                   int64
	elapsed                 time.Duration
	cpu                     float64 // seconds, user+sys
	rssKiB                  int64
	p50, p99                time.Duration
	idleCPU                 float64 // % of one core
	note                    string
	load                    string
	latency, idle, noThrput bool
}

func want(what string) bool {
	return *only == "" || slices.Contains(strings.Split(*only, ","), what)
}

func run() error {
	bin, err := filepath.Abs(*binPath)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("logcap binary: %w (run make build)", err)
	}
	dir := *workDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "logcap-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	input := filepath.Join(dir, "input", "bench.log")
	if err := os.MkdirAll(filepath.Dir(input), 0o755); err != nil {
		return err
	}
	size, err := generate(input, 0, *nLines)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: %d lines, %d bytes in %s; load %s\n", *nLines, size, input, loadavg())
	var rows []row
	add := func(r row, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "bench: %s\n", r.String())
		rows = append(rows, r)
		return nil
	}
	best := func(name string, f func() (row, error)) error {
		var b row
		for i := range max(1, *runs) {
			r, err := f()
			if err != nil {
				return fmt.Errorf("%s (run %d): %w", name, i+1, err)
			}
			fmt.Fprintf(os.Stderr, "bench:   run %d: %s\n", i+1, r.String())
			if b.elapsed == 0 || r.elapsed < b.elapsed {
				b = r
			}
		}
		return add(b, nil)
	}
	if want("ceilings") {
		if err := best("cat", func() (row, error) { return catCeiling(input, size) }); err != nil {
			return err
		}
		if err := best("dd", func() (row, error) { return ddCeiling(dir, size) }); err != nil {
			return err
		}
		for _, always := range []bool{false, true} {
			if err := best("publish", func() (row, error) { return publishCeiling(dir, input, size, always) }); err != nil {
				return err
			}
		}
	}
	type variant struct {
		key, name string
		json      bool
		always    bool
	}
	for _, v := range []variant{
		{"file", "file → LOGS → file sink", false, false},
		{"json", "file → LOGS → json processor → PARSED → file sink", true, false},
		{"sync", "file → LOGS → file sink, sync_interval: always", false, true},
		{"backlog", "file → LOGS → file sink, %.1f GB backlog", false, false},
	} {
		if !want(v.key) {
			continue
		}
		in, n, sz := input, *nLines, size
		if v.key == "backlog" {
			// A file far larger than the default run, present before logcap starts reading
			// it: what a restart after an outage, or a new install on a busy node, meets.
			in, n = filepath.Join(dir, "input", "backlog.log"), *backlog
			if sz, err = generate(in, 0, n); err != nil {
				return err
			}
			v.name = fmt.Sprintf(v.name, float64(sz)/1e9)
		}
		if err := best(v.name, func() (row, error) {
			return e2e(bin, dir, in, sz, n, v.name, v.json, v.always, "")
		}); err != nil {
			return err
		}
		if v.key == "backlog" {
			os.Remove(in)
		}
	}
	if want("sinks") {
		if err := sinkRows(bin, dir, input, size, *nLines, add); err != nil {
			return err
		}
	}
	if want("latency") {
		d := 10 * time.Second
		if *short {
			d = 5 * time.Second
		}
		if err := add(latency(bin, dir, *latRate, d)); err != nil {
			return err
		}
	}
	if want("idle") {
		d := 60 * time.Second
		if *short {
			d = 30 * time.Second
		}
		for _, f := range strings.Split(*idleFiles, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return fmt.Errorf("-idle-files: %w", err)
			}
			if err := add(idle(bin, dir, n, d)); err != nil {
				return err
			}
		}
	}
	if *profileDir != "" {
		if err := os.MkdirAll(*profileDir, 0o755); err != nil {
			return err
		}
		if err := add(e2e(bin, dir, input, size, *nLines, "file → LOGS → file sink (profiled, not a result)", false, false, *profileDir)); err != nil {
			return err
		}
		if err := add(e2e(bin, dir, input, size, *nLines, "file → LOGS → json → file sink (profiled, not a result)", true, false, *profileDir)); err != nil {
			return err
		}
	}
	table := render(rows, size)
	fmt.Print(table)
	if *mdOut != "" {
		return os.WriteFile(*mdOut, []byte(table), 0o644)
	}
	return nil
}

func (r row) String() string {
	switch {
	case r.latency:
		return fmt.Sprintf("%s: p50 %v p99 %v (%d lines) load %s", r.name, r.p50, r.p99, r.lines, r.load)
	case r.idle:
		return fmt.Sprintf("%s: %.2f%% of one core, load %s", r.name, r.idleCPU, r.load)
	}
	return fmt.Sprintf("%s: %.0f lines/s %.1f MB/s %.1f cpu-s/GB rss %d KiB in %v, load %s",
		r.name, r.linesPerSec(), r.mbps(), r.cpuPerGB(), r.rssKiB, r.elapsed.Round(time.Millisecond), r.load)
}

func (r row) mbps() float64        { return float64(r.bytes) / 1e6 / r.elapsed.Seconds() }
func (r row) linesPerSec() float64 { return float64(r.lines) / r.elapsed.Seconds() }
func (r row) cpuPerGB() float64    { return r.cpu / (float64(r.bytes) / 1e9) }

func render(rows []row, size int64) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "\n## logcap end-to-end benchmark (%s)\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "machine: %s; input: %d lines of %d B (%.0f MB), JSON and plain text mixed; host %s\n\n",
		machine(), *nLines, lineLen, float64(size)/1e6, host)
	// logcap's rows are compared with what JetStream alone takes in the same run (with the
	// same sync setting): the bytes go through it once, durably, before any sink sees them.
	var pub, pubAlways float64
	for _, r := range rows {
		switch r.name {
		case pubName(false):
			pub = r.mbps()
		case pubName(true):
			pubAlways = r.mbps()
		}
	}
	fmt.Fprintln(&b, "| measurement | lines/s | MB/s | vs raw publish | CPU-s/GB | peak RSS MiB | load (1m) | check |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		switch {
		case r.latency:
			fmt.Fprintf(&b, "| %s | %d | p50 **%.1f ms** | p99 **%.1f ms** | | %s | %s | %s |\n",
				r.name, *latRate, ms(r.p50), ms(r.p99), rss(r.rssKiB), r.load, r.note)
		case r.idle:
			fmt.Fprintf(&b, "| %s | | **%.2f %% of one core** | | | %s | %s | %s |\n", r.name, r.idleCPU, rss(r.rssKiB), r.load, r.note)
		default:
			ratio, ceiling := "", pub
			if strings.Contains(r.name, "always") {
				ceiling = pubAlways
			}
			if ceiling > 0 && r.rssKiB > 0 {
				ratio = fmt.Sprintf("%.2f", r.mbps()/ceiling)
			}
			cpu := fmt.Sprintf("%.1f", r.cpuPerGB())
			if r.noThrput {
				cpu = ""
			}
			fmt.Fprintf(&b, "| %s | %.0f | %.1f | %s | %s | %s | %s | %s |\n",
				r.name, r.linesPerSec(), r.mbps(), ratio, cpu, rss(r.rssKiB), r.load, r.note)
		}
	}
	return b.String()
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
func rss(kib int64) string {
	if kib == 0 {
		return ""
	}
	return fmt.Sprintf("%.0f", float64(kib)/1024)
}

func machine() string {
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.Lines(string(b)) {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(l[strings.Index(l, ":")+1:])
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 1 {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
		}
	}
	var u syscall.Utsname
	_ = syscall.Uname(&u)
	return fmt.Sprintf("%d × %s%s, Linux %s", numCPU(), cpu, mem, cstr(u.Release[:]))
}

func cstr(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "\nprocessor") + strings.Count(string(b[:min(len(b), 9)]), "processor")
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return "?"
	}
	return f[0]
}

// line writes line seq, 199 bytes and '\n': even numbers are JSON objects, odd ones plain
// text; both carry the number at a fixed place, so the check finds it in any sink output.
func line(buf []byte, seq int) []byte {
	const pad = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat"
	start := len(buf)
	if seq%2 == 0 {
		buf = fmt.Appendf(buf, `{"seq":"%010d","level":"info","ts":"2026-11-27T13:56:37.123456Z","user":%d,"msg":"`, seq, seq%977)
		buf = append(buf, pad[:lineLen-3-(len(buf)-start)]...)
		buf = append(buf, `"}`...)
	} else {
		buf = fmt.Appendf(buf, `%010d 2026-11-27T13:56:37.123456Z WARN user=%d `, seq, seq%977)
		buf = append(buf, pad[:lineLen-1-(len(buf)-start)]...)
	}
	return append(buf, '\n')
}

// seqOf finds a line's number (see line).
func seqOf(l []byte) (int, bool) {
	var d []byte
	switch {
	case bytes.HasPrefix(l, []byte(`{"seq":"`)) && len(l) >= 18:
		d = l[8:18]
	case len(l) >= 10:
		d = l[:10]
	default:
		return 0, false
	}
	n := 0
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func generate(path string, from, to int) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var buf []byte
	var n int64
	for i := from; i < to; i++ {
		buf = line(buf[:0], i)
		if len(buf) != lineLen {
			return 0, fmt.Errorf("line %d is %d bytes", i, len(buf))
		}
		w.Write(buf)
		n += int64(len(buf))
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	return n, f.Close()
}

// tally checks that out holds every line of [0, n) exactly once.
type tally struct {
	seen         []bool
	total, dups  int
	bad, missing int
}

func (t *tally) add(l []byte) {
	seq, ok := seqOf(l)
	if !ok || seq >= len(t.seen) {
		t.bad++
		return
	}
	t.total++
	if t.seen[seq] {
		t.dups++
	}
	t.seen[seq] = true
}

func (t *tally) result() error {
	t.missing = 0
	for _, s := range t.seen {
		if !s {
			t.missing++
		}
	}
	if t.missing != 0 || t.dups != 0 || t.bad != 0 || t.total != len(t.seen) {
		return fmt.Errorf("incomplete: want %d lines once; got %d, missing %d, duplicated %d, unparsable %d",
			len(t.seen), t.total, t.missing, t.dups, t.bad)
	}
	return nil
}

func checkFile(path string, n int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	t := &tally{seen: make([]bool, n)}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		t.add(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := t.result(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// ---- ceilings ----

func catCeiling(input string, size int64) (row, error) {
	cmd := exec.Command("cat", input)
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return row{}, err
	}
	defer devnull.Close()
	cmd.Stdout = devnull
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return row{}, fmt.Errorf("cat: %w", err)
	}
	el := time.Since(t0)
	return row{name: "cat FILE > /dev/null", lines: *nLines, bytes: size, elapsed: el, cpu: childCPU(cmd),
		load: loadavg(), note: "ceiling (warm cache)"}, nil
}

func ddCeiling(dir string, size int64) (row, error) {
	out := filepath.Join(dir, "dd.out")
	defer os.Remove(out)
	cmd := exec.Command("dd", "if=/dev/zero", "of="+out, "bs=1M", fmt.Sprintf("count=%d", size>>20), "conv=fdatasync")
	t0 := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		return row{}, fmt.Errorf("dd: %w: %s", err, b)
	}
	el := time.Since(t0)
	n := (size >> 20) << 20
	return row{name: "dd write + fdatasync", lines: int(n / lineLen), bytes: n, elapsed: el, cpu: childCPU(cmd),
		load: loadavg(), note: "ceiling"}, nil
}

func childCPU(cmd *exec.Cmd) float64 {
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// publishCeiling publishes the input's bytes in 256 KiB messages of whole lines to an
// embedded JetStream (file store, R1) with async publish: no conditional header, no ordering
// wait, no reading: what the server can take.
func publishCeiling(dir, input string, size int64, always bool) (row, error) {
	store, err := os.MkdirTemp(dir, "js-")
	if err != nil {
		return row{}, err
	}
	defer os.RemoveAll(store)
	s, err := server.NewServer(&server.Options{JetStream: true, StoreDir: store, DontListen: true, NoSigs: true, SyncAlways: always, MaxPayload: 8 << 20})
	if err != nil {
		return row{}, err
	}
	s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(10 * time.Second) {
		return row{}, errors.New("embedded nats-server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		return row{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(32), jetstream.WithPublishAsyncTimeout(30*time.Second))
	if err != nil {
		return row{}, err
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "LOGS", Subjects: []string{"logs.>"}, Storage: jetstream.FileStorage, MaxMsgSize: 8 << 20}); err != nil {
		return row{}, err
	}
	data, err := os.ReadFile(input)
	if err != nil {
		return row{}, err
	}
	const chunk = (256 << 10) / lineLen * lineLen
	t0, cpu0 := time.Now(), selfCPU()
	for off := 0; off < len(data); off += chunk {
		if _, err := js.PublishAsync("logs.file.bench.x", data[off:min(off+chunk, len(data))]); err != nil {
			return row{}, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		return row{}, errors.New("publish: acks missing after 2m")
	}
	el, cpu := time.Since(t0), selfCPU()-cpu0
	st, err := js.Stream(ctx, "LOGS")
	if err != nil {
		return row{}, err
	}
	if got := st.CachedInfo().State; got.Bytes < uint64(size) {
		return row{}, fmt.Errorf("publish: stream holds %d bytes, want ≥ %d", got.Bytes, size)
	}
	return row{name: pubName(always), lines: *nLines, bytes: size, elapsed: el, cpu: cpu, load: loadavg(), note: "ceiling (server in the driver)"}, nil
}

func pubName(always bool) string {
	if always {
		return "raw JetStream publish, 256 KiB msgs, sync always"
	}
	return "raw JetStream publish, 256 KiB msgs"
}

func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// ---- logcap as a child process ----

type proc struct {
	cmd   *exec.Cmd
	admin string
	logs  *bytes.Buffer
	dir   string
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
func (p *proc) stop() error {
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

func (p *proc) metric(name string) (float64, error) {
	resp, err := http.Get(p.admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			v, _ := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			sum += v
		}
	}
	return sum, sc.Err()
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

func pipelineConfig(watch string, jsonStep bool) string {
	src := fmt.Sprintf("sources:\n  - {name: app, type: file, paths: [%q], start_at: beginning}\n", filepath.Join(watch, "*.log"))
	if !jsonStep {
		return src + fmt.Sprintf("sinks:\n  - {name: out, type: file, input: logs.>, path: $RUN/out.log, format: raw%s}\n", extra())
	}
	return src + "processors:\n  - {name: parsed, input: logs.>, steps: [{json: {}}]}\n" +
		fmt.Sprintf("sinks:\n  - {name: out, type: file, input: parsed.>, path: $RUN/out.log, format: raw%s}\n", extra())
}

func extra() string {
	if *sinkExtra == "" {
		return ""
	}
	return ", " + *sinkExtra
}

// e2e: logcap runs with an empty watched directory; the input file is hard-linked into it
// (it appears whole, at once) and the clock runs until the sink's file holds every byte.
func e2e(bin, dir, input string, size int64, lines int, name string, jsonStep, always bool, profile string) (row, error) {
	watch, err := os.MkdirTemp(dir, "watch-")
	if err != nil {
		return row{}, err
	}
	defer os.RemoveAll(watch)
	p, err := start(bin, dir, always, pipelineConfig(watch, jsonStep))
	if err != nil {
		return row{}, err
	}
	stopped := false
	defer func() {
		if !stopped {
			p.stop()
		}
	}()
	out := filepath.Join(p.dir, "out.log")
	time.Sleep(500 * time.Millisecond) // let the consumers bind: they are not part of the measure
	cpu0, _, err := p.stat()
	if err != nil {
		return row{}, err
	}
	var prof chan error
	if profile != "" {
		prof = make(chan error, 1)
		// pprof's CPU profile blocks for its duration: it runs beside the measurement.
		startProfile(p, filepath.Join(profile, "cpu-"+slug(name)+".pprof"), prof)
	}
	load := loadavg()
	t0 := time.Now()
	if err := os.Link(input, filepath.Join(watch, "bench.log")); err != nil {
		return row{}, err
	}
	timeout := time.Now().Add(10 * time.Minute)
	var captured time.Duration // when LOGS had it all: where the time goes
	lastPoll := time.Now()
	for {
		if captured == 0 && time.Since(lastPoll) > 50*time.Millisecond {
			lastPoll = time.Now()
			if v, err := p.metric("logcap_filemon_lines_total"); err == nil && v >= float64(lines) {
				captured = time.Since(t0)
				if profile != "" { // the heap at its fullest: LOGS has it all, the sink is behind
					if err := p.fetch("/debug/pprof/heap", filepath.Join(profile, "heap-"+slug(name)+".pprof")); err != nil {
						return row{}, err
					}
				}
			}
		}
		fi, err := os.Stat(out)
		if err == nil && fi.Size() >= size {
			break
		}
		if time.Now().After(timeout) {
			got := int64(0)
			if fi != nil {
				got = fi.Size()
			}
			return row{}, fmt.Errorf("%s: sink has %d of %d bytes after 10m", name, got, size)
		}
		time.Sleep(2 * time.Millisecond) // polling the sink's file for the end of the run
	}
	el := time.Since(t0)
	cpu1, hwm, err := p.stat()
	if err != nil {
		return row{}, err
	}
	if prof != nil {
		if err := <-prof; err != nil {
			return row{}, err
		}
		if err := p.fetch("/debug/pprof/allocs", filepath.Join(profile, "allocs-"+slug(name)+".pprof")); err != nil {
			return row{}, err
		}
	}
	note := "all lines once"
	fmt.Fprintf(os.Stderr, "bench:   %s: LOGS complete after %v, sink after %v\n", name, captured.Round(time.Millisecond), el.Round(time.Millisecond))
	if err := checkFile(out, lines); err != nil {
		return row{}, fmt.Errorf("%s: %w", name, err)
	}
	if fi, _ := os.Stat(out); fi.Size() != size {
		return row{}, fmt.Errorf("%s: sink file has %d bytes, want %d", name, fi.Size(), size)
	}
	stopped = true
	if err := p.stop(); err != nil {
		return row{}, err
	}
	return row{name: name, lines: lines, bytes: size, elapsed: el, cpu: cpu1 - cpu0, rssKiB: hwm, load: load, note: note}, nil
}

func slug(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		} else if b.Len() > 0 && !strings.HasSuffix(b.String(), "-") {
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}
