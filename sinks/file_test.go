package sinks

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

// fileRecs returns n records of stream "LOGS" from chunk seq onwards, perChunk entries per
// chunk, each with the message "m-<seq>-<index>".
func fileRecs(seq uint64, n, perChunk int) []Record {
	out := make([]Record, 0, n)
	for i := 0; i < n; i++ {
		s, idx := seq+uint64(i/perChunk), i%perChunk
		out = append(out, Record{
			Entry: event.Entry{
				Time: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), Host: "web-1", Kind: "file",
				Source: "/var/log/app.log", Message: fmt.Sprintf("m-%d-%d", s, idx),
			},
			Stream: "LOGS", Seq: s, Index: idx,
		})
	}
	return out
}

func newFileSink(t testing.TB, o FileOptions) *FileSink {
	t.Helper()
	s, err := NewFile(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func readLines(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// wantOnce checks lines are exactly the messages of recs, once each, in order.
func wantOnce(t testing.TB, lines []string, recs []Record) {
	t.Helper()
	if len(lines) != len(recs) {
		t.Fatalf("got %d lines, want %d", len(lines), len(recs))
	}
	for i, r := range recs {
		if lines[i] != r.Message {
			t.Fatalf("line %d = %q, want %q", i, lines[i], r.Message)
		}
	}
}

func TestFileFactory(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "never", "created", "{{.Date}}.log")
	tests := []struct {
		name    string
		opts    map[string]any
		wantErr string
	}{
		{"minimal", map[string]any{"path": out}, ""},
		{"pipeline keys skipped", map[string]any{"name": "a", "type": "file", "input": "logs.>", "path": out}, ""},
		{"all options", map[string]any{"path": out, "format": "raw", "fsync": "never",
			"rotate": map[string]any{"max_size": "100MiB", "max_age": "24h", "max_files": 3, "compress": true}}, ""},
		{"no path", map[string]any{"format": "raw"}, "path: required"},
		{"unknown key", map[string]any{"path": out, "paht": "x"}, "paht"},
		{"bad format", map[string]any{"path": out, "format": "xml"}, "format:"},
		{"bad fsync", map[string]any{"path": out, "fsync": "sometimes"}, "fsync:"},
		{"bad size", map[string]any{"path": out, "rotate": map[string]any{"max_size": "lots"}}, "invalid size"},
		{"unknown template field", map[string]any{"path": dir + "/{{.Container}}.log"}, "path:"},
		{"bad template", map[string]any{"path": dir + "/{{.Date"}, "path:"},
		{"directory", map[string]any{"path": dir + "/{{.Host}}/"}, "path:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, err := config.OptionsFrom(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			s, err := New("file", "archive", opts)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				_ = s.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "never")); !os.IsNotExist(err) {
		t.Fatalf("the factory created files: %v", err)
	}
}

func TestFilePathTemplate(t *testing.T) {
	dir := t.TempDir()
	s := newFileSink(t, FileOptions{Path: dir + "/{{.Host}}/{{.Kind}}-{{.Source}}-{{.Date}}.log", Format: "raw"})
	mk := func(host, kind, source string, ts time.Time) Record {
		return Record{Entry: event.Entry{Time: ts, Host: host, Kind: kind, Source: source, Message: "x"}, Stream: "LOGS", Seq: 1}
	}
	// 23:30 at UTC-2 is the next day in UTC.
	late := time.Date(2026, 11, 27, 23, 30, 0, 0, time.FixedZone("x", -2*3600))
	tests := []struct {
		rec  Record
		want string
	}{
		{mk("web-1", "file", "/var/log/app.log", late), "web-1/file-_var_log_app.log-2026-11-28.log"},
		{mk("../..", "docker", "nginx", late), "_____/docker-nginx-2026-11-28.log"},
		{mk("", "docker", "a\\b", late), "_/docker-a_b-2026-11-28.log"},
		{mk(".", "file", "..", time.Time{}), "_/file-__-0001-01-01.log"},
	}
	for _, tt := range tests {
		got, err := s.pathFor(&tt.rec, map[pathFields]string{})
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(dir, tt.want); got != want {
			t.Errorf("path %q, want %q", got, want)
		}
	}
}

func TestFileFormats(t *testing.T) {
	rec := Record{Entry: event.Entry{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Host: "h", Kind: "docker",
		Source: "nginx", Stream: "stderr", Message: "hello", Fields: map[string]any{"level": "warn"}},
		Stream: "PARSED", Seq: 7, Index: 1}
	raw := rec
	raw.Raw = []byte("\x00original\xff")
	tests := []struct {
		format string
		rec    Record
		want   string
	}{
		{"json", rec, `{"time":"2026-01-02T03:04:05Z","host":"h","kind":"docker","source":"nginx","stream":"stderr","message":"hello","fields":{"level":"warn"}}` + "\n"},
		{"raw", rec, "hello\n"},
		{"raw", raw, "\x00original\xff\n"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "out.log")
			s := newFileSink(t, FileOptions{Path: p, Format: tt.format})
			if err := s.Write(context.Background(), []Record{tt.rec}); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(p)
			if string(got) != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if tt.format == "json" {
				var e event.Entry
				if err := json.Unmarshal(got, &e); err != nil || e.Message != "hello" {
					t.Fatalf("not an event.Entry: %v %+v", err, e)
				}
			}
		})
	}
}

func TestFileRedeliveryWrittenOnce(t *testing.T) {
	for _, fsync := range []string{fsyncAlways, fsyncBatch, fsyncNever} {
		t.Run(fsync, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "out.log")
			all := fileRecs(1, 100, 10) // chunks 1..10
			s := newFileSink(t, FileOptions{Path: p, Format: "raw", Fsync: fsync})
			ctx := context.Background()
			steps := [][]Record{
				all[:30],
				all[:30],   // the same batch again
				all[20:60], // overlapping
				all[55:58], // inside what was written
				all[60:],
			}
			for i, b := range steps {
				if err := s.Write(ctx, b); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
			}
			// A new sink (a restart) reads the positions back.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2 := newFileSink(t, FileOptions{Path: p, Format: "raw", Fsync: fsync})
			if err := s2.Write(ctx, all); err != nil {
				t.Fatal(err)
			}
			// Another stream has positions of its own.
			other := fileRecs(1, 2, 1)
			for i := range other {
				other[i].Stream, other[i].Message = "PARSED", "p"+other[i].Message
			}
			if err := s2.Write(ctx, other); err != nil {
				t.Fatal(err)
			}
			wantOnce(t, readLines(t, p), append(slices.Clone(all), other...))
		})
	}
}

