package filemon_test

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logcap/logcap/modules/lifecycle"
	core "github.com/logcap/logcap/sources/filemon"
)

const logrotateBin = "/usr/sbin/logrotate"

// longRun: LOGCAP_LONG=1 runs the full durations; the default keeps CI quick.
func longRun() bool { return os.Getenv("LOGCAP_LONG") == "1" }

type rotateResult struct {
	written, rotations int
	missing            []int // line numbers never stored
	dups               int   // stores beyond the first
	runs               [][2]int
	gzFiles            int // .gz files at the end
	gzEmpty            int // .gz files of an empty file
	gzCopies           int // .gz files recognised as copies of a file read
}

// rotateSetup is how logrotate rotates and what the file source reads.
type rotateSetup struct {
	mode          string // "create" or "copytruncate"
	delaycompress bool
	glob          bool // the glob is app.log*: it matches the rotated files
	gzip          bool // and include_compressed is on: the .gz files are read too
	// stall: the writer writes nothing for this long after its first second, so that
	// logrotate (ifempty, its default) rotates an empty app.log, maybe twice
	stall time.Duration
}

// runLogrotate writes numbered lines at rate/s for d while logrotate (rs.mode, with
// compress) runs every second, then reads every subject of LOGS.
func runLogrotate(t *testing.T, rs rotateSetup, d time.Duration, rate int) rotateResult {
	if _, err := os.Stat(logrotateBin); err != nil {
		if os.Getenv("LOGCAP_REQUIRE_LOGROTATE") == "1" {
			t.Fatalf("%s not installed (Debian package logrotate) and LOGCAP_REQUIRE_LOGROTATE=1: %v", logrotateBin, err)
		}
		t.Skipf("SKIPPING: %s not installed (Debian package logrotate; LOGCAP_REQUIRE_LOGROTATE=1 makes this a failure): %v", logrotateBin, err)
	}
	h := newHarness(t)
	p := h.path("app.log")
	appendFile(t, p, "")
	conf := filepath.Join(t.TempDir(), "logrotate.conf")
	state := filepath.Join(t.TempDir(), "state")
	delay := ""
	if rs.delaycompress {
		delay = "delaycompress\n  "
	}
	os.WriteFile(conf, []byte(fmt.Sprintf("%s {\n  rotate 1000\n  %s\n  compress\n  %smissingok\n}\n", p, rs.mode, delay)), 0o644)
	o := core.Options{Paths: []string{p}, StartAt: "beginning"}
	if rs.glob || rs.gzip {
		o.Paths, o.IncludeCompressed = []string{p + "*"}, rs.gzip
	}
	mon := h.start(o)

	g := lifecycle.New("logrotate-test", h.log)
	var written, rotations atomic.Int64
	writerDone := make(chan error, 1)
	g.Go("writer", func(ctx context.Context) error {
		writerDone <- writeNumbered(ctx, p, d, rate, rs.mode == "create", rs.stall, &written)
		return nil
	})
	rotErr := make(chan error, 1)
	g.Go("logrotate", func(ctx context.Context) error {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				rotErr <- nil
				return nil
			case <-tick.C:
			}
			// A run is never cut short by the stop: killed mid-run, logrotate left
			// app.log.1.gz empty or half-written next to app.log.1 (its gzip not finished),
			// a file no logrotate leaves behind and not a copy of anything yet.
			out, err := exec.Command(logrotateBin, "-s", state, "-f", conf).CombinedOutput()
			if err != nil {
				rotErr <- fmt.Errorf("logrotate: %v: %s", err, out)
				return nil
			}
			rotations.Add(1)
		}
	})
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-rotErr; err != nil {
		t.Fatal(err)
	}
	// everything before the END line is in LOGS once END is (one subject is in order)
	appendFile(t, p, "END\n")
	waitFor(t, 60*time.Second, func() error {
		got := h.stored()[p]
		if len(got) == 0 || got[len(got)-1] != "END\n" {
			return fmt.Errorf("%d entries, END not yet stored", len(got))
		}
		return nil
	})
	r := rotateResult{written: int(written.Load()), rotations: int(rotations.Load())}
	if rs.gzip {
		// every .gz placed (none held: Pending) and finished: only app.log's subject is read
		ents, _ := os.ReadDir(h.dir)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".gz") {
				r.gzFiles++
				if gzipEmpty(t, filepath.Join(h.dir, e.Name())) {
					r.gzEmpty++
				}
			}
		}
		waitFor(t, 60*time.Second, func() error {
			if st := mon.m.Stats(); st.Files != len(ents) || st.Pending != 0 || st.Subjects != 1 {
				return fmt.Errorf("%d files in the directory, %d known, %d not placed yet, %d subjects being read", len(ents), st.Files, st.Pending, st.Subjects)
			}
			return nil
		})
		r.gzCopies = h.logs.FilterMessageSnippet("gzip file is a copy of a file read").Len()
	}
	var got []string
	where := map[string][]string{}
	for src, entries := range h.stored() {
		if src != p {
			t.Logf("%s: %d entries", filepath.Base(src), len(entries))
		}
		for i, e := range entries {
			where[e] = append(where[e], fmt.Sprintf("%s#%d/%d", filepath.Base(src), i, len(entries)))
		}
		got = append(got, entries...)
	}
	seen := make([]int, r.written)
	for _, l := range got {
		if l == "END\n" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(strings.Fields(l)[0]))
		if err != nil || n >= r.written {
			t.Fatalf("stored entry %q is not a line written", l)
		}
		seen[n]++
	}
	for n, c := range seen {
		if c == 0 {
			r.missing = append(r.missing, n)
			if k := len(r.runs); k > 0 && r.runs[k-1][1] == n-1 {
				r.runs[k-1][1] = n
			} else {
				r.runs = append(r.runs, [2]int{n, n})
			}
		}
		if c > 1 {
			r.dups += c - 1
			for l, at := range where {
				if k, _ := strconv.Atoi(strings.TrimSpace(strings.Fields(l)[0])); l != "END\n" && k == n {
					t.Logf("line %d stored %d times: %q at (subject#entry/entries) %v", n, c, l, at)
				}
			}
		}
	}
	return r
}

