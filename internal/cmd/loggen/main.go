// Command loggen prints numbered lines for the dockermon tests: "<prefix> <stream> <seq>
// <padding>", seq counting per stream from 1, so that a test can check that every line
// arrived exactly once and in order on each stream. It is built statically and put in a
// FROM scratch image (there is no registry to pull from).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loggen:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 10, "lines to print (0: forever)")
	rate := flag.Float64("rate", 0, "lines per second (0: as fast as possible)")
	length := flag.Int("len", 0, "pad every line to this many bytes (without the newline)")
	stderrEvery := flag.Int("stderr-every", 0, "print every Nth line to stderr (0: none)")
	prefix := flag.String("prefix", "line", "first word of every line")
	sleepBefore := flag.Duration("sleep-before", 0, "wait this long before the first line")
	sleepAfter := flag.Duration("sleep-after", 0, "wait this long after the last line")
	flag.Parse()

	time.Sleep(*sleepBefore)
	// Buffered when unthrottled (fast), flushed per line when rate-limited (so the lines
	// have distinct timestamps and a test sees them arrive while the container runs).
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	errw := bufio.NewWriterSize(os.Stderr, 64<<10)
	var interval time.Duration
	if *rate > 0 {
		interval = time.Duration(float64(time.Second) / *rate)
	}
	next := time.Now()
	var seqOut, seqErr int
	var b strings.Builder
	for i := 1; *n == 0 || i <= *n; i++ {
		w, stream, seq := out, "stdout", &seqOut
		if *stderrEvery > 0 && i%*stderrEvery == 0 {
			w, stream, seq = errw, "stderr", &seqErr
		}
		*seq++
		b.Reset()
		b.WriteString(*prefix)
		b.WriteByte(' ')
		b.WriteString(stream)
		b.WriteByte(' ')
		b.WriteString(strconv.Itoa(*seq))
		if pad := *length - b.Len() - 1; pad > 0 {
			b.WriteByte(' ')
			for j := 0; j < pad; j++ {
				b.WriteByte(byte('a' + j%26))
			}
		}
		b.WriteByte('\n')
		// Flush at line boundaries only: with a TTY, stdout and stderr share one terminal,
		// and a flush in the middle of a line would let the other stream cut into it.
		if w.Available() < b.Len() {
			if err := w.Flush(); err != nil {
				return err
			}
		}
		if _, err := w.WriteString(b.String()); err != nil {
			return err
		}
		if interval > 0 {
			if err := flush(out, errw); err != nil {
				return err
			}
			next = next.Add(interval)
			time.Sleep(time.Until(next))
		}
	}
	if err := flush(out, errw); err != nil {
		return err
	}
	time.Sleep(*sleepAfter)
	return nil
}

func flush(ws ...*bufio.Writer) error {
	for _, w := range ws {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return nil
}
