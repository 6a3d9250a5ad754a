package sinks

import (
	"slices"
	"strconv"
	"strings"

	"github.com/klauspost/compress/s2"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logcap/logcap/internal/jsonscan"
)

// A push request, encoded by hand into a reused buffer: text/template per record per label
// and json.Marshal of the push were 60% of the loki sink's CPU into VictoriaLogs (#15).
//
// Protobuf (the default, what Promtail, Grafana Alloy and Vector send) is Loki's
// logproto.PushRequest (pkg/push/push.proto), snappy-compressed (block format):
//
//	message PushRequest   { repeated StreamAdapter streams = 1; }
//	message StreamAdapter { string labels = 1; repeated EntryAdapter entries = 2; }
//	message EntryAdapter  { Timestamp timestamp = 1; string line = 2;
//	                        repeated LabelPairAdapter structuredMetadata = 3; }
//	message LabelPairAdapter { string name = 1; string value = 2; }
//	message Timestamp     { int64 seconds = 1; int32 nanos = 2; }   // google.protobuf
//
// labels is the label set in Prometheus text form, {name="value", ...}, values quoted as Go
// quotes them (Loki and VictoriaLogs unquote with strconv.Unquote's rules).

// lokiGroup is the entries of one label set.
type lokiGroup struct {
	labels  string // {a="1", b="2"}: the stream's identity, and its order in the push
	pairs   [][2]string
	entries []lokiEntry
}

// lokiEntry is one line of a group: rec is its record's index in the batch; the line is
// the record's message, or arena[start:end] for line_format json.
type lokiEntry struct {
	ns         int64
	rec        int
	start, end int
}

// promLabels renders a sorted label set as Loki's labels string.
func promLabels(pairs [][2]string) string {
	var b []byte
	b = append(b, '{')
	for i, p := range pairs {
		if i > 0 {
			b = append(b, ',', ' ')
		}
		b = append(b, p[0]...)
		b = append(b, '=')
		b = strconv.AppendQuote(b, p[1])
	}
	return string(append(b, '}'))
}

// sortGroups orders the label sets by their labels string and each one's entries by time.
// The sort is stable, so entries with equal timestamps keep their batch order (stream
// sequence, then position in the chunk) and a redelivered batch makes the very same request.
func sortGroups(groups map[string]*lokiGroup) []*lokiGroup {
	out := make([]*lokiGroup, 0, len(groups))
	for _, g := range groups {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *lokiGroup) int { return strings.Compare(a.labels, b.labels) })
	for _, g := range out {
		byTime := func(a, b lokiEntry) int {
			switch {
			case a.ns < b.ns:
				return -1
			case a.ns > b.ns:
				return 1
			}
			return 0
		}
		if !slices.IsSortedFunc(g.entries, byTime) {
			slices.SortStableFunc(g.entries, byTime)
		}
	}
	return out
}

// pushBody is what the encoders need besides the groups.
type pushBody struct {
	batch []Record
	arena []byte // lines of line_format json
	idKey string // id_field: structured metadata name; "" when unset
	id    []byte // scratch
}

func (p *pushBody) lineLen(e *lokiEntry) int {
	if e.end > e.start {
		return e.end - e.start
	}
	return len(p.batch[e.rec].Message)
}

func (p *pushBody) appendLineProto(out []byte, e *lokiEntry) []byte {
	if e.end > e.start {
		return protowire.AppendBytes(out, p.arena[e.start:e.end])
	}
	return protowire.AppendString(out, p.batch[e.rec].Message)
}

// appendLineJSON appends the line as a JSON string. A json line_format line is JSON
// already: it is quoted as a string again, since Loki's line is text.
func (p *pushBody) appendLineJSON(out []byte, e *lokiEntry) []byte {
	if e.end > e.start {
		return jsonscan.AppendStringHTML(out, string(p.arena[e.start:e.end]))
	}
	return jsonscan.AppendStringHTML(out, p.batch[e.rec].Message)
}