func TestFileOutOfOrderBatch(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.log")
	s := newFileSink(t, FileOptions{Path: p, Format: "raw"})
	recs := fileRecs(1, 4, 1)
	b := []Record{recs[2], recs[0], recs[3], recs[1]}
	for range 2 {
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	wantOnce(t, readLines(t, p), b)
}

// TestFileCrashBetweenDataAndPosition runs the steps of a Write up to the data fsync, then
// abandons the sink as a crash would, and checks a restarted sink cuts the uncommitted tail
// and writes the redelivered batch once.
func TestFileCrashBetweenDataAndPosition(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.log")
	all := fileRecs(1, 40, 4)
	ctx := context.Background()

	s := newFileSink(t, FileOptions{Path: p, Format: "raw"})
	if err := s.Write(ctx, all[:20]); err != nil {
		t.Fatal(err)
	}
	of := s.files[p]
	pend, err := of.prepare(nil, all, []int{20, 21, 22, 23, 24, 25, 26, 27, 28, 29}, "raw")
	if err != nil {
		t.Fatal(err)
	}
	if err := of.appendData(pend, fsyncBatch); err != nil {
		t.Fatal(err)
	}
	// Crash: the descriptors go away, the position is never written.
	_ = of.close()
	clear(s.files)
	if got := len(readLines(t, p)); got != 30 {
		t.Fatalf("setup: %d lines on disk, want 30", got)
	}

	s2 := newFileSink(t, FileOptions{Path: p, Format: "raw"})
	if err := s2.Write(ctx, all[20:]); err != nil { // redelivery of the unacknowledged batch onwards
		t.Fatal(err)
	}
	wantOnce(t, readLines(t, p), all)
}

func TestFileTornPositionSlot(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.log")
	all := fileRecs(1, 30, 1)
	ctx := context.Background()
	s := newFileSink(t, FileOptions{Path: p, Format: "raw"})
	if err := s.Write(ctx, all[:10]); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, all[10:20]); err != nil {
		t.Fatal(err)
	}
	gen := s.files[p].gen
	_ = s.Close()
	// Tear the newest slot: the previous commit (all[:10]) must be used, and the bytes of the
	// second batch cut off as uncommitted.
	f, err := os.OpenFile(posPath(p), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("garbage"), int64(gen%2)*posSlotSize+posHeaderSize+3); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	s2 := newFileSink(t, FileOptions{Path: p, Format: "raw"})
	if err := s2.Write(ctx, all[10:]); err != nil {
		t.Fatal(err)
	}
	wantOnce(t, readLines(t, p), all)
}

