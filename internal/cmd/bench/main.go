// Command bench is the end-to-end benchmark of `make bench`: it runs the real logcap binary
// (as users run it: a config file, a child process) on a generated file of numbered
// 200-byte lines and prints one table, with the ceilings of this machine measured in the
// same run (cat, dd with fdatasync, raw JetStream publish). Every run checks that the sink
// received every line exactly once, so a fast wrong result cannot pass.
//
//	go run ./internal/cmd/bench -bin bin/logcap [-lines 2000000] [-short] [-profile DIR]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	binPath     = flag.String("bin", "bin/logcap", "the logcap binary (make build: no -race)")
	nLines      = flag.Int("lines", 2_000_000, "lines in the generated file")
	workDir     = flag.String("dir", "", "work directory (default: a temporary one, removed at the end)")
	shortMode   = flag.Bool("short", false, "short mode: idle files measured over 30 s, latency over 5 s")
	runs        = flag.Int("runs", 2, "runs of each throughput measurement; the best is reported (the machine is shared)")
	idleFiles   = flag.String("idle-files", "1000,10000", "files of the idle measurements, comma-separated (one row each)")
	backlog     = flag.Int("backlog-lines", 8_000_000, "lines of the backlog row's file (8M: 1.6 GB)")
	latRate     = flag.Int("rate", 10_000, "lines/s of the latency measurement")
	profileDir  = flag.String("profile", "", "also run file→file once more with pprof CPU and alloc profiles saved here")
	profileRows = flag.String("profile-rows", "file,json,json8", "the rows -profile runs again: file, json, json8")
	mdOut       = flag.String("md", "", "also write the table (Markdown) to this file")
	sinkExtra   = flag.String("sink-opts", "", "extra keys of the file sink's flow mapping, e.g. 'batch: {max_entries: 20000}' (exploration; the table uses the defaults)")
	sourceExtra = flag.String("source-opts", "", "extra keys of the file source's flow mapping, e.g. 'max_chunk_bytes: 256KiB' (exploration; the table uses the defaults)")
	memLimit    = flag.String("memory-limit", "", "logcap's memory_limit (default: logcap's default; 0: none)")
	cacheExp    = flag.String("cache-expire", "", "logcap's nats.embedded.cache_expire (default: logcap's default)")
	logcapEnv   = flag.String("logcap-env", "", "extra environment of logcap, space-separated (exploration: GOGC=50 GOMEMLIMIT=256MiB)")
	only        = flag.String("only", "", "comma-separated subset: ceilings,file,unbounded,cri,json,json8,json8x4,jdr,sync,backlog,sinks,otlp,latency,idle")
	storeOpts   = flag.String("store-sink-opts", "", "extra keys of the loki, elasticsearch and http rows' sinks, e.g. 'request: {concurrency: 8}' (exploration; the table uses the defaults)")
	profileSecs = flag.Int("profile-seconds", 3, "length of each sink row's CPU profile (-profile)")
	sinkRows    = flag.String("sinks", "file,loki,elasticsearch,http", "comma-separated sink rows to measure (with -only sinks); with -profile each run's sink is profiled too")
	otlpLines   = flag.Int("otlp-lines", 500_000, "lines of the OpenTelemetry rows (the Collector is slower than logcap's file rows)")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func want(what string) bool {
	return *only == "" || slices.Contains(strings.Split(*only, ","), what)
}

// bench is one run of the driver: the logcap binary, the work directory, the generated
// input and the rows measured so far, in the order the table prints them.
type bench struct {
	bin, dir, input string
	size            int64
	rows            []row
	// The all-JSON input of the json8 and jdr rows, generated when first needed.
	inputJSON8 string
	sizeJSON8  int64
}

