package filemon_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	core "github.com/logcap/logcap/sources/filemon"
)

func TestTail(t *testing.T) {
	h := newHarness(t)
	old, later := h.path("old.log"), h.path("later.log")
	appendFile(t, old, "before 1\nbefore 2\n")
	h.start(core.Options{Paths: []string{h.dir + "/*.log"}, StartAt: "end"})
	appendFile(t, old, "after 1\n")
	appendFile(t, later, "new 1\nnew 2\n")
	exactlyOnce(t, h.waitLines(old, 1, 10*time.Second), "after 1\n")
	exactlyOnce(t, h.waitLines(later, 2, 10*time.Second), "new 1\nnew 2\n")
}

func TestStartAtBeginning(t *testing.T) {
	h := newHarness(t)
	p := h.path("a.log")
	appendFile(t, p, "x\ny\n")
	h.start(core.Options{Paths: []string{p}, StartAt: "beginning"})
	exactlyOnce(t, h.waitLines(p, 2, 10*time.Second), "x\ny\n")
}

// TestResume: stop, append, start again: every line exactly once, whatever start_at says.
func TestResume(t *testing.T) {
	h := newHarness(t)
	p := h.path("a.log")
	appendFile(t, p, numbered("l", 0, 1000))
	r := h.start(core.Options{Paths: []string{p}, StartAt: "beginning"})
	h.waitLines(p, 1000, 10*time.Second)
	r.stop(t)
	appendFile(t, p, numbered("l", 1000, 2000))
	for _, startAt := range []string{"end", "beginning"} {
		r = h.start(core.Options{Paths: []string{p}, StartAt: startAt})
		h.waitLines(p, 2000, 10*time.Second)
		r.stop(t)
	}
	exactlyOnce(t, h.stored()[p], numbered("l", 0, 2000))
}

// TestResumeAfterRetention: the subject's messages are gone; the KV position is the fallback.
func TestResumeAfterRetention(t *testing.T) {
	h := newHarness(t)
	p := h.path("a.log")
	r := h.start(core.Options{Paths: []string{p}, StartAt: "beginning"})
	appendFile(t, p, numbered("l", 0, 100))
	h.waitLines(p, 100, 10*time.Second)
	r.stop(t)
	ctx := context.Background()
	s, _ := h.js.Stream(ctx, "LOGS")
	if err := s.Purge(ctx, jetstream.WithPurgeSubject("logs.>")); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, numbered("l", 100, 150))
	h.start(core.Options{Paths: []string{p}, StartAt: "beginning"})
	exactlyOnce(t, h.waitLines(p, 50, 10*time.Second), numbered("l", 100, 150))
}

func TestRotateRenameCreate(t *testing.T) {
	h := newHarness(t)
	p := h.path("app.log")
	appendFile(t, p, "")
	h.start(core.Options{Paths: []string{p}, StartAt: "beginning"})
	appendFile(t, p, numbered("a", 0, 100))
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p+".1", numbered("a", 100, 200)) // the writer has not reopened yet
	appendFile(t, p, numbered("a", 200, 300))
	exactlyOnce(t, h.waitLines(p, 300, 15*time.Second), numbered("a", 0, 300))
}

// TestRotateRenameInGlob: the rotated name still matches: same identity, not read again.
func TestRotateRenameInGlob(t *testing.T) {
	h := newHarness(t)
	p := h.path("app.log")
	appendFile(t, p, numbered("a", 0, 10))
	r := h.start(core.Options{Paths: []string{p + "*"}, StartAt: "beginning"})
	h.waitLines(p, 10, 10*time.Second)
	os.Rename(p, p+".1")
	appendFile(t, p, numbered("b", 0, 10))
	h.waitLines(p, 20, 10*time.Second)
	r.stop(t)
	// and after a restart, app.log.1 is still known
	appendFile(t, p, numbered("b", 10, 20))
	h.start(core.Options{Paths: []string{p + "*"}, StartAt: "beginning"})
	got := h.waitLines(p, 30, 10*time.Second)
	exactlyOnce(t, got, numbered("a", 0, 10)+numbered("b", 0, 20))
	if n := len(h.stored()[p+".1"]); n != 0 {
		t.Fatalf("app.log.1 read again under its own name: %d entries", n)
	}
}

// TestRotateWhileStopped: rotated while logcap was down, with lines not yet read in the old file.
func TestRotateWhileStopped(t *testing.T) {
	h := newHarness(t)
	p := h.path("app.log")
	r := h.start(core.Options{Paths: []string{p}, StartAt: "beginning"})
	appendFile(t, p, numbered("a", 0, 10))
	h.waitLines(p, 10, 10*time.Second)
	r.stop(t)
	appendFile(t, p, numbered("a", 10, 20))
	os.Rename(p, p+".1")
	appendFile(t, p, numbered("b", 0, 10))
	h.start(core.Options{Paths: []string{p}, StartAt: "beginning"})
	exactlyOnce(t, h.waitLines(p, 30, 10*time.Second), numbered("a", 0, 20)+numbered("b", 0, 10))
}

func TestCopyTruncate(t *testing.T) {
	h := newHarness(t)
	p := h.path("app.log")
	appendFile(t, p, "")
	r := h.start(core.Options{Paths: []string{p}, StartAt: "beginning"})
	appendFile(t, p, numbered("a", 0, 50))
	h.waitLines(p, 50, 10*time.Second)
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, numbered("b", 0, 100)) // larger than before: only the first bytes tell
	exactlyOnce(t, h.waitLines(p, 150, 10*time.Second), numbered("a", 0, 50)+numbered("b", 0, 100))
	_ = r
}

func TestDeletedWhileOpen(t *testing.T) {
	h := newHarness(t)
	p := h.path("app.log")
	appendFile(t, p, "")
	r := h.start(core.Options{Paths: []string{p}, StartAt: "beginning", CloseRemovedAfter: 200 * 1e6})
	w, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString(numbered("a", 0, 10))
	h.waitLines(p, 10, 10*time.Second)
	os.Remove(p)
	w.WriteString(numbered("a", 10, 20)) // written after the unlink: still read
	w.Close()
	exactlyOnce(t, h.waitLines(p, 20, 10*time.Second), numbered("a", 0, 20))
	natstest_eventually(t, func() bool { return r.m.Stats().Open == 0 && r.m.Stats().Subjects == 0 })
}

func natstest_eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