func TestFileRotation(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.log")
	s := newFileSink(t, FileOptions{Path: p, Format: "raw",
		Rotate: &FileRotate{MaxSize: 100, MaxFiles: 2, Compress: true}})
	all := fileRecs(1, 40, 1) // 40 lines of 6-7 bytes: 10 per batch = ~70 B
	ctx := context.Background()
	for i := 0; i < len(all); i += 10 {
		if err := s.Write(ctx, all[i:i+10]); err != nil {
			t.Fatal(err)
		}
		if err := s.Write(ctx, all[i:i+10]); err != nil { // redelivery after a rotation
			t.Fatal(err)
		}
	}
	names, _ := filepath.Glob(filepath.Join(dir, "out.log*"))
	slices.Sort(names)
	want := []string{p, p + ".1.gz", p + ".2.gz"}
	if !slices.Equal(names, want) {
		t.Fatalf("files %v, want %v", names, want)
	}
	// Oldest first: .2.gz, .1.gz, out.log hold the last 30 records in order; the first batch
	// was dropped by max_files.
	var lines []string
	for _, n := range []string{p + ".2.gz", p + ".1.gz"} {
		f, err := os.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		_ = f.Close()
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")...)
	}
	lines = append(lines, readLines(t, p)...)
	wantOnce(t, lines, all[10:])

	// Age rotation, with a fake clock.
	now := time.Now()
	s.now = func() time.Time { return now }
	s.rotate = FileRotate{MaxAge: config.Duration(time.Hour), MaxFiles: 2}
	more := fileRecs(100, 2, 1)
	if err := s.Write(ctx, more[:1]); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Hour)
	if err := s.Write(ctx, more[1:]); err != nil {
		t.Fatal(err)
	}
	wantOnce(t, readLines(t, p), more[1:])
	rotated := readLines(t, p+".1")
	wantOnce(t, rotated[len(rotated)-1:], more[:1])
}

