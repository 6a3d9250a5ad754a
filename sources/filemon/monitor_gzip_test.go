package filemon_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zapcore"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/sources"
	core "github.com/logcap/logcap/sources/filemon"
)

func gzipped(t testing.TB, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitPlaced waits until the monitor knows n files and reads only `reading` subjects: every
// other file (a .gz) is placed and finished.
func waitPlaced(t *testing.T, r *running, n, reading int) {
	t.Helper()
	waitFor(t, 20*time.Second, func() error {
		if st := r.m.Stats(); st.Files != n || st.Subjects != reading {
			return fmt.Errorf("%d of %d files known, %d subjects being read (want %d)", st.Files, n, st.Subjects, reading)
		}
		return nil
	})
}

// waitCopy waits until the .gz at path is recognised as a copy of a file read.
func waitCopy(t *testing.T, h *harness, path string) {
	t.Helper()
	waitFor(t, 10*time.Second, func() error {
		if h.logs.FilterMessageSnippet("gzip file is a copy").FilterField(stringField("path", path)).Len() == 0 {
			return fmt.Errorf("%s not recognised as a copy", path)
		}
		return nil
	})
}

// TestGzipPreexisting: a complete .gz present at the first start is read exactly once (or
// not at all with start_at: end); a restart publishes nothing more.
func TestGzipPreexisting(t *testing.T) {
	for _, startAt := range []string{"beginning", "end"} {
		t.Run(startAt, func(t *testing.T) {
			h := newHarness(t)
			gz, good := h.path("old.log.gz"), h.path("good.log")
			text := numbered("g", 0, 20000) // 200 KB: chunks of 16 KiB
			writeFile(t, gz, gzipped(t, text))
			appendFile(t, good, "")
			o := core.Options{Paths: []string{h.dir + "/*.log*"}, StartAt: startAt, IncludeCompressed: true, MaxChunkBytes: 16 << 10, MaxLineBytes: 1 << 10}
			for run := range 2 {
				r := h.start(o)
				// a line appended to good.log after the .gz is finished marks the end of the run
				waitPlaced(t, r, 2, 1)
				appendFile(t, good, fmt.Sprintf("run %d\n", run))
				h.waitLines(good, run+1, 10*time.Second)
				r.stop(t)
				got := h.stored()[gz]
				if startAt == "end" {
					if len(got) != 0 {
						t.Fatalf("run %d: start_at end, yet %d lines of the .gz published", run, len(got))
					}
					continue
				}
				exactlyOnce(t, got, text)
			}
			if n := h.logs.FilterLevelExact(zapcore.ErrorLevel).Len() + h.logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != 0 {
				t.Fatalf("%d warnings or errors: %v", n, h.logs.All())
			}
		})
	}
}

// TestGzipGrowing: a .gz written in pieces (each flushed, one ending mid-line) is read while
// it grows: after each piece its complete lines are published, the partial line is not
// (partial_flush is 1 ms), and the whole file ends up once.
func TestGzipGrowing(t *testing.T) {
	h := newHarness(t)
	p := h.path("slow.log.gz")
	appendFile(t, p, "")
	h.start(core.Options{Paths: []string{h.dir + "/*.gz"}, IncludeCompressed: true, PartialFlush: config.Duration(time.Millisecond), CloseRemovedAfter: config.Duration(30 * time.Second)})
	var all bytes.Buffer
	w := gzip.NewWriter(&all)
	var text string
	written := 0
	pieces := []string{numbered("a", 0, 200), "half of a li", "ne\n" + numbered("b", 0, 500), numbered("c", 0, 3000), numbered("d", 0, 7)}
	for i, piece := range pieces {
		w.Write([]byte(piece))
		if i < len(pieces)-1 {
			w.Flush()
		} else {
			w.Close()
		}
		// the piece arrives in two writes, the first one cut inside the compressed data
		mid := written + (all.Len()-written)/2
		appendFile(t, p, string(all.Bytes()[written:mid]))
		appendFile(t, p, string(all.Bytes()[mid:]))
		written = all.Len()
		text += piece
		complete := text[:strings.LastIndexByte(text, '\n')+1]
		exactlyOnce(t, h.waitLines(p, strings.Count(complete, "\n"), 20*time.Second), complete)
	}
	exactlyOnce(t, h.stored()[p], text)
	if n := h.logs.FilterLevelExact(zapcore.ErrorLevel).Len(); n != 0 {
		t.Fatalf("a growing .gz was reported: %v", h.logs.FilterLevelExact(zapcore.ErrorLevel).All())
	}
}

// TestGzipBad: a .gz with a bad CRC, one truncated for good, one that is not gzip, and a
// .bz2 next to a good file: one clear message naming each bad file, the metric, and the good
// file unaffected.
func TestGzipBad(t *testing.T) {
	h := newHarness(t)
	met, err := core.NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	h.met = met
	good, crc, cut, plain, bz := h.path("good.log"), h.path("crc.log.gz"), h.path("cut.log.gz"), h.path("plain.log.gz"), h.path("x.log.bz2")
	text := numbered("x", 0, 3000)
	b := gzipped(t, text)
	bad := bytes.Clone(b)
	bad[len(bad)-5] ^= 0xff // CRC-32 of the trailer
	writeFile(t, crc, bad)
	writeFile(t, cut, b[:len(b)/2])
	writeFile(t, plain, []byte("plain text named .gz\n"))
	writeFile(t, bz, []byte("BZh91AY&SY..."))
	appendFile(t, good, numbered("good", 0, 100))
	r := h.start(core.Options{Paths: []string{h.dir + "/*"}, StartAt: "beginning", IncludeCompressed: true, CloseRemovedAfter: config.Duration(300 * time.Millisecond)})
	exactlyOnce(t, h.waitLines(good, 100, 10*time.Second), numbered("good", 0, 100))
	waitFor(t, 20*time.Second, func() error {
		if n := counter(met.GzipErrs.WithLabelValues("app")); n != 3 {
			return fmt.Errorf("gzip_errors_total %v, want 3", n)
		}
		return nil
	})
	waitPlaced(t, r, 4, 1) // the .bz2 is not even looked at
	appendFile(t, good, numbered("good", 100, 200))
	exactlyOnce(t, h.waitLines(good, 200, 10*time.Second), numbered("good", 0, 200))
	for _, tc := range []struct {
		path, says string
		lvl        zapcore.Level
	}{
		{crc, "gzip: invalid checksum", zapcore.ErrorLevel},
		{cut, "truncated", zapcore.ErrorLevel},
		{plain, "not gzip", zapcore.WarnLevel},
	} {
		msgs := h.logs.FilterField(stringField("path", tc.path)).All()
		if len(msgs) != 1 || msgs[0].Level != tc.lvl || !strings.Contains(msgs[0].Message, tc.path) || !strings.Contains(msgs[0].Message, tc.says) {
			t.Errorf("%s: want one %v naming it and saying %q, got %v", tc.path, tc.lvl, tc.says, msgs)
		}
	}
	// what decoded before the CRC error (all of it) and before the cut is published
	exactlyOnce(t, h.stored()[crc], text)
	if got := h.stored()[cut]; len(got) == 0 || !strings.HasPrefix(text, strings.Join(got, "")) {
		t.Errorf("cut.log.gz: %d entries, not a prefix of its content", len(got))
	}
	if n := len(h.stored()[plain]) + len(h.stored()[bz]); n != 0 {
		t.Errorf("%d entries of plain.log.gz and x.log.bz2", n)
	}
	if n := h.logs.FilterField(stringField("path", bz)).Len(); n != 0 {
		t.Errorf("x.log.bz2: %d messages", n)
	}
}

// TestGzipChangedAfterDone: a .gz read to its end, or given up as truncated, is looked at
// again when its size changes, and read on from its position: every line once.
func TestGzipChangedAfterDone(t *testing.T) {
	first, second := numbered("m1", 0, 1000), numbered("m2", 0, 1000)
	for _, tc := range []struct {
		name       string
		start, add []byte
	}{
		{"a member appended", gzipped(t, first), gzipped(t, second)},
		{"truncated, given up, then completed", gzipped(t, first+second)[:2000], gzipped(t, first+second)[2000:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			p := h.path("x.log.gz")
			writeFile(t, p, tc.start)
			r := h.start(core.Options{Paths: []string{p}, StartAt: "beginning", IncludeCompressed: true, CloseRemovedAfter: config.Duration(300 * time.Millisecond)})
			waitPlaced(t, r, 1, 0) // done, or given up
			before := len(h.stored()[p])
			appendFile(t, p, string(tc.add))
			// a partial line published when the file was given up stays an entry of its
			// own (as with partial_flush): compare the bytes
			var got string
			waitFor(t, 10*time.Second, func() error {
				if got = strings.Join(h.stored()[p], ""); len(got) < len(first+second) {
					return fmt.Errorf("%d of %d bytes", len(got), len(first+second))
				}
				return nil
			})
			if got != first+second {
				t.Fatalf("got %d bytes, not the file's %d once", len(got), len(first+second))
			}
			t.Logf("%d entries before the change, %d after: every byte once", before, len(h.stored()[p]))
		})
	}
}

// TestGzipIgnoredByDefault: without include_compressed, .gz files stay ignored, silently.
func TestGzipIgnoredByDefault(t *testing.T) {
	h := newHarness(t)
	p, gz := h.path("app.log"), h.path("app.log.1.gz")
	writeFile(t, gz, gzipped(t, numbered("old", 0, 10)))
	appendFile(t, p, numbered("new", 0, 10))
	r := h.start(core.Options{Paths: []string{h.dir + "/*"}, StartAt: "beginning"})
	exactlyOnce(t, h.waitLines(p, 10, 10*time.Second), numbered("new", 0, 10))
	scans := r.m.Stats().Scans
	natstest_eventually(t, func() bool { return r.m.Stats().Scans >= scans+2 })
	if st := r.m.Stats(); st.Files != 1 || len(h.stored()[gz]) != 0 || h.logs.FilterField(stringField("path", gz)).Len() != 0 {
		t.Fatalf("the .gz was looked at: %d files known, %d entries, logs %v", st.Files, len(h.stored()[gz]), h.logs.All())
	}
}

// TestGzipRotatedWhileStopped: logcap stops; app.log gets more lines, is rotated and
// compressed (logrotate create + compress: app.log.1.gz, app.log.1 removed), and a new
// app.log starts or not (the application stopped too). After the restart the .gz continues
// from where app.log's subject ended: only the lines logcap had not read are published
// (under the .gz's path), once. app.log's KV record lags its stream here (chunks published
// within a second of each other, and the first below 1 KiB): the subject's last chunk is
// the position, even when the .gz appears only after the new app.log has published.
func TestGzipRotatedWhileStopped(t *testing.T) {
	for _, tc := range []struct {
		name             string
		newFile, gzLater bool
	}{
		{"new app.log", true, false},
		{"no new app.log (the application stopped too)", false, false},
		{".gz written after the new app.log published", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			p := h.path("app.log")
			appendFile(t, p, "")
			o := core.Options{Paths: []string{p + "*"}, StartAt: "beginning", IncludeCompressed: true}
			r := h.start(o)
			for i := range 10 {
				appendFile(t, p, numbered("a", i*100, (i+1)*100))
				h.waitLines(p, (i+1)*100, 10*time.Second)
			}
			r.stop(t)
			appendFile(t, p, numbered("a", 1000, 1500))
			old, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(p)
			if !tc.gzLater {
				writeFile(t, p+".1.gz", gzipped(t, string(old)))
			}
			want, files := numbered("a", 0, 1000), 1
			if tc.newFile {
				appendFile(t, p, numbered("b", 0, 10))
				want, files = want+numbered("b", 0, 10), 2
			}
			r = h.start(o)
			if tc.gzLater {
				h.waitLines(p, 1010, 10*time.Second)
				writeFile(t, p+".1.gz", gzipped(t, string(old)))
			}
			waitPlaced(t, r, files, files-1)
			exactlyOnce(t, h.waitLines(p+".1.gz", 500, 10*time.Second), numbered("a", 1000, 1500))
			exactlyOnce(t, h.waitLines(p, strings.Count(want, "\n"), 10*time.Second), want)
		})
	}
}

