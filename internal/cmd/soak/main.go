// Command soak runs a real `logcap run` for a while under churn and fails if anything leaks or
// any line is lost or duplicated. The churn: a file rotated every 2 s (rename + create), one
// loggen container started and stopped every second, the http sink's destination closed and
// reopened every 30 s, and with -external-nats the NATS server stopped every 2 minutes
// (-nats-every) for 2 s (-nats-down).
//
//	go run ./internal/cmd/soak -duration 10m      (make soak; SOAK_DURATION=90s make soak)
//
// It samples logcap's admin /metrics every 5 s, prints a line per minute and, at the end, the
// least-squares slope of goroutines, open fds, RSS and consumer lag after the warm-up. Exit 1
// on failure, with the goroutine profiles of the start and the end of the measured window and
// their difference by top function.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/logcap/logcap/internal/soak"
	"github.com/logcap/logcap/modules/lifecycle"
)

type options struct {
	duration, warmup, sample time.Duration
	externalNATS             bool
	natsEvery, natsDown      time.Duration
	bin                      string
	keep                     bool
	leakProfile              bool
	fileRate                 int
	requireDocker            bool
	verbose                  bool
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "how long the churn runs")
	flag.DurationVar(&o.warmup, "warmup", 0, "samples before this are not judged (default: duration/4)")
	flag.DurationVar(&o.sample, "sample", 5*time.Second, "metrics sampling interval")
	flag.BoolVar(&o.externalNATS, "external-nats", false, "run nats-server in the driver (restarted every -nats-every) instead of logcap's embedded one")
	flag.DurationVar(&o.natsEvery, "nats-every", 2*time.Minute, "with -external-nats: how often the server is stopped")
	flag.DurationVar(&o.natsDown, "nats-down", 2*time.Second, "with -external-nats: how long it stays down (longer than the 2 s rotation: generations are created and renamed away meanwhile)")
	flag.StringVar(&o.bin, "bin", "", "logcap binary to run (default: build ./cmd/logcap into the work dir)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory even when the soak passes")
	flag.BoolVar(&o.leakProfile, "leakprofile", false, "build logcap with GOEXPERIMENT=goroutineleakprofile and check /debug/pprof/goroutineleak")
	flag.IntVar(&o.fileRate, "file-rate", 200, "lines per second written to the rotated file")
	flag.BoolVar(&o.requireDocker, "require-docker", os.Getenv("LOGCAP_REQUIRE_DOCKER") == "1", "fail when no Docker engine answers (default from LOGCAP_REQUIRE_DOCKER=1)")
	flag.BoolVar(&o.verbose, "v", false, "print every sample, not one a minute")
	flag.Parse()
	if o.warmup == 0 {
		o.warmup = o.duration / 4
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak: FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("soak: PASS")
}

func logf(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, o options) (err error) {
	dir, err := os.MkdirTemp("", "logcap-soak-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil || o.keep {
			fmt.Fprintf(os.Stderr, "soak: work directory kept: %s (logcap's log: %s)\n", dir, filepath.Join(dir, "logcap.log"))
		} else {
			os.RemoveAll(dir)
		}
	}()
	log := zap.NewNop()
	if l, lerr := zap.NewDevelopment(zap.IncreaseLevel(zap.WarnLevel)); lerr == nil {
		log = l
	}

	if o.bin == "" {
		if o.bin, err = buildLogcap(dir, o.leakProfile); err != nil {
			return err
		}
	}
	ports, err := freePorts(4)
	if err != nil {
		return err
	}
	d := &driver{o: o, dir: dir, natsPort: ports[0], adminPort: ports[1], httpPort: ports[2], log: log}
	d.files = newFileGen(filepath.Join(dir, "logs"), o.fileRate)
	d.sink = newHTTPSink(fmt.Sprintf("127.0.0.1:%d", d.httpPort))
	if d.docker, err = newDockerChurn(ctx, dir, o.requireDocker); err != nil {
		return err
	}
	if d.docker == nil {
		logf("!!! no Docker engine at DOCKER_HOST=%q: the soak runs WITHOUT the docker source", os.Getenv("DOCKER_HOST"))
	}
	defer d.docker.cleanup()
	if o.externalNATS {
		if d.nats, err = startExtNATS(filepath.Join(dir, "nats"), d.natsPort); err != nil {
			return err
		}
		defer d.nats.stop()
	}
	return d.run(ctx)
}

// driver holds the soak's parts.
type driver struct {
	o                             options
	dir                           string
	natsPort, adminPort, httpPort int
	log                           *zap.Logger
	files                         *fileGen
	sink                          *httpSink
	docker                        *dockerChurn // nil without an engine
	nats                          *extNATS     // nil in embedded mode
	proc                          *process
}