// appendProto appends the PushRequest of groups to out, not compressed.
func (p *pushBody) appendProto(out []byte, groups []*lokiGroup) []byte {
	for _, g := range groups {
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendVarint(out, uint64(p.streamSize(g)))
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendString(out, g.labels)
		for i := range g.entries {
			e := &g.entries[i]
			out = protowire.AppendTag(out, 2, protowire.BytesType)
			out = protowire.AppendVarint(out, uint64(p.entrySize(e)))
			sec, nanos := splitNS(e.ns)
			out = protowire.AppendTag(out, 1, protowire.BytesType)
			out = protowire.AppendVarint(out, uint64(timestampSize(sec, nanos)))
			if sec != 0 {
				out = protowire.AppendTag(out, 1, protowire.VarintType)
				out = protowire.AppendVarint(out, uint64(sec))
			}
			if nanos != 0 {
				out = protowire.AppendTag(out, 2, protowire.VarintType)
				out = protowire.AppendVarint(out, uint64(nanos))
			}
			out = protowire.AppendTag(out, 2, protowire.BytesType)
			out = p.appendLineProto(out, e)
			if p.idKey != "" {
				p.id = p.batch[e.rec].AppendID(p.id[:0])
				out = protowire.AppendTag(out, 3, protowire.BytesType)
				out = protowire.AppendVarint(out, uint64(p.pairSize()))
				out = protowire.AppendTag(out, 1, protowire.BytesType)
				out = protowire.AppendString(out, p.idKey)
				out = protowire.AppendTag(out, 2, protowire.BytesType)
				out = protowire.AppendBytes(out, p.id)
			}
		}
	}
	return out
}

// splitNS is google.protobuf.Timestamp's form of a Unix time in ns: nanos in [0, 1e9).
func splitNS(ns int64) (sec int64, nanos int32) {
	sec, rem := ns/1e9, ns%1e9
	if rem < 0 {
		sec, rem = sec-1, rem+1e9
	}
	return sec, int32(rem)
}

func timestampSize(sec int64, nanos int32) int {
	n := 0
	if sec != 0 {
		n += 1 + protowire.SizeVarint(uint64(sec))
	}
	if nanos != 0 {
		n += 1 + protowire.SizeVarint(uint64(nanos))
	}
	return n
}

// pairSize is the size of the id_field LabelPairAdapter; p.id holds the entry's ID.
func (p *pushBody) pairSize() int {
	return 1 + protowire.SizeBytes(len(p.idKey)) + 1 + protowire.SizeBytes(len(p.id))
}

func (p *pushBody) entrySize(e *lokiEntry) int {
	sec, nanos := splitNS(e.ns)
	n := 1 + protowire.SizeBytes(timestampSize(sec, nanos)) + 1 + protowire.SizeBytes(p.lineLen(e))
	if p.idKey != "" {
		p.id = p.batch[e.rec].AppendID(p.id[:0])
		n += 1 + protowire.SizeBytes(p.pairSize())
	}
	return n
}

func (p *pushBody) streamSize(g *lokiGroup) int {
	n := 1 + protowire.SizeBytes(len(g.labels))
	for i := range g.entries {
		n += 1 + protowire.SizeBytes(p.entrySize(&g.entries[i]))
	}
	return n
}

// snappyBlock compresses a push as Loki expects it: snappy's block format. The result is a
// fresh slice, owned by the request.
func snappyBlock(b []byte) []byte { return s2.EncodeSnappy(nil, b) }

// appendJSON appends the push in Loki's JSON form: {"streams":[{"stream":{labels},
// "values":[["<ns>","<line>"(,{"<id_field>":"<id>"})], ...]}, ...]}.
func (p *pushBody) appendJSON(out []byte, groups []*lokiGroup) []byte {
	out = append(out, `{"streams":[`...)
	for gi, g := range groups {
		if gi > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"stream":{`...)
		for i, kv := range g.pairs {
			if i > 0 {
				out = append(out, ',')
			}
			out = jsonscan.AppendStringHTML(out, kv[0])
			out = append(out, ':')
			out = jsonscan.AppendStringHTML(out, kv[1])
		}
		out = append(out, `},"values":[`...)
		for i := range g.entries {
			e := &g.entries[i]
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, '[', '"')
			out = strconv.AppendInt(out, e.ns, 10)
			out = append(out, '"', ',')
			out = p.appendLineJSON(out, e)
			if p.idKey != "" {
				p.id = p.batch[e.rec].AppendID(p.id[:0])
				out = append(out, ',', '{')
				out = jsonscan.AppendStringHTML(out, p.idKey)
				out = append(out, ':', '"')
				out = append(out, p.id...)
				out = append(out, '"', '}')
			}
			out = append(out, ']')
		}
		out = append(out, ']', '}')
	}
	return append(out, ']', '}')
}
