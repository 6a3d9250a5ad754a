// The generated input (numbered lines) and the check that a sink received each once.

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
)

const lineLen = 200

// line writes line seq, 199 bytes and '\n': even numbers are JSON objects, odd ones plain
// text; both carry the number at a fixed place, so the check finds it in any sink output.
func line(buf []byte, seq int) []byte {
	const pad = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat"
	start := len(buf)
	if seq%2 == 0 {
		buf = fmt.Appendf(buf, `{"seq":"%010d","level":"info","ts":"2026-11-27T13:56:37.123456Z","user":%d,"msg":"`, seq, seq%977)
		buf = append(buf, pad[:lineLen-3-(len(buf)-start)]...)
		buf = append(buf, `"}`...)
	} else {
		buf = fmt.Appendf(buf, `%010d 2026-11-27T13:56:37.123456Z WARN user=%d `, seq, seq%977)
		buf = append(buf, pad[:lineLen-1-(len(buf)-start)]...)
	}
	return append(buf, '\n')
}

// seqOf finds a line's number (see line).
func seqOf(l []byte) (int, bool) {
	var d []byte
	switch {
	case bytes.HasPrefix(l, []byte(`{"seq":"`)) && len(l) >= 18:
		d = l[8:18]
	case len(l) >= 10:
		d = l[:10]
	default:
		return 0, false
	}
	n := 0
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func generate(path string, from, to int) (int64, error) { return generateWith(path, from, to, nil) }

// criPrefix is what a CRI runtime writes before each line of the bench's CRI file.
const criPrefix = "2026-12-06T07:00:00.123456789Z stdout F "

// generateCRI writes the same lines as a container runtime's CRI log file (type: kubernetes):
// `<RFC3339Nano> stdout F <line>`; logcap's raw output of it is the file again.
func generateCRI(path string, from, to int) (int64, error) {
	return generateWith(path, from, to, []byte(criPrefix))
}

func generateWith(path string, from, to int, prefix []byte) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var buf []byte
	var n int64
	for i := from; i < to; i++ {
		buf = line(buf[:0], i)
		if len(buf) != lineLen {
			return 0, fmt.Errorf("line %d is %d bytes", i, len(buf))
		}
		w.Write(prefix)
		w.Write(buf)
		n += int64(len(prefix) + len(buf))
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	return n, f.Close()
}

// tally checks that out holds every line of [0, n) exactly once.
type tally struct {
	seen         []bool
	total, dups  int
	bad, missing int
}

func (t *tally) add(l []byte) {
	seq, ok := seqOf(bytes.TrimPrefix(l, []byte(criPrefix)))
	if !ok || seq >= len(t.seen) {
		t.bad++
		return
	}
	t.total++
	if t.seen[seq] {
		t.dups++
	}
	t.seen[seq] = true
}

func (t *tally) result() error {
	t.missing = 0
	for _, s := range t.seen {
		if !s {
			t.missing++
		}
	}
	if t.missing != 0 || t.dups != 0 || t.bad != 0 || t.total != len(t.seen) {
		return fmt.Errorf("incomplete: want %d lines once; got %d, missing %d, duplicated %d, unparsable %d",
			len(t.seen), t.total, t.missing, t.dups, t.bad)
	}
	return nil
}

func checkFile(path string, n int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	t := &tally{seen: make([]bool, n)}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		t.add(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := t.result(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
