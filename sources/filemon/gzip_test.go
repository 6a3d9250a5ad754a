package filemon

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logcap/logcap/streams"
)

func gzipBytes(t testing.TB, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func lines(prefix string, from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "%s %05d\n", prefix, i)
	}
	return b.String()
}

type gzEnv struct {
	t    testing.TB
	path string
	cfg  *TailConfig
	tl   *Tailer
	now  time.Time
}

func gzConfig() TailConfig {
	return TailConfig{Host: "h", MaxLineBytes: 64, MaxChunkBytes: 256, PartialFlush: time.Second,
		MultilineTimeout: time.Second, CloseRemovedAfter: 10 * time.Second, GzipSettle: 100 * time.Millisecond}
}

// newGzEnv writes data to x.log.gz and follows it from offset (toEnd: from its end).
func newGzEnv(t testing.TB, cfg TailConfig, data []byte, offset int64, toEnd bool) *gzEnv {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.log.gz")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	id, _ := StatID(fi)
	head, _ := GzipHead(f) // nil when not decodable yet: the tailer fills it
	e := &gzEnv{t: t, path: path, cfg: &cfg, now: time.Unix(1000, 0)}
	e.tl = NewGzipTailer(e.cfg, path, f, id, offset, head, toEnd, e.now)
	t.Cleanup(func() { e.tl.Close() })
	return e
}

// drain commits every chunk Next gives, checking that chunks chain, until there is none.
func (e *gzEnv) drain() string {
	e.t.Helper()
	var out strings.Builder
	for range 100000 {
		c, err := e.tl.Next(e.now, false)
		if err != nil {
			e.t.Fatal(err)
		}
		if c == nil {
			if e.tl.Busy() {
				continue
			}
			return out.String()
		}
		if c.File.Start != e.tl.Offset() || c.File.End-c.File.Start != int64(len(c.Data)) {
			e.t.Fatalf("chunk %d..%d of %d bytes at offset %d", c.File.Start, c.File.End, len(c.Data), e.tl.Offset())
		}
		m := e.tl.Msg(c)
		d, err := streams.DecodeChunk(m.Subject, m.Header, m.Data)
		if err != nil {
			e.t.Fatal(err)
		}
		d.EachEntry(func(_ int, b []byte, _ bool) { out.Write(b) })
		e.tl.Commit()
	}
	e.t.Fatal("no end")
	return ""
}

func (e *gzEnv) write(b []byte) {
	f, err := os.OpenFile(e.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		e.t.Fatal(err)
	}
}