func (d *driver) admin(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", d.adminPort, path)
}

func (d *driver) run(ctx context.Context) error {
	if err := d.sink.listen(); err != nil {
		return err
	}
	defer d.sink.close()
	if err := d.files.init(); err != nil {
		return err
	}
	cfg, err := d.writeConfig()
	if err != nil {
		return err
	}
	if d.proc, err = startProcess(d.o.bin, cfg, filepath.Join(d.dir, "logcap.log")); err != nil {
		return err
	}
	defer d.proc.kill()
	if err := d.proc.waitReady(ctx, d.admin("/readyz"), 90*time.Second); err != nil {
		return err
	}
	mode := "embedded NATS"
	if d.nats != nil {
		mode = fmt.Sprintf("external NATS (down %v every %v)", d.o.natsDown, d.o.natsEvery)
	}
	logf("logcap ready (%s); soaking for %v, warm-up %v, sampling every %v; work dir %s", mode, d.o.duration, d.o.warmup, d.o.sample, d.dir)

	stopChurn, err := d.startChurn()
	defer stopChurn()
	if err != nil {
		return err
	}

	samples, startProfile, err := d.measure(ctx)
	if err != nil {
		return err
	}
	if err := stopChurn(); err != nil {
		return fmt.Errorf("stop the churn: %w", err)
	}
	var failures []string
	if d.docker != nil {
		if err := d.docker.finish(ctx); err != nil {
			failures = append(failures, err.Error())
		}
	}
	logf("churn stopped: %d file lines written in %d files, %d containers, %d http restarts%s; waiting for delivery",
		d.files.written(), d.files.rotations()+1, d.docker.count(), d.sink.restarts(), d.nats.summary())
	failures = append(failures, d.checkDelivery(ctx)...)

	// The end profile is taken with the churn stopped and everything delivered, like the start.
	endProfile, perr := fetch(d.admin("/debug/pprof/goroutine?debug=1"))
	if perr != nil {
		failures = append(failures, fmt.Sprintf("end goroutine profile: %v", perr))
	}
	v := soak.Judge(samples, d.o.warmup, soak.DefaultLimits)
	fmt.Printf("\nafter the %v warm-up, %d samples:\n%s\n", d.o.warmup, v.Samples, v.Table())
	failures = append(failures, v.Failures...)
	if d.o.leakProfile {
		failures = append(failures, d.checkLeakProfile()...)
	}

	failures = append(failures, d.stopLogcap()...)

	if len(failures) == 0 {
		return nil
	}
	if startProfile != nil && endProfile != nil {
		_ = os.WriteFile(filepath.Join(d.dir, "goroutines-start.txt"), startProfile, 0o644)
		_ = os.WriteFile(filepath.Join(d.dir, "goroutines-end.txt"), endProfile, 0o644)
		fmt.Printf("goroutines by top function, end of warm-up → end (profiles in %s/goroutines-{start,end}.txt):\n%s",
			d.dir, soak.FormatDiff(soak.DiffGroups(soak.GoroutineGroups(startProfile), soak.GoroutineGroups(endProfile))))
	}
	return errors.New(strings.Join(failures, "; "))
}

// startChurn starts the file writer and rotation, the http sink's restarts, the container
// churn and the NATS restarts, in one group; stop (safe to call twice) stops them.
func (d *driver) startChurn() (stop func() error, err error) {
	churn := lifecycle.New("soak", d.log)
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return churn.Stop(sctx)
	}
	work := map[string]func(context.Context) error{
		"soak: write and rotate the file": d.files.run,
		"soak: restart the http sink":     d.sink.restartEvery(30 * time.Second),
	}
	if d.docker != nil {
		work["soak: docker churn"] = d.docker.run
	}
	if d.nats != nil {
		work["soak: restart nats"] = d.nats.restartEvery(d.o.natsEvery, d.o.natsDown)
	}
	for name, fn := range work {
		if err := churn.Go(name, fn); err != nil {
			return stop, err
		}
	}
	return stop, nil
}

// stopLogcap stops logcap with SIGTERM, bounded, and says what was not clean.
func (d *driver) stopLogcap() (failures []string) {
	code, took, err := d.proc.terminate(15 * time.Second)
	switch {
	case err != nil:
		failures = append(failures, err.Error())
	case code != 0:
		failures = append(failures, fmt.Sprintf("logcap exited %d after SIGTERM (took %v); see %s", code, took, d.proc.logPath))
	default:
		logf("logcap stopped on SIGTERM in %v, exit 0", took.Round(time.Millisecond))
	}
	if n := d.proc.countLog(`"level":"error"`); n > 0 {
		logf("logcap logged %d error lines (see %s)", n, d.proc.logPath)
	}
	return failures
}

