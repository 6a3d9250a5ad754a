package filemon_test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	core "github.com/logcap/logcap/sources/filemon"
)

func TestBadInput(t *testing.T) {
	h := newHarness(t)
	bin, utf, long := h.path("bin.log"), h.path("utf.log"), h.path("long.log")
	binData := "a\x00b\x00\x01\xff\n\x00\n"
	utfData := "caf\xc3\xa9 \xff\xfe\xc3\x28 ok\r\n"
	os.WriteFile(bin, []byte(binData), 0o644)
	os.WriteFile(utf, []byte(utfData), 0o644)
	// a 50 MiB line, then a normal one
	bigLine := bytes.Repeat([]byte("0123456789abcdef"), 50<<20/16)
	os.WriteFile(long, append(append(bigLine, '\n'), "after\n"...), 0o644)
	// things that match the glob and must be skipped: a directory, a symlink loop, a FIFO
	os.Mkdir(h.path("dir.log"), 0o755)
	os.Symlink(h.path("loop.log"), h.path("loop.log"))
	if err := syscall.Mkfifo(h.path("fifo.log"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := h.start(core.Options{Paths: []string{h.dir + "/*.log"}, StartAt: "beginning"})
	exactlyOnce(t, h.waitLines(bin, 2, 10*time.Second), binData)
	exactlyOnce(t, h.waitLines(utf, 1, 10*time.Second), utfData)
	got := h.waitLines(long, 52, 30*time.Second)
	var joined []byte
	for i, e := range got[:50] {
		if !strings.HasSuffix(e, "+") || len(e) != 1<<20+1 {
			t.Fatalf("part %d: %d bytes, continued=%v", i, len(e), strings.HasSuffix(e, "+"))
		}
		joined = append(joined, e[:len(e)-1]...)
	}
	joined = append(joined, got[50]...)
	if !bytes.Equal(joined, append(bigLine, '\n')) || got[51] != "after\n" || len(got) != 52 {
		t.Fatalf("the long line did not come back whole (%d entries)", len(got))
	}
	for _, name := range []string{"fifo.log", "loop.log"} {
		if n := h.logs.FilterField(stringField("path", h.path(name))).FilterLevelExact(zapcore.WarnLevel).Len(); n != 1 {
			t.Errorf("%s: %d warnings, want 1", name, n)
		}
	}
	r.stop(t)
	if n := len(h.stored()[h.path("fifo.log")]); n != 0 {
		t.Fatalf("fifo read: %d", n)
	}
}

// TestUnreadable needs a user that file permissions apply to: as root it runs itself again
// as nobody.
func TestUnreadable(t *testing.T) {
	if os.Getuid() == 0 {
		runAsNobody(t, "TestUnreadable")
		return
	}
	h := newHarness(t)
	bad, good := h.path("bad.log"), h.path("good.log")
	os.WriteFile(bad, []byte("secret 1\n"), 0o000)
	os.WriteFile(good, []byte("good 1\n"), 0o644)
	r := h.start(core.Options{Paths: []string{h.dir + "/*.log"}, StartAt: "beginning"})
	exactlyOnce(t, h.waitLines(good, 1, 10*time.Second), "good 1\n")
	// several scans pass; the error is logged once and names the path
	scans := r.m.Stats().Scans
	natstest_eventually(t, func() bool { return r.m.Stats().Scans >= scans+3 })
	errs := h.logs.FilterLevelExact(zapcore.ErrorLevel).All()
	if len(errs) != 1 || !strings.Contains(errs[0].Message, bad) || !strings.Contains(errs[0].Message, "permission denied") {
		t.Fatalf("want one error naming %s, got %v", bad, errs)
	}
	if err := os.Chmod(bad, 0o644); err != nil {
		t.Fatal(err)
	}
	exactlyOnce(t, h.waitLines(bad, 1, 10*time.Second), "secret 1\n")
}

func runAsNobody(t *testing.T, name string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "filemon-nobody")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o777)
	exe := filepath.Join(dir, "test.bin")
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(exe, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(dst, src)
	src.Close()
	dst.Close()
	cmd := exec.Command(exe, "-test.run=^"+name+"$", "-test.count=1", "-test.v")
	cmd.Dir = dir
	cmd.Env = []string{"TMPDIR=" + dir, "HOME=" + dir, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	t.Logf("as nobody:\n%s", out)
	if err != nil {
		t.Fatalf("as nobody: %v", err)
	}
}

// A directory symlink that leads back to an ancestor, under a `**` glob: the files are read
// once, under their shortest path, and the loop gets one warning. Before, the glob followed
// it 40 levels deep (ELOOP) and published each file under 40 subjects, up to 411 characters
// long, which the file sink then could not open (`file name too long`).
func TestSymlinkDirLoop(t *testing.T) {
	h := newHarness(t)
	app := h.path("logs/app.log")
	appendFile(t, app, numbered("a", 0, 10))
	// logs/a → logs: logs/a/a/…/app.log sorts before logs/app.log
	if err := os.Symlink(".", h.path("logs/a")); err != nil {
		t.Fatal(err)
	}
	h.start(core.Options{Paths: []string{h.dir + "/logs/**/*.log"}, StartAt: "beginning"})
	exactlyOnce(t, h.waitLines(app, 10, 10*time.Second), numbered("a", 0, 10))
	appendFile(t, app, numbered("a", 10, 20))
	exactlyOnce(t, h.waitLines(app, 20, 10*time.Second), numbered("a", 0, 20))
	if subjects := h.stored(); len(subjects) != 1 {
		var names []string
		for s := range subjects {
			names = append(names, s)
		}
		t.Errorf("%d subjects, want 1: %.300q", len(subjects), names)
	}
	if n := h.logs.FilterMessageSnippet("symlink loop").FilterLevelExact(zapcore.WarnLevel).Len(); n != 1 {
		t.Errorf("%d symlink loop warnings, want 1", n)
	}
}

// A FIFO created after start under a watched glob: its CREATE event must not block discovery
// (opening a FIFO for reading waits for a writer); it is skipped and a file created next is
// read.
func TestFIFOCreatedAfterStart(t *testing.T) {
	h := newHarness(t)
	h.start(core.Options{Paths: []string{h.dir + "/*.log"}, StartAt: "beginning"})
	if err := syscall.Mkfifo(h.path("fifo.log"), 0o644); err != nil {
		t.Fatal(err)
	}
	app := h.path("app.log")
	appendFile(t, app, numbered("a", 0, 10))
	exactlyOnce(t, h.waitLines(app, 10, 10*time.Second), numbered("a", 0, 10))
}