func TestGzipTailer(t *testing.T) {
	text := lines("line", 0, 2000) // 22,000 bytes, many chunks of 256
	gz := gzipBytes(t, text)
	t.Run("complete file read once, to its end", func(t *testing.T) {
		e := newGzEnv(t, gzConfig(), gz, 0, false)
		if got := e.drain(); got != text {
			t.Fatalf("got %d bytes, want %d", len(got), len(text))
		}
		if !e.tl.Done() || e.tl.Err() != nil || e.tl.Offset() != int64(len(text)) || e.tl.Behind() != 0 {
			t.Fatalf("done %v err %v offset %d behind %d", e.tl.Done(), e.tl.Err(), e.tl.Offset(), e.tl.Behind())
		}
		if e.tl.FP() != Fingerprint([]byte(text)) {
			t.Fatal("fingerprint is not the decompressed one")
		}
	})
	t.Run("resume from a position, and after close and reopen", func(t *testing.T) {
		off := int64(len(lines("line", 0, 700)))
		e := newGzEnv(t, gzConfig(), gz, off, false)
		c, _ := e.tl.Next(e.now, false)
		first := string(c.Data)
		e.tl.Commit()
		e.tl.Close() // max_open_files: decompressed again from the start on reopen
		if err := e.tl.Reopen(e.path); err != nil {
			t.Fatal(err)
		}
		if got := first + e.drain(); got != text[off:] {
			t.Fatalf("got %d bytes, want %d", len(got), len(text)-int(off))
		}
	})
	t.Run("a copy shorter than its original's end: nothing, ends there", func(t *testing.T) {
		e := newGzEnv(t, gzConfig(), gz, int64(len(text))+500, false)
		if got := e.drain(); got != "" || !e.tl.Done() || e.tl.Err() != nil || e.tl.Offset() != int64(len(text)) {
			t.Fatalf("got %q, done %v, err %v, offset %d", got, e.tl.Done(), e.tl.Err(), e.tl.Offset())
		}
	})
	t.Run("skip later: SkipTo before reading", func(t *testing.T) {
		e := newGzEnv(t, gzConfig(), gz, 0, false)
		e.tl.SkipTo(int64(len(lines("line", 0, 1999))))
		if got := e.drain(); got != lines("line", 1999, 2000) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("start at end", func(t *testing.T) {
		e := newGzEnv(t, gzConfig(), gz, 0, true)
		if got := e.drain(); got != "" || e.tl.Offset() != int64(len(text)) {
			t.Fatalf("got %d bytes, offset %d", len(got), e.tl.Offset())
		}
	})
	t.Run("bad CRC: what decoded is read, then one error", func(t *testing.T) {
		bad := bytes.Clone(gz)
		bad[len(bad)-5] ^= 0xff // the CRC-32 in the trailer
		e := newGzEnv(t, gzConfig(), bad, 0, false)
		got := e.drain()
		if !strings.HasPrefix(text, got) || !errors.Is(e.tl.Err(), gzip.ErrChecksum) || !e.tl.Done() {
			t.Fatalf("got %d bytes, err %v", len(got), e.tl.Err())
		}
	})
	t.Run("corrupt deflate data", func(t *testing.T) {
		bad := bytes.Clone(gz)
		for i := 40; i < 60; i++ {
			bad[i] = 0xff
		}
		e := newGzEnv(t, gzConfig(), bad, 0, false)
		got := e.drain()
		if !strings.HasPrefix(text, got) || e.tl.Err() == nil || !strings.Contains(e.tl.Err().Error(), "corrupt gzip") {
			t.Fatalf("got %d bytes, err %v", len(got), e.tl.Err())
		}
	})
}

// TestGzipTailerGrowing: a .gz still being written ends early; complete lines up to there
// are read, the partial one is held however long, and the rest is read once it grows.
func TestGzipTailerGrowing(t *testing.T) {
	var all bytes.Buffer
	w := gzip.NewWriter(&all)
	var cuts []int // compressed size after each piece
	var pieces []string
	for i, p := range []string{lines("a", 0, 300), "half of a li", "ne\n" + lines("b", 0, 300), lines("c", 0, 5)} {
		w.Write([]byte(p))
		if i < 3 {
			w.Flush() // what was written so far is decodable
		} else {
			w.Close()
		}
		cuts = append(cuts, all.Len())
		pieces = append(pieces, p)
	}
	data := all.Bytes()
	e := newGzEnv(t, gzConfig(), data[:cuts[0]-3], 0, false) // even the flush is incomplete
	var got strings.Builder
	got.WriteString(e.drain())
	if !strings.HasPrefix(pieces[0], got.String()) || !strings.HasSuffix("\n"+got.String(), "\n") {
		t.Fatalf("before the first flush is complete: %q", got.String())
	}
	written := cuts[0] - 3
	for i, cut := range cuts {
		e.write(data[written:cut])
		written = cut
		e.now = e.now.Add(e.cfg.GzipSettle) // grown, then settled
		for range 2 {
			got.WriteString(e.drain())
			e.now = e.now.Add(5 * e.cfg.PartialFlush) // a partial line is not flushed
		}
		want := strings.Join(pieces[:i+1], "")
		if i < len(cuts)-1 {
			want = want[:strings.LastIndexByte(want, '\n')+1]
		}
		if got.String() != want {
			t.Fatalf("after piece %d: got %d bytes, want %d", i, got.Len(), len(want))
		}
		if e.tl.Err() != nil || e.tl.Done() != (i == len(cuts)-1) {
			t.Fatalf("after piece %d: err %v, done %v", i, e.tl.Err(), e.tl.Done())
		}
	}
}

// TestGzipTailerTruncated: a stream that ends early and never grows is given up after
// CloseRemovedAfter, its partial last line published, with one error.
func TestGzipTailerTruncated(t *testing.T) {
	text := lines("t", 0, 500)
	gz := gzipBytes(t, text)
	e := newGzEnv(t, gzConfig(), gz[:len(gz)/2], 0, false)
	got := e.drain()
	if e.tl.Done() || !strings.HasPrefix(text, got) {
		t.Fatalf("gave up at once, or read wrong bytes (%d)", len(got))
	}
	e.now = e.now.Add(e.cfg.CloseRemovedAfter / 2)
	if got += e.drain(); e.tl.Done() {
		t.Fatal("gave up before close_removed_after")
	}
	e.now = e.now.Add(e.cfg.CloseRemovedAfter)
	got += e.drain()
	if !e.tl.Done() || e.tl.Err() == nil || !strings.Contains(e.tl.Err().Error(), "truncated") {
		t.Fatalf("done %v err %v", e.tl.Done(), e.tl.Err())
	}
	if !strings.HasPrefix(text, got) || e.tl.Buffered() {
		t.Fatalf("read %d bytes, buffered %v", len(got), e.tl.Buffered())
	}
}

func TestGzipHead(t *testing.T) {
	text := lines("h", 0, 200)
	gz := gzipBytes(t, text)
	small := gzipBytes(t, "one line\n")
	for _, tc := range []struct {
		name string
		data []byte
		want string
		err  error
	}{
		{"complete, long", gz, text[:FingerprintBytes], nil},
		{"complete, shorter than 1 KiB", small, "one line\n", nil},
		{"empty", nil, "", ErrGzipPartial},
		{"magic only", gz[:2], "", ErrGzipPartial},
		{"header only", gz[:10], "", ErrGzipPartial},
		{"short file cut", small[:len(small)-4], "", ErrGzipPartial},
		{"plain text", []byte("plain text\n"), "", ErrNotGzip},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head, err := GzipHead(bytes.NewReader(tc.data))
			if !errors.Is(err, tc.err) || string(head) != tc.want {
				t.Fatalf("head %q err %v", head, err)
			}
		})
	}
	bad := bytes.Clone(gz)
	bad[2] = 7 // compression method other than deflate
	if _, err := GzipHead(bytes.NewReader(bad)); err == nil || errors.Is(err, ErrGzipPartial) {
		t.Fatalf("bad header: %v", err)
	}
}

