package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// fileGen appends numbered JSON lines to one file and rotates it every 2 s the way logrotate's
// `create` does: rename to app.log.<k>, create a new app.log; the five newest rotated files
// are kept.
type fileGen struct {
	dir, path string
	rate      int
	n         atomic.Int64 // lines written (their numbers are 0..n-1)
	rot       atomic.Int64
}

func newFileGen(dir string, rate int) *fileGen {
	return &fileGen{dir: dir, path: filepath.Join(dir, "app.log"), rate: rate}
}

func (g *fileGen) written() int64   { return g.n.Load() }
func (g *fileGen) rotations() int64 { return g.rot.Load() }

func (g *fileGen) init() error {
	if err := os.MkdirAll(g.dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(g.path)
	if err != nil {
		return err
	}
	return f.Close()
}

const tick = 50 * time.Millisecond

func (g *fileGen) run(ctx context.Context) error {
	f, err := os.OpenFile(g.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer func() { f.Close() }()
	t := time.NewTicker(tick)
	defer t.Stop()
	rotateAt := time.Now().Add(2 * time.Second)
	perTick := max(1, g.rate*int(tick)/int(time.Second))
	w := bufio.NewWriterSize(f, 64<<10)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for range perTick {
			n := g.n.Load()
			fmt.Fprintf(w, `{"n":%d,"msg":"soak file line %d","pad":"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"}`+"\n", n, n)
			g.n.Add(1)
		}
		// Whole lines only: logcap must never see half a line at a rotation.
		if err := w.Flush(); err != nil {
			return fmt.Errorf("write %s: %w", g.path, err)
		}
		if time.Now().Before(rotateAt) {
			continue
		}
		rotateAt = time.Now().Add(2 * time.Second)
		k := g.rot.Add(1)
		if err := f.Close(); err != nil {
			return err
		}
		if err := os.Rename(g.path, fmt.Sprintf("%s.%d", g.path, k)); err != nil {
			return err
		}
		if k > 5 {
			_ = os.Remove(fmt.Sprintf("%s.%d", g.path, k-5))
		}
		if f, err = os.OpenFile(g.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			return err
		}
		w.Reset(f)
	}
}