// gzipEmpty reports whether the gzip file at path decompresses to nothing: logrotate
// (ifempty, its default) rotated an empty app.log, which happens when the writer has not
// written to the new file between two runs (a loaded machine). Such a .gz is read from its
// beginning and publishes nothing; no content can say which empty file it is a copy of.
func gzipEmpty(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	n, err := zr.Read(make([]byte, 1))
	if n == 0 && err != io.EOF {
		t.Fatalf("%s: %v", path, err)
	}
	return n == 0
}

func waitFor(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writeNumbered appends "%09d <padding>\n" lines at rate per second for d. Like an
// application told to reopen its log (logrotate's postrotate), with reopen it notices a new
// file at path within 10 ms; without it (copytruncate) it keeps one O_APPEND descriptor.
// With stall it stops for that long after its first second (then catches up).
func writeNumbered(ctx context.Context, path string, d time.Duration, rate int, reopen bool, stall time.Duration, written *atomic.Int64) error {
	open := func() (*os.File, os.FileInfo, error) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return nil, nil, err
		}
		fi, err := f.Stat()
		return f, fi, err
	}
	f, fi, err := open()
	if err != nil {
		return err
	}
	defer func() { f.Close() }()
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	n := 0
	var buf []byte
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		el := time.Since(start)
		if stall > 0 && el > time.Second && el < time.Second+stall {
			continue // stalled: writes nothing and does not reopen
		}
		target := int(el.Seconds() * float64(rate))
		if el >= d {
			target = int(d.Seconds() * float64(rate))
		}
		buf = buf[:0]
		for ; n < target; n++ {
			buf = fmt.Appendf(buf, "%09d the quick brown fox jumps over the lazy dog\n", n)
		}
		if _, err := f.Write(buf); err != nil {
			return err
		}
		written.Store(int64(n))
		if el >= d {
			return nil
		}
		if reopen {
			if now, err := os.Stat(path); err == nil && !os.SameFile(now, fi) {
				f.Close()
				if f, fi, err = open(); err != nil {
					return err
				}
			}
		}
	}
}

func logrotateParams() (time.Duration, int) {
	if longRun() {
		return 30 * time.Second, 20000
	}
	return 5 * time.Second, 20000
}

// TestLogrotateCreate: rename + create, with compress and delaycompress: every line once.
func TestLogrotateCreate(t *testing.T) {
	d, rate := logrotateParams()
	r := runLogrotate(t, rotateSetup{mode: "create", delaycompress: true}, d, rate)
	t.Logf("create: %d lines in %v, %d logrotate runs: %d missing, %d duplicated", r.written, d, r.rotations, len(r.missing), r.dups)
	if r.rotations < int(d.Seconds())-2 {
		t.Errorf("only %d rotations", r.rotations)
	}
	if len(r.missing) > 0 || r.dups > 0 {
		t.Fatalf("create mode: %d missing (runs %v), %d duplicated", len(r.missing), r.runs, r.dups)
	}
}

// TestLogrotateCopytruncate measures what copytruncate's inherent race loses: lines written
// between logrotate's copy and its truncate that logcap had not read yet exist in neither
// file logcap reads. Nothing may be duplicated, and every loss must be a run of lines at one
// truncation.
func TestLogrotateCopytruncate(t *testing.T) {
	d, rate := logrotateParams()
	r := runLogrotate(t, rotateSetup{mode: "copytruncate", delaycompress: true}, d, rate)
	longest := 0
	for _, run := range r.runs {
		longest = max(longest, run[1]-run[0]+1)
	}
	sort.Ints(r.missing)
	t.Logf("copytruncate: %d lines in %v, %d logrotate runs: %d lost (%.4f%%) in %d runs (longest %d lines = %.1f ms of writing), %d duplicated",
		r.written, d, r.rotations, len(r.missing), 100*float64(len(r.missing))/float64(r.written), len(r.runs), longest, 1000*float64(longest)/float64(rate), r.dups)
	if r.dups > 0 {
		t.Errorf("%d duplicated lines", r.dups)
	}
	if len(r.runs) > r.rotations {
		t.Errorf("%d runs of lost lines for %d rotations: losses outside the race window", len(r.runs), r.rotations)
	}
	// the window is the copy plus the time since logcap's last read: bound it at 250 ms
	if limit := rate / 4; longest > limit {
		t.Errorf("a run of %d lost lines (limit %d)", longest, limit)
	}
}

