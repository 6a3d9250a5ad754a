package filemon_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/logcap/logcap/config"
	core "github.com/logcap/logcap/sources/filemon"
	"github.com/logcap/logcap/streams"
)

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func lineFile(b *testing.B, path string, n int) int64 {
	line := bytes.Repeat([]byte("x"), 199)
	line = append(line, '\n')
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := bytes.Repeat(line, 5000)
	for left := n; left > 0; left -= 5000 {
		f.Write(buf[:min(left, 5000)*200])
	}
	return int64(n) * 200
}

// gzipLineFile writes n 200-byte lines of varied text (a sequence number, a level and
// words drawn from a small vocabulary: gzip -6 compresses them about 4:1, like real logs)
// gzipped to path, and returns the decompressed size.
func gzipLineFile(b *testing.B, path string, n int) int64 {
	words := strings.Fields("GET POST user=alice user=bob status=200 status=404 took=12ms took=1.2s path=/api/v1/items " +
		"path=/login level=info level=warn level=error msg=request msg=timeout retry=3 id=7f3a9c id=00b1e4")
	rnd := rand.New(rand.NewPCG(1, 2))
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	w := gzip.NewWriter(bw)
	line := make([]byte, 0, 200)
	for i := range n {
		line = fmt.Appendf(line[:0], "%012d", i)
		for len(line) < 199 {
			line = append(append(line, ' '), words[rnd.IntN(len(words))]...)
		}
		line = append(line[:199], '\n')
		w.Write(line)
	}
	if err := errors.Join(w.Close(), bw.Flush()); err != nil {
		b.Fatal(err)
	}
	return int64(n) * 200
}

func report(b *testing.B, bytes int64, lines int, el time.Duration, cpu float64) {
	b.ReportMetric(float64(bytes)/1e6/el.Seconds(), "MB/s")
	b.ReportMetric(float64(lines)/el.Seconds(), "lines/s")
	b.ReportMetric(cpu/(float64(bytes)/1e9), "cpu-s/GB")
}

// BenchmarkFileToLogs: 200-byte lines from a file into LOGS (embedded JetStream, in this
// process: its CPU is included), next to `cat FILE > /dev/null` and the raw publish ceiling
// (1 MiB chunks published one at a time, as one file's publisher does); and from a .gz
// (include_compressed), next to `gzip -dc FILE > /dev/null`. One op = one line.
func BenchmarkFileToLogs(b *testing.B) {
	b.Run("file-to-logs", func(b *testing.B) {
		h := newHarness(b)
		p := h.path("bench.log")
		size := lineFile(b, p, b.N)
		b.ResetTimer()
		cpu0, t0 := cpuSeconds(), time.Now()
		h.start(core.Options{Paths: []string{p}, StartAt: "beginning"})
		waitLogsBytes(b, h, size)
		report(b, size, b.N, time.Since(t0), cpuSeconds()-cpu0)
	})
	b.Run("gzip-to-logs", func(b *testing.B) {
		h := newHarness(b)
		p := h.path("bench.log.gz")
		size := gzipLineFile(b, p, b.N)
		fi, _ := os.Stat(p)
		b.ResetTimer()
		cpu0, t0 := cpuSeconds(), time.Now()
		h.start(core.Options{Paths: []string{p}, StartAt: "beginning", IncludeCompressed: true})
		waitLogsBytes(b, h, size)
		report(b, size, b.N, time.Since(t0), cpuSeconds()-cpu0)
		b.ReportMetric(float64(size)/float64(fi.Size()), "ratio")
	})
	b.Run("gunzip", func(b *testing.B) {
		p := b.TempDir() + "/bench.log.gz"
		size := gzipLineFile(b, p, b.N)
		b.ResetTimer()
		t0 := time.Now()
		cmd := exec.Command("gzip", "-dc", p)
		devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		defer devnull.Close()
		cmd.Stdout = devnull
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		report(b, size, b.N, time.Since(t0), time.Duration(ru.Utime.Nano()+ru.Stime.Nano()).Seconds())
	})
	b.Run("cat", func(b *testing.B) {
		p := b.TempDir() + "/bench.log"
		size := lineFile(b, p, b.N)
		b.ResetTimer()
		t0 := time.Now()
		cmd := exec.Command("cat", p)
		devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		defer devnull.Close()
		cmd.Stdout = devnull
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		report(b, size, b.N, time.Since(t0), time.Duration(ru.Utime.Nano()+ru.Stime.Nano()).Seconds())
	})
	b.Run("publish-ceiling", func(b *testing.B) {
		h := newHarness(b)
		chunk := bytes.Repeat(append(bytes.Repeat([]byte("x"), 199), '\n'), (1<<20)/200)
		subj := streams.SourceSubject(streams.KindFile, "h1", "/bench")
		pub := streams.NewPublisher(h.js, "LOGS", subj, 0)
		b.ResetTimer()
		cpu0, t0 := cpuSeconds(), time.Now()
		var sent int64
		for i := 0; sent < int64(b.N)*200; i++ {
			m := nats.NewMsg(subj)
			m.Data = chunk
			m.Header.Set(nats.MsgIdHdr, fmt.Sprint(i))
			if _, err := pub.Publish(context.Background(), m); err != nil {
				b.Fatal(err)
			}
			sent += int64(len(chunk))
		}
		report(b, sent, int(sent/200), time.Since(t0), cpuSeconds()-cpu0)
	})
}

// BenchmarkIdleFiles: 10,000 idle files (100 directories) with the default poll_interval:
// the CPU the monitor (and the embedded server) uses while nothing is written. It measures
// 10 s (60 s with LOGCAP_LONG=1) once, whatever b.N.
func BenchmarkIdleFiles(b *testing.B) {
	h := newHarness(b)
	for d := range 100 {
		for f := range 100 {
			appendFile(b, h.path(fmt.Sprintf("d%03d/f%03d.log", d, f)), "x\n")
		}
	}
	r := h.start(core.Options{Paths: []string{h.dir + "/**/*.log"}, StartAt: "beginning", PollInterval: config.Duration(core.DefaultPollInterval)})
	s, _ := h.js.Stream(context.Background(), "LOGS")
	for {
		info, _ := s.Info(context.Background())
		if info != nil && info.State.Msgs >= 10000 {
			break
		}
		time.Sleep(50 * time.Millisecond) // waiting for the initial read to end
	}
	d := 10 * time.Second
	if longRun() {
		d = time.Minute
	}
	b.ResetTimer()
	cpu0 := cpuSeconds()
	time.Sleep(d) // the measurement window
	b.ReportMetric(100*(cpuSeconds()-cpu0)/d.Seconds(), "cpu%")
	b.ReportMetric(float64(r.m.Stats().Open), "fds")
}

// waitLogsBytes polls LOGS until it holds at least size bytes: the end of a run.
func waitLogsBytes(b *testing.B, h *harness, size int64) {
	s, err := h.js.Stream(context.Background(), "LOGS")
	if err != nil {
		b.Fatal(err)
	}
	for {
		info, err := s.Info(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if int64(info.State.Bytes) >= size {
			return
		}
		time.Sleep(2 * time.Millisecond) // polling the stream for the end of the run
	}
}