// TestGzipDelaycompressAcrossRestart: logrotate delaycompress renames app.log to app.log.1
// (read to its end under app.log) and compresses it at the next rotation, typically a day
// later, after logcap restarted. The KV records read at the start recognise the .gz.
func TestGzipDelaycompressAcrossRestart(t *testing.T) {
	h := newHarness(t)
	p := h.path("app.log")
	appendFile(t, p, numbered("a", 0, 1000))
	o := core.Options{Paths: []string{p + "*"}, StartAt: "beginning", IncludeCompressed: true}
	r := h.start(o)
	h.waitLines(p, 1000, 10*time.Second)
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, numbered("b", 0, 10))
	h.waitLines(p, 1010, 10*time.Second)
	waitPlaced(t, r, 2, 1) // app.log.1 finished
	r.stop(t)
	r = h.start(o)
	waitPlaced(t, r, 2, 1)
	old, err := os.ReadFile(p + ".1")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p+".2.gz", gzipped(t, string(old)))
	os.Remove(p + ".1")
	appendFile(t, p, numbered("b", 10, 20))
	exactlyOnce(t, h.waitLines(p, 1020, 10*time.Second), numbered("a", 0, 1000)+numbered("b", 0, 20))
	waitCopy(t, h, p+".2.gz")
	waitPlaced(t, r, 2, 1)
	if got := h.stored()[p+".2.gz"]; len(got) != 0 {
		t.Fatalf("the .gz of a file read before the restart published %d lines", len(got))
	}
}

