package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// latency appends numbered lines to a tailed file at rate lines/s, in the small writes a
// logging application makes (each millisecond what is due), and watches the sink's file:
// a line's latency is from the return of its write to the moment the driver reads it in the
// sink's output (polled every millisecond, so up to 1 ms is the driver's own).
func latency(bin, dir string, rate int, d time.Duration) (row, error) {
	watch, err := os.MkdirTemp(dir, "watch-")
	if err != nil {
		return row{}, err
	}
	defer os.RemoveAll(watch)
	path := filepath.Join(watch, "lat.log")
	w, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return row{}, err
	}
	defer w.Close()
	p, err := start(bin, dir, false, pipelineConfig(watch, pipeline{}))
	if err != nil {
		return row{}, err
	}
	defer p.stop() // after a failed measurement; a measured one is stopped (and checked) below
	// A first line sets up the sink's file; the measurement starts after it arrived.
	out := filepath.Join(p.dir, "out.log")
	total := int(float64(rate) * d.Seconds())
	if _, err := w.Write(line(nil, total)); err != nil {
		return row{}, err
	}
	if err := waitFirst(out); err != nil {
		return row{}, err
	}
	r, err := os.Open(out)
	if err != nil {
		return row{}, err
	}
	defer r.Close()
	s := &sinkReader{r: r, t: &tally{seen: make([]bool, total+1)}, recv: make([]time.Time, total+1), buf: make([]byte, 1<<20)}
	cpu0, _, err := p.stat()
	if err != nil {
		return row{}, err
	}
	load := loadavg()
	t0 := time.Now()
	sent, err := drive(w, s, rate, total, d, t0)
	if err != nil {
		return row{}, err
	}
	el, cpu1, hwm, err := p.since(t0)
	if err != nil {
		return row{}, err
	}
	if err := s.t.result(); err != nil {
		return row{}, fmt.Errorf("latency: %w", err)
	}
	lat := make([]time.Duration, 0, total)
	for i := range total {
		lat = append(lat, s.recv[i].Sub(sent[i]))
	}
	slices.Sort(lat)
	if err := p.stop(); err != nil {
		return row{}, err
	}
	return row{name: fmt.Sprintf("latency append → sink file at %d lines/s (%v)", rate, d), lines: total,
		bytes: int64(total) * lineLen, elapsed: el, cpu: cpu1 - cpu0, rssKiB: hwm, latency: true,
		p50: lat[len(lat)/2], p99: lat[len(lat)*99/100], load: load, note: "all lines once"}, nil
}

// waitFirst waits for the warm-up line to make the sink's file.
func waitFirst(out string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if fi, err := os.Stat(out); err == nil && fi.Size() > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("latency: the first line did not reach the sink in 30s")
		}
		time.Sleep(5 * time.Millisecond) // waiting for the warm-up line
	}
}

// drive writes lines [0, total) from t0 on at rate lines/s, each millisecond what is due,
// and reads the sink's output between writes, until every line and the warm-up line
// arrived (or d + 30 s passed: the tally then names what is missing). It returns when each
// line's write returned.
func drive(w io.Writer, s *sinkReader, rate, total int, d time.Duration, t0 time.Time) ([]time.Time, error) {
	sent := make([]time.Time, total+1)
	var buf []byte
	written := 0
	for written < total || s.t.total < total+1 {
		now := time.Now()
		if due := min(total, int(float64(rate)*now.Sub(t0).Seconds())); due > written {
			buf = buf[:0]
			for i := written; i < due; i++ {
				buf = line(buf, i)
			}
			if _, err := w.Write(buf); err != nil {
				return nil, err
			}
			at := time.Now()
			for i := written; i < due; i++ {
				sent[i] = at
			}
			written = due
		}
		if err := s.read(time.Now()); err != nil {
			return nil, err
		}
		if now.Sub(t0) > d+30*time.Second {
			break
		}
		time.Sleep(time.Until(now.Add(time.Millisecond))) // the writer's and reader's clock
	}
	return sent, nil
}

// sinkReader reads the sink's file as it grows: each whole line is tallied, and the first
// time a line's number is seen is its arrival (recv).
type sinkReader struct {
	r            io.Reader
	t            *tally
	recv         []time.Time
	pending, buf []byte
}

// read takes in what the sink wrote since the last call, noting now as the arrival of the
// lines it completes.
func (s *sinkReader) read(now time.Time) error {
	for {
		n, err := s.r.Read(s.buf)
		s.pending = append(s.pending, s.buf[:n]...)
		for {
			i := bytes.IndexByte(s.pending, '\n')
			if i < 0 {
				break
			}
			l := s.pending[:i]
			if seq, ok := seqOf(l); ok && seq < len(s.recv) && s.recv[seq].IsZero() {
				s.recv[seq] = now
			}
			s.t.add(l)
			s.pending = s.pending[i+1:]
		}
		if err == io.EOF || n == 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// idle: n files of one line each in n/100 directories, all tailed (fsnotify on their
// directories plus the poll_interval safety net); after the initial read, the CPU logcap
// uses over d while nothing is written.
func idle(bin, dir string, n int, d time.Duration) (row, error) {
	watch, err := os.MkdirTemp(dir, "idle-")
	if err != nil {
		return row{}, err
	}
	defer os.RemoveAll(watch)
	for i := range n {
		sub := filepath.Join(watch, fmt.Sprintf("d%03d", i/100))
		if i%100 == 0 {
			if err := os.Mkdir(sub, 0o755); err != nil {
				return row{}, err
			}
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d.log", i%100)), []byte("x\n"), 0o644); err != nil {
			return row{}, err
		}
	}
	cfg := fmt.Sprintf("sources:\n  - {name: idle, type: file, paths: [%q], start_at: beginning}\n", filepath.Join(watch, "**", "*.log"))
	p, err := start(bin, dir, false, cfg)
	if err != nil {
		return row{}, err
	}
	defer p.stop() // after a failed measurement; a measured one is stopped (and checked) below
	deadline := time.Now().Add(5 * time.Minute)
	for {
		v, err := p.metric("logcap_filemon_lines_total")
		if err != nil {
			return row{}, err
		}
		if v >= float64(n) {
			if v != float64(n) {
				return row{}, fmt.Errorf("idle: %v lines read, want %d", v, n)
			}
			break
		}
		if time.Now().After(deadline) {
			return row{}, fmt.Errorf("idle: %v of %d lines read after 5m", v, n)
		}
		time.Sleep(100 * time.Millisecond) // waiting for the initial read
	}
	time.Sleep(3 * time.Second) // let the initial burst's tail (position writes) settle
	load := loadavg()
	cpu0, _, err := p.stat()
	if err != nil {
		return row{}, err
	}
	if *profileDir != "" { // the profile request lasts the measurement window
		if err := p.fetch(fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds())), filepath.Join(*profileDir, "cpu-idle.pprof")); err != nil {
			return row{}, err
		}
	} else {
		time.Sleep(d) // the measurement window
	}
	cpu1, hwm, err := p.stat()
	if err != nil {
		return row{}, err
	}
	v, err := p.metric("logcap_filemon_lines_total")
	if err != nil {
		return row{}, err
	}
	if v != float64(n) {
		return row{}, fmt.Errorf("idle: %v lines read, want %d", v, n)
	}
	if err := p.stop(); err != nil {
		return row{}, err
	}
	return row{name: fmt.Sprintf("%d idle tailed files, CPU over %v", n, d), idle: true,
		idleCPU: 100 * (cpu1 - cpu0) / d.Seconds(), rssKiB: hwm, load: load, note: fmt.Sprintf("%d lines read once", n)}, nil
}
