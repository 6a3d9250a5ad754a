package filemon

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/logcap/logcap/streams"
)

type tailEnv struct {
	t    *testing.T
	path string
	cfg  *TailConfig
	tl   *Tailer
	now  time.Time
}

func newTailEnv(t *testing.T, cfg TailConfig, content string) *tailEnv {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.log")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	id, _ := StatID(fi)
	now := time.Unix(1000, 0)
	e := &tailEnv{t: t, path: path, cfg: &cfg, now: now}
	e.tl = NewTailer(e.cfg, path, f, id, 0, nil, now)
	t.Cleanup(func() { e.tl.Close() })
	return e
}

func (e *tailEnv) append(s string) {
	f, err := os.OpenFile(e.path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		e.t.Fatal(err)
	}
}

// drain publishes (commits) every chunk Next gives and returns the entries.
func (e *tailEnv) drain(final bool) []string {
	e.t.Helper()
	var out []string
	for range 1000 {
		c, err := e.tl.Next(e.now, final)
		if err != nil {
			e.t.Fatal(err)
		}
		if c == nil {
			return out
		}
		if len(c.Data) > e.cfg.MaxChunkBytes {
			e.t.Fatalf("chunk of %d bytes, max %d", len(c.Data), e.cfg.MaxChunkBytes)
		}
		if c.File.End-c.File.Start != int64(len(c.Data)) {
			e.t.Fatalf("offsets %d..%d for %d bytes", c.File.Start, c.File.End, len(c.Data))
		}
		// what a consumer sees must be what DecodeChunk reads back
		m := e.tl.Msg(c)
		d, err := streams.DecodeChunk(m.Subject, m.Header, m.Data)
		if err != nil {
			e.t.Fatal(err)
		}
		d.EachEntry(func(_ int, b []byte, cont bool) {
			s := string(b)
			if cont {
				s += "+"
			}
			out = append(out, s)
		})
		e.tl.Commit()
	}
	e.t.Fatal("no end")
	return nil
}

func base() TailConfig {
	return TailConfig{Host: "h", MaxLineBytes: 8, MaxChunkBytes: 16, PartialFlush: 5 * time.Second, MultilineTimeout: time.Second}
}

func eq(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestTailer(t *testing.T) {
	t.Run("lines, chunks bounded, partial held then flushed", func(t *testing.T) {
		e := newTailEnv(t, base(), "a\nbb\nccc\ndddd\neeeee\npart")
		eq(t, e.drain(false), "a\n", "bb\n", "ccc\n", "dddd\n", "eeeee\n")
		e.now = e.now.Add(5 * time.Second)
		eq(t, e.drain(false), "part")
		e.append("x\n")
		e.now = e.now.Add(time.Second)
		eq(t, e.drain(false), "x\n")
	})
	t.Run("long line split into marked parts", func(t *testing.T) {
		e := newTailEnv(t, base(), "0123456789abcdefghij\nok\n")
		eq(t, e.drain(false), "01234567+", "89abcdef+", "ghij\n", "ok\n")
		if e.tl.SplitLines != 2 {
			t.Fatalf("split parts %d", e.tl.SplitLines)
		}
	})
	t.Run("truncation: size below offset", func(t *testing.T) {
		e := newTailEnv(t, base(), "one\ntwo\n")
		eq(t, e.drain(false), "one\n", "two\n")
		if err := os.Truncate(e.path, 0); err != nil {
			t.Fatal(err)
		}
		e.append("3\n")
		eq(t, e.drain(false), "3\n")
		if e.tl.Truncations != 1 || e.tl.Offset() != 2 {
			t.Fatalf("truncations %d offset %d", e.tl.Truncations, e.tl.Offset())
		}
	})
	t.Run("truncated and refilled past the offset: first bytes changed", func(t *testing.T) {
		e := newTailEnv(t, base(), "one\n")
		eq(t, e.drain(false), "one\n")
		os.Truncate(e.path, 0)
		e.append("xyz\nmore\n")
		eq(t, e.drain(false), "xyz\n", "more\n")
		if e.tl.Truncations != 1 {
			t.Fatalf("truncations %d", e.tl.Truncations)
		}
	})
	t.Run("final flushes held partial and multiline", func(t *testing.T) {
		cfg := base()
		cfg.MaxLineBytes, cfg.MaxChunkBytes = 64, 64
		cfg.Multiline = &Multiline{Continue: regexp.MustCompile(`^\s`), MaxLines: 10, MaxBytes: 64}
		e := newTailEnv(t, cfg, "E1\n at\n at\nE2\n at\npar")
		eq(t, e.drain(false), "E1\n at\n at\n")
		eq(t, e.drain(true), "E2\n at\n", "par")
	})
	t.Run("multiline timeout", func(t *testing.T) {
		cfg := base()
		cfg.MaxLineBytes, cfg.MaxChunkBytes = 64, 64
		cfg.Multiline = &Multiline{Continue: regexp.MustCompile(`^\s`), MaxLines: 10, MaxBytes: 64}
		e := newTailEnv(t, cfg, "E1\n at\n")
		eq(t, e.drain(false))
		e.now = e.now.Add(time.Second)
		eq(t, e.drain(false), "E1\n at\n")
	})
	t.Run("reopen at position, other file refused", func(t *testing.T) {
		e := newTailEnv(t, base(), "a\n")
		eq(t, e.drain(false), "a\n")
		e.tl.Close()
		e.append("b\n")
		if err := e.tl.Reopen(e.path); err != nil {
			t.Fatal(err)
		}
		eq(t, e.drain(false), "b\n")
		e.tl.Close()
		os.Rename(e.path, e.path+".1")
		os.WriteFile(e.path, []byte("new\n"), 0o644)
		if err := e.tl.Reopen(e.path); err == nil {
			t.Fatal("reopened another file")
		}
	})
}

// Chunks read at the same instant (a clock of coarse resolution, a burst) still give entries
// strictly ordered in time: a chunk's read time comes after the previous chunk's last entry
// (read time + entry index in ns, streams.Entries).
func TestTailerEntriesStrictlyOrderedAcrossChunks(t *testing.T) {
	e := newTailEnv(t, base(), "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\n")
	var times []time.Time
	for range 100 {
		c, err := e.tl.Next(e.now, false)
		if err != nil {
			t.Fatal(err)
		}
		if c == nil {
			break
		}
		m := e.tl.Msg(c)
		ents, err := streams.Entries(m.Subject, m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range ents {
			times = append(times, en.Time)
		}
		e.tl.Commit()
	}
	if len(times) != 11 {
		t.Fatalf("%d entries, want 11", len(times))
	}
	for i := 1; i < len(times); i++ {
		if !times[i].After(times[i-1]) {
			t.Fatalf("entry %d at %v, not after entry %d at %v", i, times[i].Format(time.RFC3339Nano), i-1, times[i-1].Format(time.RFC3339Nano))
		}
	}
}

// A final file more than max_chunk_bytes behind: each read fills the buffer mid-line, and
// only the end of the file flushes a partial last line (a line of a rotated file 2.7 MB
// behind was published cut in two: "0000" and "99632 the quick…").
func TestTailerFinalFlushesOnlyAtEnd(t *testing.T) {
	e := newTailEnv(t, base(), "aaaaaa\nbbbbbb\ncccccc\ndddddd\nee")
	eq(t, e.drain(true), "aaaaaa\n", "bbbbbb\n", "cccccc\n", "dddddd\n", "ee")
}
