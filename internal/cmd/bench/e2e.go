package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The processor steps of the rows with a processor (a YAML flow sequence).
const (
	stepsJSON           = `[{json: {}}]`
	stepsJSONDropRedact = `[{json: {}}, {drop: 'fields.level == "debug"'}, {redact: {fields: [password]}}]`
)

// pipeline is what an end-to-end row runs: processor steps or none, fsync on every write or
// not, and the input as a plain file (type: file) or as a container's CRI log file
// (type: kubernetes).
type pipeline struct {
	steps       string
	always, cri bool
	unbounded   bool // memory_limit: 0
	workers     int  // the processor's workers (0: its default)
}

// pipelineConfig is source → sink, or with steps source → processor → sink.
func pipelineConfig(watch string, pl pipeline) string {
	src := fmt.Sprintf("sources:\n  - {name: app, type: file, paths: [%q], start_at: beginning%s}\n", filepath.Join(watch, "*.log"), srcExtra())
	if pl.cri {
		src = fmt.Sprintf("sources:\n  - {name: app, type: kubernetes, pods_dir: %q, start_at: beginning%s}\n", watch, srcExtra())
	}
	if pl.unbounded {
		src = "memory_limit: 0\n" + src
	}
	if pl.steps == "" {
		return src + fmt.Sprintf("sinks:\n  - {name: out, type: file, input: logs.>, path: $RUN/out.log, format: raw%s}\n", extra())
	}
	workers := ""
	if pl.workers > 0 {
		workers = fmt.Sprintf(", workers: %d", pl.workers)
	}
	return src + "processors:\n  - {name: parsed, input: logs.>, steps: " + pl.steps + workers + "}\n" +
		fmt.Sprintf("sinks:\n  - {name: out, type: file, input: parsed.>, path: $RUN/out.log, format: raw%s}\n", extra())
}

// srcExtra is -source-opts as more keys of the source's flow mapping.
func srcExtra() string {
	if *sourceExtra == "" {
		return ""
	}
	return ", " + *sourceExtra
}

func extra() string {
	if *sinkExtra == "" {
		return ""
	}
	return ", " + *sinkExtra
}

// e2e: logcap runs with an empty watched directory; the input file is hard-linked into it
// (it appears whole, at once) and the clock runs until the sink's file holds every byte.
func e2e(bin, dir, input string, size int64, lines int, name string, pl pipeline, profile string) (row, error) {
	return e2eFiles(bin, dir, []string{input}, size, lines, name, pl, profile)
}

// e2eFiles is e2e with several input files (several sources), linked in at once; size and
// lines are their sum.
func e2eFiles(bin, dir string, inputs []string, size int64, lines int, name string, pl pipeline, profile string) (row, error) {
	watch, err := os.MkdirTemp(dir, "watch-")
	if err != nil {
		return row{}, err
	}
	defer os.RemoveAll(watch)
	p, err := start(bin, dir, pl.always, pipelineConfig(watch, pl))
	if err != nil {
		return row{}, err
	}
	defer p.stop() // after a failed measurement; a measured one is stopped (and checked) below
	out := filepath.Join(p.dir, "out.log")
	target := filepath.Join(watch, "bench.log")
	if len(inputs) > 1 && pl.cri {
		return row{}, fmt.Errorf("%s: several CRI inputs are not supported", name)
	}
	if pl.cri { // where the kubelet has the runtime write a container's log
		target = filepath.Join(watch, "bench_pod-0_uid-0", "app", "0.log")
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return row{}, err
		}
	}
	time.Sleep(500 * time.Millisecond) // let the consumers bind: they are not part of the measure
	cpu0, _, err := p.stat()
	if err != nil {
		return row{}, err
	}
	var prof chan error
	if profile != "" {
		prof = make(chan error, 1)
		// pprof's CPU profile blocks for its duration: it runs beside the measurement.
		startProfile(p, filepath.Join(profile, "cpu-"+slug(name)+".pprof"), 8, prof)
	}
	load := loadavg()
	t0 := time.Now()
	for k, input := range inputs {
		to := target
		if len(inputs) > 1 {
			to = filepath.Join(watch, fmt.Sprintf("bench-%d.log", k))
		}
		if err := os.Link(input, to); err != nil {
			return row{}, err
		}
	}
	captured, err := waitSink(p, out, size, lines, name, profile, t0)
	if err != nil {
		return row{}, err
	}
	el, cpu1, hwm, err := p.since(t0)
	if err != nil {
		return row{}, err
	}
	if err := finishProfile(p, prof, profile, name); err != nil {
		return row{}, err
	}
	note := "all lines once"
	// Where the time went besides work: the sources held by memory_limit, and the fetches a
	// processor held back.
	held, _ := p.metric("logcap_memory_held_seconds_total")
	procWaits, _ := p.metric("logcap_processor_memory_waits_total")
	fmt.Fprintf(os.Stderr, "bench:   %s: LOGS complete after %v, sink after %v; sources held by memory_limit %.2fs, processor fetches held %.0f\n",
		name, captured.Round(time.Millisecond), el.Round(time.Millisecond), held, procWaits)
	if err := checkFile(out, lines); err != nil {
		return row{}, fmt.Errorf("%s: %w", name, err)
	}
	if fi, _ := os.Stat(out); fi.Size() != size {
		return row{}, fmt.Errorf("%s: sink file has %d bytes, want %d", name, fi.Size(), size)
	}
	if err := p.stop(); err != nil {
		return row{}, err
	}
	return row{name: name, lines: lines, bytes: size, elapsed: el, cpu: cpu1 - cpu0, rssKiB: hwm, load: load, note: note}, nil
}

// waitSink polls the sink's file until it holds size bytes, and logcap's line counter for
// the moment LOGS had every line (when, since t0, it returns: where the time goes). With a
// profile directory, the heap profile is taken at that moment: LOGS has it all, the sink is
// behind, the heap at its fullest.
func waitSink(p *proc, out string, size int64, lines int, name, profile string, t0 time.Time) (time.Duration, error) {
	timeout := time.Now().Add(10 * time.Minute)
	var captured time.Duration
	lastPoll := time.Now()
	for {
		if captured == 0 && time.Since(lastPoll) > 50*time.Millisecond {
			lastPoll = time.Now()
			if v, err := p.metric("logcap_filemon_lines_total"); err == nil && v >= float64(lines) {
				captured = time.Since(t0)
				if profile != "" {
					if err := p.fetch("/debug/pprof/heap", filepath.Join(profile, "heap-"+slug(name)+".pprof")); err != nil {
						return 0, err
					}
				}
			}
		}
		fi, err := os.Stat(out)
		if err == nil && fi.Size() >= size {
			return captured, nil
		}
		if time.Now().After(timeout) {
			got := int64(0)
			if fi != nil {
				got = fi.Size()
			}
			return 0, fmt.Errorf("%s: sink has %d of %d bytes after 10m", name, got, size)
		}
		time.Sleep(2 * time.Millisecond) // polling the sink's file for the end of the run
	}
}

// finishProfile waits for the CPU profile started beside the measurement (if any) and
// saves the allocation profile after it.
func finishProfile(p *proc, prof <-chan error, profile, name string) error {
	if prof == nil {
		return nil
	}
	if err := <-prof; err != nil {
		return err
	}
	return p.fetch("/debug/pprof/allocs", filepath.Join(profile, "allocs-"+slug(name)+".pprof"))
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
