package filemon_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logcap/logcap/internal/natstest"
	core "github.com/logcap/logcap/sources/filemon"
)

// TestMaxFilesBoundsAGlobTooBig (#14 item 10): `paths: ["/**"]` on a real machine matched
// 522,684 files and the monitor kept every path the glob produced (1.9 GB RSS after 2
// minutes, nothing published). A glob matching 200,000 files tracks max_files of them, the
// first in directory order; its heap stays under a bound per tracked file; every tracked
// file is published; the rest is reported (a warning, /readyz).
func TestMaxFilesBoundsAGlobTooBig(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const dirs, per, maxFiles = 200, 1000, 1000
	h := newHarness(t)
	root := memTempDir(t)
	var want []string // the first max_files in directory order: all of d000
	for d := range dirs {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range per {
			p := filepath.Join(dir, fmt.Sprintf("f%04d.log", f))
			var line []byte
			if d == 0 { // the others are empty: 200,000 inodes, no pages
				line, want = fmt.Appendf(nil, "%s\n", p), append(want, p)
			}
			if err := os.WriteFile(p, line, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := heapInUse()
	r := h.start(core.Options{Paths: []string{root + "/**"}, StartAt: "beginning", MaxFiles: maxFiles})
	natstest.CheckFor(t, 120*time.Second, 200*time.Millisecond, func() error {
		if got := h.stored(); len(got) < maxFiles {
			return fmt.Errorf("%d of %d tracked files published", len(got), maxFiles)
		}
		return nil
	})
	got := h.stored()
	var srcs []string
	for src, lines := range got {
		srcs = append(srcs, src)
		if len(lines) != 1 || lines[0] != src+"\n" {
			t.Errorf("%s: %q, want its one line once", src, lines)
		}
	}
	slices.Sort(srcs)
	if !slices.Equal(srcs, want) {
		t.Errorf("published %d files (first %v), want the %d of d000", len(srcs), first(srcs), len(want))
	}
	if st := r.m.Stats(); st.Files > maxFiles {
		t.Errorf("%d files tracked, max_files %d", st.Files, maxFiles)
	}
	if why := r.m.NotReady(); !strings.Contains(why, "max_files (1000)") {
		t.Errorf("readiness %q does not report max_files", why)
	}
	if n := h.logs.FilterMessageSnippet("more files than max_files").Len(); n != 1 {
		t.Errorf("%d warnings about max_files, want 1", n)
	}
	// Tracked files cost what placing them costs (a subject, its publisher, a tailer, the
	// embedded NATS's KV entry and chunk): 64 KiB each is 20x what it measures, and far
	// below the 200,000 paths alone the glob kept before.
	grown := int64(heapInUse()) - int64(before)
	t.Logf("heap in use grew by %.1f MiB for %d tracked files of %d matched (%.1f KiB per tracked file)",
		float64(grown)/(1<<20), maxFiles, dirs*per, float64(grown)/1024/maxFiles)
	if limit := int64(maxFiles) * 64 << 10; grown > limit {
		t.Errorf("heap grew by %d bytes, bound %d", grown, limit)
	}
}

// memTempDir is a temporary directory on tmpfs (/dev/shm) if there is one: 200,000 files
// take 2 s to create there and minutes on a busy disk.
func memTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/dev/shm", "logcap-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// heapInUse is the heap in use after a GC: live memory, not garbage.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// Copies of files through a symlink loop (/usr/bin/X11 → . made /** list /bin/X11/X11/…
// 40 levels deep) do not count towards max_files: each real directory is listed once.
func TestMaxFilesCountsEachFileOnce(t *testing.T) {
	h := newHarness(t)
	const n = 5
	var paths []string
	for i := range n {
		p := h.path(fmt.Sprintf("logs/f%d.log", i))
		appendFile(t, p, p+"\n")
		paths = append(paths, p)
	}
	if err := os.Symlink(".", h.path("logs/a")); err != nil {
		t.Fatal(err)
	}
	r := h.start(core.Options{Paths: []string{h.dir + "/logs/**"}, StartAt: "beginning", MaxFiles: n})
	for _, p := range paths {
		exactlyOnce(t, h.waitLines(p, 1, 10*time.Second), p+"\n")
	}
	if why := r.m.NotReady(); why != "" {
		t.Errorf("not ready: %s", why)
	}
	if got := h.stored(); len(got) != n {
		t.Errorf("%d subjects, want %d", len(got), n)
	}
}