// TestGzipResume: a restart in the middle of a big .gz continues where its last chunk
// ended: every line once.
func TestGzipResume(t *testing.T) {
	h := newHarness(t)
	p := h.path("big.log.gz")
	const n = 1000000
	text := numbered("r", 0, n) // 10 MB decompressed: 640 chunks of 16 KiB
	writeFile(t, p, gzipped(t, text))
	o := core.Options{Paths: []string{h.dir + "/*.gz"}, StartAt: "beginning", IncludeCompressed: true, MaxChunkBytes: 16 << 10, MaxLineBytes: 1 << 10}
	r := h.start(o)
	ctx := context.Background()
	stream, err := h.js.Stream(ctx, "LOGS")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing published")
		}
	}
	r.stop(t)
	before := len(h.stored()[p])
	if before == n {
		t.Fatal("the whole file was read before the stop: the resume is not tested")
	}
	r = h.start(o)
	exactlyOnce(t, h.waitLines(p, n, 60*time.Second), text)
	waitPlaced(t, r, 1, 0)
	t.Logf("stopped after %d of %d lines; after the restart every line once", before, n)
}

func TestDecodeIncludeCompressed(t *testing.T) {
	for _, tc := range []struct {
		opts map[string]any
		err  string
	}{
		{map[string]any{"paths": []string{"/var/log/app.log*"}, "include_compressed": true}, ""},
		{map[string]any{"paths": []string{"/var/log/*.log", "/var/log/old/*.gz"}, "include_compressed": true}, ""},
		{map[string]any{"paths": []string{"/var/log/*.log"}, "include_compressed": true}, "include_compressed: no glob in paths can match"},
		{map[string]any{"paths": []string{"/var/log/*.log"}, "include_compressed": "sometimes"}, "include_compressed"},
	} {
		opts, _ := config.OptionsFrom(tc.opts)
		err := decode(opts)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%v: got %v, want %q", tc.opts, err, tc.err)
		}
	}
}

