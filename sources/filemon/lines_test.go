package filemon

import (
	"bytes"
	"regexp"
	"testing"
)

func TestSplitLines(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		max   int
		flush bool
		want  []Line
		n     int
	}{
		{"empty", "", 10, false, nil, 0},
		{"one", "a\n", 10, false, []Line{{Len: 2}}, 2},
		{"crlf kept", "a\r\nb\r\n", 10, false, []Line{{Len: 3}, {Len: 3}}, 6},
		{"partial held", "a\nbc", 10, false, []Line{{Len: 2}}, 2},
		{"partial flushed", "a\nbc", 10, true, []Line{{Len: 2}, {Len: 2, Unterminated: true}}, 4},
		{"long split", "abcdefg\n", 3, false, []Line{{Len: 3, Continued: true}, {Len: 3, Continued: true}, {Len: 2}}, 8},
		{"exactly max with newline", "ab\n", 3, false, []Line{{Len: 3}}, 3},
		{"long partial held", "abcd", 3, false, []Line{{Len: 3, Continued: true}}, 3},
		{"empty lines", "\n\n", 3, false, []Line{{Len: 1}, {Len: 1}}, 2},
		{"nul and invalid utf8", "\x00\xff\xfe\n", 10, false, []Line{{Len: 4}}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n := SplitLines([]byte(tt.in), tt.max, tt.flush, nil)
			if n != tt.n || len(got) != len(tt.want) {
				t.Fatalf("got %+v n=%d, want %+v n=%d", got, n, tt.want, tt.n)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("line %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// checkSplit holds the splitter's invariants: lines tile a prefix of the input, none is
// above max, a line ends in '\n' unless it is a cut part or the flushed tail, and what is
// held back is shorter than max and has no '\n'.
func checkSplit(t *testing.T, in []byte, max int, flush bool) {
	lines, n := SplitLines(in, max, flush, nil)
	off := 0
	for i, l := range lines {
		if l.Len < 1 || l.Len > max {
			t.Fatalf("line %d: len %d, max %d", i, l.Len, max)
		}
		b := in[off : off+l.Len]
		switch {
		case l.Continued:
			if l.Len != max || bytes.IndexByte(b, '\n') >= 0 {
				t.Fatalf("cut part %d: %q", i, b)
			}
		case l.Unterminated:
			if !flush || i != len(lines)-1 || bytes.IndexByte(b, '\n') >= 0 {
				t.Fatalf("unterminated part %d: %q", i, b)
			}
		default:
			if bytes.IndexByte(b, '\n') != l.Len-1 {
				t.Fatalf("line %d does not end at its only newline: %q", i, b)
			}
		}
		off += l.Len
	}
	if off != n {
		t.Fatalf("lines cover %d bytes, n=%d", off, n)
	}
	rest := in[n:]
	if flush && len(rest) > 0 || len(rest) >= max || bytes.IndexByte(rest, '\n') >= 0 {
		t.Fatalf("held back %q (max %d, flush %v)", rest, max, flush)
	}
}

func FuzzLineSplitter(f *testing.F) {
	f.Add([]byte("a\nb\r\nccc"), 2, false)
	f.Add([]byte("\x00\xff\n\n"), 1, true)
	f.Fuzz(func(t *testing.T, in []byte, max int, flush bool) {
		max = 1 + (max&0xffff)%64
		checkSplit(t, in, max, flush)
	})
}

func entriesOf(t *testing.T, ml *Multiline, in string, max int, flush bool) []string {
	t.Helper()
	lines, n := SplitLines([]byte(in), max, flush, nil)
	es, m := ml.Join([]byte(in)[:n], lines, flush, nil)
	var out []string
	off := 0
	for _, e := range es {
		out = append(out, in[off:off+e.Len])
		off += e.Len
	}
	if off != m {
		t.Fatalf("entries cover %d, consumed %d", off, m)
	}
	return out
}

func TestMultiline(t *testing.T) {
	start := &Multiline{Start: regexp.MustCompile(`^\d{4}-`), MaxLines: 3, MaxBytes: 100}
	cont := &Multiline{Continue: regexp.MustCompile(`^\s`), MaxLines: 100, MaxBytes: 100}
	trace := "2024-01-01 boom\n\tat a\n\tat b\n2024-01-01 ok\n"
	tests := []struct {
		name  string
		ml    *Multiline
		in    string
		flush bool
		want  []string
	}{
		{"none: one per line", nil, "a\nb\n", false, []string{"a\n", "b\n"}},
		{"start: last held", start, trace, false, []string{"2024-01-01 boom\n\tat a\n\tat b\n"}},
		{"start: flush", start, trace, true, []string{"2024-01-01 boom\n\tat a\n\tat b\n", "2024-01-01 ok\n"}},
		{"start: leading continuation", start, "x\ny\n2024-01-01 z\n", true, []string{"x\ny\n", "2024-01-01 z\n"}},
		{"start: max_lines", start, "2024-\na\nb\nc\n", false, []string{"2024-\na\nb\n"}},
		{"continue", cont, "e1\n a\n b\ne2\n", false, []string{"e1\n a\n b\n"}},
		{"continue crlf", cont, "e1\r\n a\r\ne2\r\n", true, []string{"e1\r\n a\r\n", "e2\r\n"}},
		{"max bytes", &Multiline{Continue: regexp.MustCompile(`^\s`), MaxLines: 100, MaxBytes: 8}, "e1\n a\n b\n", true, []string{"e1\n a\n", " b\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := entriesOf(t, tt.ml, tt.in, 100, tt.flush)
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestMultilineSplitParts(t *testing.T) {
	ml := &Multiline{Continue: regexp.MustCompile(`^\s`), MaxLines: 100, MaxBytes: 4}
	lines, n := SplitLines([]byte("x\n abcdefg\n"), 4, false, nil)
	es, m := ml.Join([]byte("x\n abcdefg\n")[:n], lines, false, nil)
	// "x\n" closes when a split part comes; the parts are entries of their own
	want := []Entry{{Len: 2, Lines: 1}, {Len: 4, Lines: 1, Continued: true}, {Len: 4, Lines: 1, Continued: true}, {Len: 1, Lines: 1}}
	if m != 11 || len(es) != len(want) {
		t.Fatalf("got %+v (%d)", es, m)
	}
	for i := range es {
		if es[i] != want[i] {
			t.Fatalf("got %+v", es)
		}
	}
}

func FuzzMultiline(f *testing.F) {
	f.Add([]byte("2024 a\n b\n2024 c\n"), 3, 16, false, true)
	f.Add([]byte(" x\n\ny"), 1, 2, true, false)
	re := regexp.MustCompile(`^\d`)
	sp := regexp.MustCompile(`^\s`)
	f.Fuzz(func(t *testing.T, in []byte, maxLines, maxBytes int, flush, useStart bool) {
		maxBytes = 1 + (maxBytes&0xffff)%64
		ml := &Multiline{MaxLines: 1 + (maxLines&0xffff)%10, MaxBytes: maxBytes}
		if useStart {
			ml.Start = re
		} else {
			ml.Continue = sp
		}
		lines, n := SplitLines(in, maxBytes, flush, nil)
		es, m := ml.Join(in[:n], lines, flush, nil)
		sum, nl := 0, 0
		for _, e := range es {
			if e.Len < 1 || e.Len > maxBytes || e.Lines < 1 || e.Lines > ml.MaxLines {
				t.Fatalf("entry %+v breaks the bounds (max %d bytes, %d lines)", e, maxBytes, ml.MaxLines)
			}
			sum += e.Len
			nl += e.Lines
		}
		if sum != m || m > n {
			t.Fatalf("entries cover %d, consumed %d, lines %d", sum, m, n)
		}
		if flush && m != n {
			t.Fatalf("flush left %d of %d bytes", n-m, n)
		}
		// entries start at line boundaries
		ls := 0
		for i := 0; i < nl; i++ {
			ls += lines[i].Len
		}
		if ls != m {
			t.Fatalf("entries do not end at a line boundary: %d vs %d", ls, m)
		}
	})
}

func TestFingerprint(t *testing.T) {
	a := bytes.Repeat([]byte("a"), 2000)
	b := append(bytes.Repeat([]byte("a"), 1024), 'b')
	tests := []struct {
		name string
		x, y []byte
		same bool
	}{
		{"only the first KiB counts", a, b, true},
		{"short differs", []byte("abc"), []byte("abd"), false},
		{"prefix differs from whole", []byte("ab"), []byte("abc"), false},
		{"empty", nil, []byte{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Fingerprint(tt.x) == Fingerprint(tt.y); got != tt.same {
				t.Fatalf("same = %v, want %v", got, tt.same)
			}
			if len(Fingerprint(tt.x)) != 16 {
				t.Fatal("fingerprint is not 16 hex digits")
			}
		})
	}
}

func FuzzFingerprint(f *testing.F) {
	f.Add([]byte("hello\n"), int64(3))
	f.Fuzz(func(t *testing.T, data []byte, end int64) {
		if len(data) == 0 {
			return
		}
		end = 1 + (end&0x7fffffff)%int64(len(data))
		fp := Fingerprint(data[:min(end, FingerprintBytes)])
		ok, err := VerifyHead(bytes.NewReader(data), end, fp)
		if err != nil || !ok {
			t.Fatalf("VerifyHead of its own bytes: %v %v", ok, err)
		}
		// a file shorter than what was read is never the same file
		if end > 1 && end <= FingerprintBytes {
			if ok, _ := VerifyHead(bytes.NewReader(data[:end-1]), end, fp); ok {
				t.Fatal("a truncated file verified")
			}
		}
	})
}
