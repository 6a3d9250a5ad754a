package streams

import (
	"bytes"
	"testing"
	"time"
)

func TestParseCRILine(t *testing.T) {
	ts := time.Date(2026, 12, 6, 7, 0, 0, 65991130, time.UTC)
	tests := []struct {
		in      string
		stream  string
		partial bool
		msg     string
		err     bool
	}{
		{in: "2026-12-06T07:00:00.06599113Z stdout F hello world", stream: "stdout", msg: "hello world"},
		{in: "2026-12-06T07:00:00.06599113Z stderr P part", stream: "stderr", partial: true, msg: "part"},
		{in: "2026-12-06T07:00:00.06599113Z stdout F ", stream: "stdout", msg: ""},
		{in: "2026-12-06T07:00:00.06599113Z stdout F", stream: "stdout", msg: ""},
		{in: "2026-12-06T07:00:00.06599113Z stdout F  two spaces\r", stream: "stdout", msg: " two spaces\r"},
		{in: "2026-12-06T07:00:00.06599113Z stdout P:tag x", stream: "stdout", partial: true, msg: "x"},
		{in: "2026-12-06T08:00:00.06599113+01:00 stdout F tz", stream: "stdout", msg: "tz"},
		{in: "2026-12-06T07:00:00.06599113Z stdin F x", err: true},
		{in: "2026-12-06T07:00:00.06599113Z stdout X x", err: true},
		{in: "not a timestamp at all stdout F x", err: true},
		{in: "2026-13-06T07:00:00Z stdout F x", err: true},
		{in: "", err: true},
	}
	for _, tt := range tests {
		l, err := ParseCRILine([]byte(tt.in))
		if (err != nil) != tt.err {
			t.Errorf("%q: err %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		if l.Stream != tt.stream || l.Partial != tt.partial || string(l.Msg) != tt.msg || !l.Time.Equal(ts) {
			t.Errorf("%q: got %s %v %q %v", tt.in, l.Stream, l.Partial, l.Msg, l.Time)
		}
	}
}

func TestPodRefOf(t *testing.T) {
	tests := []struct {
		rel    string
		source string
		ok     bool
	}{
		{"default_web-1_0b9e-11/nginx/0.log", "default/web-1/nginx/0/0b9e-11", true},
		{"kube-system_coredns-x_u2/coredns/12.log", "kube-system/coredns-x/coredns/12/u2", true},
		{"ns_p_u/c/0.log.20261206-070000", "ns/p/c/0/u/0.log.20261206-070000", true},
		{"ns_p_u/c/0.log.20261206-070000.gz", "ns/p/c/0/u/0.log.20261206-070000.gz", true},
		{"ns_p_u/c/x.txt", "ns/p/c//u/x.txt", true},
		{"ns_p/c/0.log", "", false},
		{"ns_p_u_x/c/0.log", "", false},
		{"ns_p_u/0.log", "", false},
		{"ns_p_u/c/d/0.log", "", false},
	}
	for _, tt := range tests {
		r, ok := PodRefOf(tt.rel)
		if ok != tt.ok || ok && r.Source() != tt.source {
			t.Errorf("%q: %q %v, want %q %v", tt.rel, r.Source(), ok, tt.source, tt.ok)
		}
	}
}

func FuzzParseCRILine(f *testing.F) {
	f.Add([]byte("2026-12-06T07:00:00.06599113Z stdout F hello"))
	f.Add([]byte("2026-12-06T07:00:00Z stderr P:x "))
	f.Add([]byte("2026-12-06T07:00:00Z"))
	f.Fuzz(func(t *testing.T, in []byte) {
		l, err := ParseCRILine(in)
		if err != nil {
			return
		}
		// what AppendCRILine writes from it parses back to the same fields
		out := AppendCRILine(nil, l.TS, l.Stream, l.Partial, l.Msg)
		l2, err := ParseCRILine(bytes.TrimSuffix(out, []byte("\n")))
		if err != nil || l2.Stream != l.Stream || l2.Partial != l.Partial || !bytes.Equal(l2.Msg, l.Msg) || !l2.Time.Equal(l.Time) {
			t.Fatalf("%q → %q: %v %+v", in, out, err, l2)
		}
	})
}