// A glob that reaches logcap's own store (data_dir/jetstream) is refused by check and run:
// every line captured would be captured again (one seed line became 6.4 million lines of
// block files in 25 s). Logs kept elsewhere in data_dir, and wider globs, are fine.
func TestDecodeRefusesTheStore(t *testing.T) {
	for _, tc := range []struct {
		paths []string
		err   string
	}{
		{[]string{"/var/lib/logcap/jetstream/**"}, `paths: "/var/lib/logcap/jetstream/**" reads logcap's own store /var/lib/logcap/jetstream`},
		{[]string{"/var/log/*.log", "/var/lib/logcap/**"}, `"/var/lib/logcap/**" reads logcap's own store`},
		{[]string{"/var/lib/logcap/**/*.blk"}, `"/var/lib/logcap/**/*.blk" reads logcap's own store`},
		{[]string{"/var/lib/logcap/jetstream"}, `"/var/lib/logcap/jetstream" reads logcap's own store`},
		{[]string{"/var/lib/logcap/demo/*.log"}, ""}, // a log kept in data_dir (make run's demo)
		{[]string{"/var/lib/logcap/**/*.log"}, ""},   // the monitor skips the store
		{[]string{"/var/lib/**/*.blk"}, ""},          // wider than data_dir: skipped at run time
		{[]string{"/**"}, ""},
		{[]string{"/var/log/*.log"}, ""},
	} {
		opts, _ := config.OptionsFrom(map[string]any{"paths": tc.paths})
		err := decode(opts)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%v: got %v, want %q", tc.paths, err, tc.err)
		}
	}
}

func TestDecodeBadOptions(t *testing.T) {
	opts, _ := config.OptionsFrom(map[string]any{"name": "app", "type": "file", "paths": []string{"/x"}, "start_at": "middle", "bogus": 1})
	err := decode(opts)
	if err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown key not reported: %v", err)
	}
	opts, _ = config.OptionsFrom(map[string]any{"paths": []string{"/x"}, "start_at": "middle"})
	if err := decode(opts); err == nil || !strings.Contains(err.Error(), "start_at") {
		t.Fatalf("bad start_at not reported: %v", err)
	}
}

// decode reads a file source's options as check and run do (through the registry of
// source types), with data_dir /var/lib/logcap.
func decode(opts config.Options) error {
	_, err := sources.DecodeIn(&config.Config{DataDir: "/var/lib/logcap"}, config.Component{Name: "app", Type: core.Type, Options: opts})
	return err
}
