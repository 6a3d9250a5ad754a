package kubernetes

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/logcap/logcap/streams"
)

const (
	t1 = "2026-12-06T07:00:00.06599113Z"
	t2 = "2026-12-06T07:00:00.1Z"
	t3 = "2026-12-06T07:00:01.123456789Z"
	t6 = "2026-12-06T07:00:06.2Z"
)

func TestCRIFrame(t *testing.T) {
	long := strings.Repeat("x", 40)
	tests := []struct {
		name           string
		in             string
		flush          bool
		maxLine, maxCh int
		want           string // payload
		consumed       int    // -1: all of in
		continued      []int
		malformed      int
		partialFlush   time.Duration // CRI.PartialFlush
	}{
		{name: "full lines, both streams", in: t1 + " stdout F a\n" + t2 + " stderr F b\n",
			want: t1 + " stdout F a\n" + t2 + " stderr F b\n", consumed: -1},
		{name: "parts joined, first part's time", in: t1 + " stdout P ab\n" + t2 + " stdout P cd\n" + t3 + " stdout F ef\n",
			want: t1 + " stdout F abcdef\n", consumed: -1},
		{name: "streams interleave: joined per stream, in order of first part",
			in:   t1 + " stdout P ab\n" + t2 + " stderr F err\n" + t3 + " stdout F cd\n",
			want: t1 + " stdout F abcd\n" + t2 + " stderr F err\n", consumed: -1},
		{name: "open part waits, the chunk ends at the last cut",
			in:   t1 + " stderr F e1\n" + t2 + " stdout P ab\n" + t3 + " stderr F e2\n",
			want: t1 + " stderr F e1\n", consumed: len(t1 + " stderr F e1\n")},
		{name: "only an open part: nothing yet", in: t1 + " stdout P ab\n", want: "", consumed: 0},
		{name: "an open line 6 s old by the runtime's clock: given out (partial_flush 5s)", partialFlush: 5 * time.Second,
			in:   t1 + " stdout P ab\n" + t6 + " stderr F e\n",
			want: t1 + " stdout P ab\n" + t6 + " stderr F e\n", consumed: -1, continued: []int{0}},
		{name: "an open line 6 s old, partial_flush 10s: the stderr line waits", partialFlush: 10 * time.Second,
			in: t1 + " stdout P ab\n" + t6 + " stderr F e\n", want: "", consumed: 0},
		{name: "flush gives an open part out, continued", in: t1 + " stdout P ab\n", flush: true,
			want: t1 + " stdout P ab\n", consumed: -1, continued: []int{0}},
		{name: "empty message, with and without its space", in: t1 + " stdout F \n" + t2 + " stderr F\n",
			want: t1 + " stdout F \n" + t2 + " stderr F \n", consumed: -1},
		{name: "more tags after P/F", in: t1 + " stdout P:x ab\n" + t2 + " stdout F:y cd\n",
			want: t1 + " stdout F abcd\n", consumed: -1},
		{name: "max_line_bytes splits by whole parts", maxLine: 45,
			in:   t1 + " stdout P " + long + "\n" + t2 + " stdout P " + long + "\n" + t3 + " stdout F z\n",
			want: t1 + " stdout P " + long + "\n" + t2 + " stdout F " + long + "z\n", consumed: -1, continued: []int{0}},
		{name: "not CRI: kept as it is, one entry", in: "garbage line\n" + t1 + " stdout F a\n",
			want: "garbage line\n" + t1 + " stdout F a\n", consumed: -1, malformed: 1},
		{name: "unterminated end waits", in: t1 + " stdout F a\n" + t2 + " std",
			want: t1 + " stdout F a\n", consumed: len(t1 + " stdout F a\n")},
		{name: "unterminated end at the file's end: raw", in: t2 + " std", flush: true,
			want: t2 + " std\n", consumed: -1, malformed: 1},
		{name: "chunk budget: ends at the cut that fits", maxCh: 80,
			in:   t1 + " stdout F " + long + "\n" + t2 + " stdout F " + long + "\n",
			want: t1 + " stdout F " + long + "\n", consumed: len(t1 + " stdout F " + long + "\n")},
		{name: "no cut within the budget: open entries as parts", maxCh: 200,
			in:       t1 + " stdout P " + long + "\n" + t2 + " stderr P " + long + "\n" + t3 + " stdout F " + long + "\n" + t3 + " stderr F " + long + "\n",
			want:     t1 + " stdout F " + long + long + "\n" + t2 + " stderr P " + long + "\n",
			consumed: len(t1 + " stdout P " + long + "\n" + t2 + " stderr P " + long + "\n" + t3 + " stdout F " + long + "\n"), continued: []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			maxLine, maxCh := tt.maxLine, tt.maxCh
			if maxLine == 0 {
				maxLine = 1 << 20
			}
			if maxCh == 0 {
				maxCh = 1 << 20
			}
			maxLine = min(maxLine, maxCh)
			fr := CRI{PartialFlush: tt.partialFlush}.Frame([]byte(tt.in), tt.flush, maxLine, maxCh, nil)
			consumed := tt.consumed
			if consumed < 0 {
				consumed = len(tt.in)
			}
			if string(fr.Data) != tt.want || fr.Consumed != consumed {
				t.Fatalf("payload %q consumed %d, want %q consumed %d", fr.Data, fr.Consumed, tt.want, consumed)
			}
			if fr.Entries != strings.Count(tt.want, "\n") {
				t.Errorf("entries %d, want %d", fr.Entries, strings.Count(tt.want, "\n"))
			}
			if !equalInts(fr.Continued, tt.continued) || fr.Malformed != tt.malformed {
				t.Errorf("continued %v malformed %d, want %v %d", fr.Continued, fr.Malformed, tt.continued, tt.malformed)
			}
			if len(fr.Data) > maxCh {
				t.Errorf("payload %d bytes, above max_chunk_bytes %d", len(fr.Data), maxCh)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCRIDecode: what the framer writes decodes into the entries the runtime meant: joined
// per stream, with the runtime's timestamp and the pod identity as fields, also when a
// line's parts are in two chunks.
func TestCRIDecode(t *testing.T) {
	ref := streams.PodRef{Namespace: "ns", Pod: "web-1", UID: "u-1", Container: "app", Restart: "0"}
	chunk := func(payload string, cont []int) ([]string, []bool) {
		c := &streams.Chunk{Kind: streams.KindKubernetes, Host: "n1", Source: ref.Source(), Data: []byte(payload),
			Lines: strings.Count(payload, "\n"), Continued: cont, ReadTime: time.Now(), K8s: &ref,
			File: &streams.FilePos{Dev: 1, Ino: 2, Start: 0, End: int64(len(payload))}}
		m := c.Msg()
		es, err := streams.Entries(m.Subject, m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		var msgs []string
		var conts []bool
		for _, e := range es {
			msgs = append(msgs, e.Stream+":"+e.Message)
			conts = append(conts, e.Continued)
			k, _ := e.Fields["kubernetes"].(map[string]any)
			if k["namespace"] != "ns" || k["pod"] != "web-1" || k["container"] != "app" || e.Source != "ns/web-1/app/0/u-1" {
				t.Errorf("identity: %v %q", e.Fields, e.Source)
			}
			if e.Time.IsZero() || e.Time.Year() != 2026 {
				t.Errorf("time %v: want the runtime's", e.Time)
			}
		}
		return msgs, conts
	}
	fr := CRI{}.Frame([]byte(t1+" stdout P ab\n"+t2+" stderr P e\n"+t3+" stdout F cd\n"), true, 1<<20, 1<<20, nil)
	msgs, conts := chunk(string(fr.Data), fr.Continued)
	if strings.Join(msgs, "|") != "stdout:abcd|stderr:e" || conts[0] || !conts[1] {
		t.Fatalf("entries %q continued %v", msgs, conts)
	}
}

func FuzzCRIFrame(f *testing.F) {
	f.Add([]byte(t1+" stdout P ab\n"+t2+" stderr F err\n"+t3+" stdout F cd\n"), 64, 200)
	f.Add([]byte(t1+" stdout F a\ngarbage\n"+t2+" std"), 8, 40)
	f.Add([]byte(t1+" stdout P "+strings.Repeat("y", 100)+"\n"), 10, 60)
	f.Fuzz(func(t *testing.T, in []byte, maxLine, maxCh int) {
		maxCh = 40 + abs(maxCh)%400
		maxLine = 1 + abs(maxLine)%maxCh
		want := map[string][]byte{} // per stream, every valid line's message in order
		allValid := len(in) > 0 && in[len(in)-1] == '\n'
		for _, l := range bytes.SplitAfter(in, []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			cl, err := streams.CutCRILine(bytes.TrimSuffix(l, []byte("\n")))
			if err != nil || len(l) > maxCh {
				allValid = false
				continue
			}
			want[cl.Stream] = append(want[cl.Stream], cl.Msg...)
		}
		got := map[string][]byte{}
		buf := in
		for len(buf) > 0 {
			fr := CRI{PartialFlush: time.Duration(maxLine % 2)}.Frame(buf, true, maxLine, maxCh, nil)
			if fr.Consumed <= 0 || fr.Consumed > len(buf) {
				t.Fatalf("flush consumed %d of %d", fr.Consumed, len(buf))
			}
			if len(fr.Data) > maxCh || bytes.Count(fr.Data, []byte("\n")) != fr.Entries || fr.Entries == 0 {
				t.Fatalf("payload %d bytes (max %d), %d lines, %d entries", len(fr.Data), maxCh, bytes.Count(fr.Data, []byte("\n")), fr.Entries)
			}
			for _, l := range bytes.SplitAfter(fr.Data, []byte("\n")) {
				if cl, err := streams.CutCRILine(bytes.TrimSuffix(l, []byte("\n"))); err == nil {
					got[cl.Stream] = append(got[cl.Stream], cl.Msg...)
				}
			}
			buf = buf[fr.Consumed:]
		}
		if allValid {
			for s, w := range want {
				if !bytes.Equal(got[s], w) {
					t.Fatalf("stream %s: got %q, want %q", s, got[s], w)
				}
			}
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -(n + 1)
	}
	return n
}
