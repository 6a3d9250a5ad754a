package critest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRuntime: containerd writes CRI log files for a container of the test image, and the
// kubelet's rotation (rename, ReopenContainerLog) makes it write a new file.
func TestRuntime(t *testing.T) {
	r := Start(t)
	p := r.RunPod("ns1", "pod-a", "uid-a")
	c := r.Create(p, "app", 0, "lines", "a", "30", "10", "40000", "20000", "hold")
	r.Start(c)
	log := filepath.Join(p.LogDir, "app", "0.log")
	waitFor(t, func() bool { b, _ := os.ReadFile(log); return bytes.Count(b, []byte("\n")) >= 3 })
	rotated := r.Rotate(p, c, time.Now())
	waitFor(t, func() bool { // a line after the rotation, and the first long one
		old, _ := os.ReadFile(rotated)
		cur, _ := os.ReadFile(log)
		return bytes.Count(cur, []byte("\n")) >= 1 && bytes.Contains(append(old, cur...), []byte(" stdout P "))
	})
	r.Stop(c)
	waitFor(t, func() bool { ok, _ := r.Exited(c); return ok })
	old, _ := os.ReadFile(rotated)
	cur, _ := os.ReadFile(log)
	t.Logf("rotated %d bytes, current %d bytes\n%.300s\n…\n%.300s", len(old), len(cur), old, cur)
	if len(old) == 0 || len(cur) == 0 {
		t.Fatal("want lines in both files")
	}
	if !bytes.Contains(append(old, cur...), []byte(" stdout P ")) {
		t.Error("want 40,000-byte lines split into P parts")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