// FuzzGzipTailer: arbitrary bytes named .gz never panic, and what is published is the
// decompressed stream, or a prefix of it when the stream is cut or corrupt.
func FuzzGzipTailer(f *testing.F) {
	f.Add(gzipBytes(f, lines("f", 0, 50)))
	f.Add(gzipBytes(f, "")[:15])
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1, 2, 3})
	f.Add(append(gzipBytes(f, "a\nb"), gzipBytes(f, "c\n")...))
	f.Add([]byte("not gzip at all\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := gzConfig()
		cfg.CloseRemovedAfter = 0 // an early end is final at once
		e := newGzEnv(t, cfg, data, 0, false)
		got := e.drain()
		e.now = e.now.Add(time.Second)
		got += e.drain()
		if !e.tl.Done() {
			t.Fatalf("not done: %v", e.tl.Err())
		}
		zr, err := gzip.NewReader(bytes.NewReader(data))
		var want []byte
		if err == nil {
			want, err = io.ReadAll(zr)
		}
		if err == nil && (got != string(want) || e.tl.Err() != nil) {
			t.Fatalf("valid gzip: got %d bytes, want %d; err %v", len(got), len(want), e.tl.Err())
		}
		if !strings.HasPrefix(string(want), got) {
			t.Fatalf("published %q, not a prefix of the stream %q", got, want)
		}
	})
}