func TestFileCheck(t *testing.T) {
	dir := t.TempDir()
	s := newFileSink(t, FileOptions{Path: dir + "/new/{{.Host}}/out.log"})
	if err := s.Check(context.Background()); err != nil {
		t.Fatalf("check of a creatable directory: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "new"))
	if len(ents) != 0 {
		t.Fatalf("check left files behind: %v", ents)
	}
	// A regular file where the directory should be: not writable, even as root.
	if err := os.WriteFile(filepath.Join(dir, "blocked"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := newFileSink(t, FileOptions{Path: dir + "/blocked/out.log"})
	if err := bad.Check(context.Background()); err == nil {
		t.Fatal("check of an unwritable path succeeded")
	}
	if err := bad.Write(context.Background(), fileRecs(1, 1, 1)); err == nil || strings.Contains(err.Error(), ErrPermanent.Error()) {
		t.Fatalf("write to an unwritable path: %v, want a transient error", err)
	}
}

// The kill -9 test re-executes the test binary as a child that writes batches until killed.
const fileChildEnv = "LOGCAP_FILE_SINK_CHILD"

const (
	killTotal    = 20000
	killPerChunk = 50
	killBatch    = 500
)

func TestFileSinkChildProcess(t *testing.T) {
	spec := os.Getenv(fileChildEnv)
	if spec == "" {
		t.Skip("helper process for TestFileKill9")
	}
	path, startStr, _ := strings.Cut(spec, "|")
	start, _ := strconv.Atoi(startStr)
	s, err := NewFile(FileOptions{Path: path, Format: "raw"})
	if err != nil {
		t.Fatal(err)
	}
	all := fileRecs(1, killTotal, killPerChunk)
	for i := start; i < len(all); i += killBatch {
		if err := s.Write(context.Background(), all[i:min(i+killBatch, len(all))]); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFileKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	p := filepath.Join(t.TempDir(), "out.log")
	all := fileRecs(1, killTotal, killPerChunk)
	// Each round restarts from an earlier position than the one reached (a redelivery).
	// Each round is killed once the file grew by kill.grow bytes past its size at the start.
	for round, kill := range []struct{ start, grow int }{{0, 20000}, {0, 40000}, {2500, 40000}} {
		var base int64
		if fi, err := os.Stat(p); err == nil {
			base = fi.Size()
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestFileSinkChildProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), fileChildEnv+"="+p+"|"+strconv.Itoa(kill.start))
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			if fi, err := os.Stat(p); err == nil && fi.Size() >= base+int64(kill.grow) {
				break
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("round %d: the child never grew the file by %d bytes: %s", round, kill.grow, stderr.String())
			}
			time.Sleep(time.Millisecond) // polling the file size, not synchronizing
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("round %d: child was not killed (%v): it finished before the kill, raise killTotal: %s", round, err, stderr.String())
		}
		fi, _ := os.Stat(p)
		var committed int64
		if pf, err := os.Open(posPath(p)); err == nil {
			st, _, _, _ := readPos(pf)
			committed = st.Size
			_ = pf.Close()
		}
		// An uncommitted tail shows the kill landed between a data write and its commit.
		t.Logf("round %d: killed at %d bytes, %d committed", round, fi.Size(), committed)
	}
	// Final replay from the start: everything once, in order.
	s := newFileSink(t, FileOptions{Path: p, Format: "raw"})
	for i := 0; i < len(all); i += killBatch {
		if err := s.Write(context.Background(), all[i:min(i+killBatch, len(all))]); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	wantOnce(t, lines, all)
}

func BenchmarkFileSinkWrite(b *testing.B) {
	p := filepath.Join(b.TempDir(), "out.log")
	s := newFileSink(b, FileOptions{Path: p, Format: "raw", Fsync: fsyncBatch})
	msg := strings.Repeat("x", 199) // 200 B with the newline
	const batch = 1000
	recs := make([]Record, batch)
	for i := range recs {
		recs[i] = Record{Entry: event.Entry{Host: "h", Kind: "file", Source: "s", Message: msg}, Stream: "LOGS", Index: i}
	}
	b.SetBytes(batch * 200)
	b.ReportAllocs()
	seq := uint64(0)
	for b.Loop() {
		seq++
		for i := range recs {
			recs[i].Seq = seq
		}
		if err := s.Write(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFilePartialFailure: one output file of a batch fails; the retried batch must write the
// records of the file that succeeded no second time.
func TestFilePartialFailure(t *testing.T) {
	dir := t.TempDir()
	s := newFileSink(t, FileOptions{Path: dir + "/{{.Host}}/out.log", Format: "raw"})
	recs := fileRecs(1, 6, 1)
	for i := range recs {
		recs[i].Host = []string{"a", "b"}[i%2]
	}
	blocker := filepath.Join(dir, "b")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), recs); err == nil || errors.Is(err, ErrPermanent) {
		t.Fatalf("write with b blocked: %v, want a transient error", err)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	wantOnce(t, readLines(t, filepath.Join(dir, "a", "out.log")), []Record{recs[0], recs[2], recs[4]})
	wantOnce(t, readLines(t, filepath.Join(dir, "b", "out.log")), []Record{recs[1], recs[3], recs[5]})
}

// FuzzFilePositionFile: reading any position file never panics, and a commit on top of it
// is read back as committed.
func FuzzFilePositionFile(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte(posMagic + "\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x00{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "pos")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		pf, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer pf.Close()
		st, gen, found, err := readPos(pf)
		if err != nil {
			t.Fatal(err)
		}
		if !found {
			st = fileState{Streams: map[string]streamPos{}}
		}
		of := &outFile{path: "fuzz", pos: pf, state: st, gen: gen}
		next := st.clone()
		next.Size += 42
		next.Streams["LOGS"] = streamPos{Seq: 7, Index: 3}
		if err := of.commit(next, false); err != nil {
			if errors.Is(err, ErrPermanent) {
				return // too many streams for a slot: refused, not corrupted
			}
			t.Fatal(err)
		}
		got, _, found, err := readPos(pf)
		if err != nil || !found || got.Size != next.Size || got.Streams["LOGS"] != next.Streams["LOGS"] {
			t.Fatalf("read back %+v, %v, %v; committed %+v", got, found, err, next)
		}
	})
}

// A stream that went backwards (its end lost, its sequence numbers re-used by other
// messages) is asked about before records are skipped: the same message at the recorded
// position keeps the skip, another one or none drops the position and the records are
// written; a failed check fails the write rather than guess.
func TestFileStreamWentBackwards(t *testing.T) {
	withIDs := func(recs []Record, prefix string) []Record {
		for i := range recs {
			recs[i].MsgID = fmt.Sprintf("%s-%d", prefix, recs[i].Seq)
			recs[i].Message = prefix + recs[i].Message
		}
		return recs
	}
	for _, tc := range []struct {
		name      string
		answer    func(seq uint64, id string) (bool, error)
		wantLines int
		wantErr   bool
	}{
		{"same message: redelivery skipped", func(uint64, string) (bool, error) { return true, nil }, 20, false},
		{"another message: written", func(uint64, string) (bool, error) { return false, nil }, 30, false},
		{"check failed: write fails", func(uint64, string) (bool, error) { return false, errors.New("nats down") }, 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "out.log")
			s := newFileSink(t, FileOptions{Path: p, Format: "raw"})
			var asked []string
			s.SetStreamCheck(func(_ context.Context, stream string, seq uint64, id string) (bool, error) {
				asked = append(asked, fmt.Sprintf("%s %d %s", stream, seq, id))
				return tc.answer(seq, id)
			})
			ctx := context.Background()
			if err := s.Write(ctx, withIDs(fileRecs(1, 20, 10), "old")); err != nil { // chunks 1, 2
				t.Fatal(err)
			}
			if len(asked) != 0 {
				t.Fatalf("asked %v before anything was to be skipped", asked)
			}
			// Chunk 2 again: a redelivery, or a re-used sequence number.
			err := s.Write(ctx, withIDs(fileRecs(2, 10, 10), "new"))
			if (err != nil) != tc.wantErr {
				t.Fatalf("write: %v, want error %v", err, tc.wantErr)
			}
			if want := []string{"LOGS 2 old-2"}; !slices.Equal(asked, want) {
				t.Errorf("asked %q, want %q", asked, want)
			}
			if got := len(readLines(t, p)); got != tc.wantLines {
				t.Errorf("%d lines in the output, want %d", got, tc.wantLines)
			}
		})
	}
}