// measure samples /metrics until the duration is over, printing a line per minute; it keeps
// the goroutine profile taken when the warm-up ends.
func (d *driver) measure(ctx context.Context) ([]soak.Sample, []byte, error) {
	began := time.Now()
	var samples []soak.Sample
	var startProfile []byte
	nextPrint := time.Duration(0)
	fmt.Printf("%8s %10s %6s %9s %8s %12s %10s %8s\n", "t", "goroutines", "fds", "RSS MiB", "lag", "file lines", "containers", "http ↻")
	tick := time.NewTicker(d.o.sample)
	defer tick.Stop()
	for {
		at := time.Since(began)
		s, err := d.scrape()
		if err != nil {
			return nil, nil, err
		}
		s.At = at
		samples = append(samples, s)
		if startProfile == nil && at >= d.o.warmup {
			if startProfile, err = fetch(d.admin("/debug/pprof/goroutine?debug=1")); err != nil {
				return nil, nil, err
			}
		}
		if at >= nextPrint || d.o.verbose {
			fmt.Printf("%8v %10.0f %6.0f %9.1f %8.0f %12d %10d %8d\n", at.Round(time.Second), s.Goroutines, s.FDs, s.RSS/(1<<20), s.Lag,
				d.files.written(), d.docker.count(), d.sink.restarts())
			if at >= nextPrint {
				nextPrint += time.Minute
			}
		}
		if at >= d.o.duration {
			return samples, startProfile, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("interrupted: %w", ctx.Err())
		case <-d.proc.exited:
			return nil, nil, fmt.Errorf("logcap exited during the soak: %v; see %s", d.proc.exitErr, d.proc.logPath)
		case <-tick.C:
		}
	}
}

func (d *driver) scrape() (soak.Sample, error) {
	body, err := fetch(d.admin("/metrics"))
	if err != nil {
		return soak.Sample{}, err
	}
	m := soak.ParseMetrics(body, "go_goroutines", "process_open_fds", "process_resident_memory_bytes", "logcap_pipeline_consumer_pending")
	for _, k := range []string{"go_goroutines", "process_open_fds", "process_resident_memory_bytes"} {
		if _, ok := m[k]; !ok {
			return soak.Sample{}, fmt.Errorf("admin /metrics has no %s", k)
		}
	}
	// The goroutines of net/http's connection pools (a reader and a writer per connection)
	// follow the connections the http sinks hold — up to request.concurrency each, dropped
	// when the soak restarts the destination — so they rise and fall within a short window.
	// They are judged by the fd check (a connection is an fd); the rest must stay flat.
	profile, err := fetch(d.admin("/debug/pprof/goroutine?debug=1"))
	if err != nil {
		return soak.Sample{}, err
	}
	pool := soak.CountWithFrame(profile, "net/http.(*persistConn).readLoop") + soak.CountWithFrame(profile, "net/http.(*persistConn).writeLoop")
	return soak.Sample{Goroutines: m["go_goroutines"] - float64(pool), FDs: m["process_open_fds"], RSS: m["process_resident_memory_bytes"],
		Lag: m["logcap_pipeline_consumer_pending"]}, nil
}

func (d *driver) checkLeakProfile() []string {
	p, err := fetch(d.admin("/debug/pprof/goroutineleak?debug=1"))
	if err != nil {
		return []string{fmt.Sprintf("goroutineleak profile: %v", err)}
	}
	g := soak.GoroutineGroups(p)
	n := 0
	for _, c := range g {
		n += c
	}
	logf("goroutineleak profile: %d leaked goroutine(s)", n)
	if n == 0 {
		return nil
	}
	_ = os.WriteFile(filepath.Join(d.dir, "goroutineleak.txt"), p, 0o644)
	return []string{fmt.Sprintf("goroutineleak profile reports %d leaked goroutine(s):\n%s", n, soak.FormatDiff(soak.DiffGroups(nil, g)))}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func fetch(url string) ([]byte, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return b, nil
}

// buildLogcap builds ./cmd/logcap (run from the repository root, as `make soak` does).
func buildLogcap(dir string, leakProfile bool) (string, error) {
	bin := filepath.Join(dir, "logcap")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/logcap")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if leakProfile {
		cmd.Env = append(cmd.Env, "GOEXPERIMENT=goroutineleakprofile")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/logcap (run the soak from the repository root): %v\n%s", err, out)
	}
	return bin, nil
}