// TestLogrotateCompressGzip: logrotate create + compress without delaycompress, so every
// rotated file becomes app.log.1.gz at once, while the glob app.log* with include_compressed
// reads the .gz files too. Each .gz is a copy of a file logcap read: every line once.
func TestLogrotateCompressGzip(t *testing.T) {
	d, rate := logrotateParams()
	r := runLogrotate(t, rotateSetup{mode: "create", gzip: true}, d, rate)
	t.Logf("create+compress, .gz read: %d lines in %v, %d logrotate runs, %d .gz files (%d of an empty file, %d recognised as copies): %d missing, %d duplicated",
		r.written, d, r.rotations, r.gzFiles, r.gzEmpty, r.gzCopies, len(r.missing), r.dups)
	if r.rotations < int(d.Seconds())-2 || r.gzFiles < r.rotations-1 || r.gzCopies != r.gzFiles-r.gzEmpty {
		t.Errorf("%d rotations, %d .gz files (%d of an empty file), %d recognised as copies", r.rotations, r.gzFiles, r.gzEmpty, r.gzCopies)
	}
	if len(r.missing) > 0 || r.dups > 0 {
		t.Fatalf("%d missing (runs %v), %d duplicated", len(r.missing), r.runs, r.dups)
	}
}

// TestLogrotateGlobDelaycompress: the glob app.log* matches the rotated files too (.gz not
// read). logrotate 3.21's delaycompress deletes app.log.1 (after compressing it) and creates
// the new app.log with the freed inode within milliseconds: it must not be taken for the
// finished app.log.1 (it was, and a whole rotation was lost or app.log never read again).
func TestLogrotateGlobDelaycompress(t *testing.T) {
	d, rate := logrotateParams()
	r := runLogrotate(t, rotateSetup{mode: "create", delaycompress: true, glob: true}, d, rate)
	t.Logf("create+compress+delaycompress, glob app.log*: %d lines in %v, %d logrotate runs: %d missing, %d duplicated", r.written, d, r.rotations, len(r.missing), r.dups)
	if len(r.missing) > 0 || r.dups > 0 {
		t.Fatalf("%d missing (runs %v), %d duplicated", len(r.missing), r.runs, r.dups)
	}
}

// TestLogrotateDelaycompressGzip: the same with delaycompress and the .gz read: app.log.1
// stays plain (known by its inode) until the next rotation compresses it to app.log.1.gz
// (then renamed app.log.2.gz), a copy of a file finished by then.
func TestLogrotateDelaycompressGzip(t *testing.T) {
	d, rate := logrotateParams()
	r := runLogrotate(t, rotateSetup{mode: "create", delaycompress: true, gzip: true}, d, rate)
	checkDelaycompressGzip(t, r, d)
}

// TestLogrotateDelaycompressGzipStalledWriter: the same while the writer stalls for 2.5 s
// (a loaded machine): logrotate rotates an empty app.log, and its .gz (of nothing) is not
// a copy of anything; every other .gz is, and every line is stored once.
func TestLogrotateDelaycompressGzipStalledWriter(t *testing.T) {
	d, rate := logrotateParams()
	r := runLogrotate(t, rotateSetup{mode: "create", delaycompress: true, gzip: true, stall: 2500 * time.Millisecond}, d, rate)
	if r.gzEmpty == 0 {
		t.Errorf("no .gz of an empty file: the stall did not make logrotate rotate an empty app.log")
	}
	checkDelaycompressGzip(t, r, d)
}

func checkDelaycompressGzip(t *testing.T, r rotateResult, d time.Duration) {
	t.Helper()
	t.Logf("create+compress+delaycompress, .gz read: %d lines in %v, %d logrotate runs, %d .gz files (%d of an empty file, %d recognised as copies): %d missing, %d duplicated",
		r.written, d, r.rotations, r.gzFiles, r.gzEmpty, r.gzCopies, len(r.missing), r.dups)
	if r.rotations < int(d.Seconds())-2 || r.gzFiles < r.rotations-2 || r.gzCopies != r.gzFiles-r.gzEmpty {
		t.Errorf("%d rotations, %d .gz files (%d of an empty file), %d recognised as copies", r.rotations, r.gzFiles, r.gzEmpty, r.gzCopies)
	}
	if len(r.missing) > 0 || r.dups > 0 {
		t.Fatalf("%d missing (runs %v), %d duplicated", len(r.missing), r.runs, r.dups)
	}
}
