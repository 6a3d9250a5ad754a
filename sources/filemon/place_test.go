package filemon

import (
	"slices"
	"strings"
	"testing"

	"github.com/logcap/logcap/streams"
)

func TestDecideStart(t *testing.T) {
	kv := func(end int64) *streams.FilePosition { return &streams.FilePosition{Source: "/l/app.log", End: end} }
	kvSeq := func(end int64, seq uint64) *streams.FilePosition {
		return &streams.FilePosition{Source: "/l/app.log", End: end, Seq: seq}
	}
	for _, tc := range []struct {
		name string
		f    startFacts
		want startPlan
	}{
		{"new file, first start, start_at end", startFacts{startAtEnd: true, size: 500}, startPlan{offset: 500, recordKV: true}},
		{"new file, start_at beginning", startFacts{size: 500}, startPlan{}},
		{"resumed from its last chunk", startFacts{lastChunk: true, lastIsThis: true, lastEnd: 300, size: 500}, startPlan{offset: 300, recordKV: true}},
		{"last chunk wins over start_at", startFacts{lastChunk: true, lastIsThis: true, lastEnd: 300, startAtEnd: true, size: 500}, startPlan{offset: 300, recordKV: true}},
		{"the KV is further (a chunk's ack lost, then retention)", startFacts{lastChunk: true, lastIsThis: true, lastEnd: 300, kv: kv(400), size: 500}, startPlan{offset: 400}},
		{"the KV saw this chunk: the further KV wins", startFacts{lastChunk: true, lastIsThis: true, lastEnd: 300, lastSeq: 40, kv: kvSeq(400, 40), size: 500}, startPlan{offset: 400}},
		{"the stream lost its end (damaged store): the stream wins", startFacts{lastChunk: true, lastIsThis: true, lastEnd: 300, lastSeq: 25, kv: kvSeq(400, 48), size: 500}, startPlan{offset: 300, streamLost: true}},
		{"the stream lost all of this file's chunks: from 0, after the last file", startFacts{lastChunk: true, lastEnd: 900, lastSeq: 25, kv: kvSeq(100, 48), size: 500}, startPlan{drainFirst: true, streamLost: true}},
		{"retention removed the subject's messages: the KV", startFacts{kv: kv(250), size: 500}, startPlan{offset: 250}},
		{"rotated while stopped: drain the last file first", startFacts{lastChunk: true, lastEnd: 900, size: 500}, startPlan{drainFirst: true}},
		{"rotated while stopped, the KV knows this file", startFacts{lastChunk: true, lastEnd: 900, kv: kv(100), size: 500}, startPlan{offset: 100, drainFirst: true}},
		{"renamed, its subject went on with another file", startFacts{renamed: true, lastChunk: true, lastEnd: 900, kv: kv(100), size: 500}, startPlan{settle: true}},
		{"renamed, and it is the subject's last file", startFacts{renamed: true, lastChunk: true, lastIsThis: true, lastEnd: 200, kv: kv(200), size: 500}, startPlan{offset: 200}},
		{"the KV has no record yet: record the stream's", startFacts{lastChunk: true, lastIsThis: true, lastEnd: 200, size: 500}, startPlan{offset: 200, recordKV: true}},
		{"renamed, the subject is read in this run: drained", startFacts{renamed: true, subjectOpen: true, kv: kv(100), size: 500}, startPlan{settle: true}},
		{"rotation in this run: after the current file, from 0", startFacts{subjectOpen: true, startAtEnd: true, size: 500}, startPlan{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := decideStart(tc.f); got != tc.want {
				t.Errorf("decideStart(%+v) = %+v, want %+v", tc.f, got, tc.want)
			}
		})
	}
}

func TestScanOrder(t *testing.T) {
	isGzip := func(p string) bool { return strings.HasSuffix(p, ".gz") }
	for _, tc := range []struct {
		name     string
		in, want []string
	}{
		{"a rotated CRI log before the current one",
			[]string{"/p/ns_pod_u/c/0.log", "/p/ns_pod_u/c/0.log.20261206-101500"},
			[]string{"/p/ns_pod_u/c/0.log.20261206-101500", "/p/ns_pod_u/c/0.log"}},
		{"generations in the order written, the gzipped one last",
			[]string{"/p/c/0.log", "/p/c/0.log.20261206-101600", "/p/c/0.log.20261206-101500.gz", "/p/c/0.log.20261206-101400"},
			[]string{"/p/c/0.log.20261206-101400", "/p/c/0.log.20261206-101600", "/p/c/0.log", "/p/c/0.log.20261206-101500.gz"}},
		{"unrelated names by name", []string{"/l/b.log", "/l/a.log"}, []string{"/l/a.log", "/l/b.log"}},
		{"app.log.1 before app.log", []string{"/l/app.log", "/l/app.log.1"}, []string{"/l/app.log.1", "/l/app.log"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := scanOrder(slices.Clone(tc.in), isGzip); !slices.Equal(got, tc.want) {
				t.Errorf("scanOrder(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