// genJSON8 generates the all-JSON input (lineJSON8) once.
func (b *bench) genJSON8() error {
	if b.inputJSON8 != "" {
		return nil
	}
	in := filepath.Join(b.dir, "input", "json8.log")
	sz, err := generateWith(in, 0, *nLines, nil, lineJSON8)
	if err != nil {
		return err
	}
	b.inputJSON8, b.sizeJSON8 = in, sz
	return nil
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
	b := &bench{bin: bin, dir: dir, input: input, size: size}
	for _, measure := range []func() error{b.ceilings, b.pipelines, b.parallel, b.sinks, b.otlp, b.latency, b.idle, b.profiled} {
		if err := measure(); err != nil {
			return err
		}
	}
	table := render(b.rows, size)
	fmt.Print(table)
	if *mdOut != "" {
		return os.WriteFile(*mdOut, []byte(table), 0o644)
	}
	return nil
}

// add keeps a measured row (or returns the error that ended its measurement).
func (b *bench) add(r row, err error) error {
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: %s\n", r.String())
	b.rows = append(b.rows, r)
	return nil
}

// best runs a throughput measurement -runs times and keeps the fastest: the machine is
// shared, so the slower runs measure the neighbours as much as the code.
func (b *bench) best(name string, f func() (row, error)) error {
	var best row
	for i := range max(1, *runs) {
		r, err := f()
		if err != nil {
			return fmt.Errorf("%s (run %d): %w", name, i+1, err)
		}
		fmt.Fprintf(os.Stderr, "bench:   run %d: %s\n", i+1, r.String())
		if best.elapsed == 0 || r.elapsed < best.elapsed {
			best = r
		}
	}
	return b.add(best, nil)
}

func (b *bench) ceilings() error {
	if !want("ceilings") {
		return nil
	}
	if err := b.best("cat", func() (row, error) { return catCeiling(b.input, b.size) }); err != nil {
		return err
	}
	if err := b.best("dd", func() (row, error) { return ddCeiling(b.dir, b.size) }); err != nil {
		return err
	}
	for _, always := range []bool{false, true} {
		if err := b.best("publish", func() (row, error) { return publishCeiling(b.dir, b.input, b.size, always) }); err != nil {
			return err
		}
	}
	return nil
}

// rawPathName is the row the processor rows are compared with, and unboundedName its peer
// without memory_limit: what the memory bound costs, measured in the same run.
const (
	rawPathName   = "file → LOGS → file sink"
	unboundedName = "file → LOGS → file sink, memory_limit: 0 (peer: no memory bound)"
	json8Name     = "file → LOGS → json processor → PARSED → file sink, all-JSON 8-field lines"
	jdrName       = "file → LOGS → json → drop → redact → PARSED → file sink, all-JSON 8-field lines"
)

// pipelines are the throughput rows: logcap end to end on the generated file.
func (b *bench) pipelines() error {
	type variant struct {
		key, name string
		pl        pipeline
	}
	for _, v := range []variant{
		{"file", rawPathName, pipeline{}},
		{"unbounded", unboundedName, pipeline{unbounded: true}},
		{"cri", "CRI file (type: kubernetes) → LOGS → file sink", pipeline{cri: true}},
		{"json", "file → LOGS → json processor → PARSED → file sink", pipeline{steps: stepsJSON}},
		{"json8", json8Name, pipeline{steps: stepsJSON}},
		{"jdr", jdrName, pipeline{steps: stepsJSONDropRedact}},
		{"sync", "file → LOGS → file sink, sync_interval: always", pipeline{always: true}},
		{"backlog", "file → LOGS → file sink, %.1f GB backlog", pipeline{}},
	} {
		if !want(v.key) || v.pl.unbounded && *memLimit != "" {
			continue
		}
		in, n, sz := b.input, *nLines, b.size
		switch v.key {
		case "cri":
			// the same lines as a container runtime writes them: `<ts> stdout F <line>`
			in = filepath.Join(b.dir, "input", "cri.log")
			var err error
			if sz, err = generateCRI(in, 0, n); err != nil {
				return err
			}
		case "json8", "jdr":
			if err := b.genJSON8(); err != nil {
				return err
			}
			in, sz = b.inputJSON8, b.sizeJSON8
		}
		if v.key == "backlog" {
			// A file far larger than the default run, present before logcap starts reading
			// it: what a restart after an outage, or a new install on a busy node, meets.
			in, n = filepath.Join(b.dir, "input", "backlog.log"), *backlog
			var err error
			if sz, err = generate(in, 0, n); err != nil {
				return err
			}
			v.name = fmt.Sprintf(v.name, float64(sz)/1e9)
		}
		if err := b.best(v.name, func() (row, error) {
			return e2e(b.bin, b.dir, in, sz, n, v.name, v.pl, "")
		}); err != nil {
			return err
		}
		if v.key == "backlog" || v.key == "cri" {
			os.Remove(in)
		}
	}
	return nil
}

// otlp is the OpenTelemetry rows, against bin/otelcol beside the logcap binary (skipped,
// saying so, without it).
func (b *bench) otlp() error {
	if !want("otlp") {
		return nil
	}
	col := filepath.Join(filepath.Dir(b.bin), "otelcol")
	if _, err := os.Stat(col); err != nil {
		fmt.Fprintf(os.Stderr, "bench: OpenTelemetry rows skipped: %v (make tools builds it)\n", err)
		return nil
	}
	in, n := filepath.Join(b.dir, "input", "otlp.log"), *otlpLines
	sz, err := generate(in, 0, n)
	if err != nil {
		return err
	}
	defer os.Remove(in)
	in8 := filepath.Join(b.dir, "input", "otlp-json8.log")
	sz8, err := generateWith(in8, 0, n, nil, lineJSON8)
	if err != nil {
		return err
	}
	defer os.Remove(in8)
	for _, r := range []struct {
		name string
		f    func() (row, error)
	}{
		{"otelcol alone", func() (row, error) {
			return otelcolAlone(col, b.dir, in, sz, n, "otelcol alone: file_log → file exporter (peer)", "")
		}},
		{"otelcol json", func() (row, error) {
			return otelcolAlone(col, b.dir, in8, sz8, n, "otelcol: file_log + json_parser → file exporter, all-JSON 8-field lines (peer of json8)", "[{type: json_parser}]")
		}},
		{"otlp sink", func() (row, error) { return otlpSinkRow(b.bin, col, b.dir, in, sz, n) }},
		{"otlp source", func() (row, error) { return otlpSourceRow(b.bin, col, b.dir, in, sz, n) }},
	} {
		if err := b.best(r.name, r.f); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) latency() error {
	if !want("latency") {
		return nil
	}
	return b.add(latency(b.bin, b.dir, *latRate, window(10*time.Second, 5*time.Second)))
}

func (b *bench) idle() error {
	if !want("idle") {
		return nil
	}
	d := window(60*time.Second, 30*time.Second)
	for _, f := range strings.Split(*idleFiles, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("-idle-files: %w", err)
		}
		if err := b.add(idle(b.bin, b.dir, n, d)); err != nil {
			return err
		}
	}
	return nil
}

// profiled runs file→file and file→json→file once more with pprof profiles saved (-profile).
func (b *bench) profiled() error {
	if *profileDir == "" || *only != "" && want("sinks") && !want("file") { // -only sinks -profile: the sink rows' profiles alone
		return nil
	}
	if err := os.MkdirAll(*profileDir, 0o755); err != nil {
		return err
	}
	profile := func(what string) bool { return slices.Contains(strings.Split(*profileRows, ","), what) }
	if profile("file") {
		if err := b.add(e2e(b.bin, b.dir, b.input, b.size, *nLines, "file → LOGS → file sink (profiled, not a result)", pipeline{}, *profileDir)); err != nil {
			return err
		}
	}
	if profile("json") {
		if err := b.add(e2e(b.bin, b.dir, b.input, b.size, *nLines, "file → LOGS → json → file sink (profiled, not a result)", pipeline{steps: stepsJSON}, *profileDir)); err != nil {
			return err
		}
	}
	if !profile("json8") {
		return nil
	}
	if err := b.genJSON8(); err != nil {
		return err
	}
	return b.add(e2e(b.bin, b.dir, b.inputJSON8, b.sizeJSON8, *nLines, "file → LOGS → json → file sink, all-JSON 8-field lines (profiled, not a result)", pipeline{steps: stepsJSON}, *profileDir))
}

// window is a measurement's duration: full, or in -short mode short.
func window(full, short time.Duration) time.Duration {
	if *shortMode {
		return short
	}
	return full
}
