package replay

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/logcap/logcap/sinks"
	"github.com/logcap/logcap/streams"
)

// countEntries is the number of entries a message carries, from its header when it has one
// (raw and derived chunks both set it), else its lines.
func countEntries(m Msg) int {
	if n, err := strconv.Atoi(m.Header.Get(streams.HdrLines)); err == nil && n >= 0 {
		return n
	}
	n := bytes.Count(m.Data, []byte{'\n'})
	if len(m.Data) > 0 && m.Data[len(m.Data)-1] != '\n' {
		n++
	}
	return n
}

// Records decodes a message into sink records the way the pipeline does (streams.EntriesRaw):
// Stream, Seq and Index from where it is stored, so a record's ID is the same whether a sink
// got it live or from a replay; Raw the entry's original bytes for LOGS chunks.
func Records(m Msg) ([]sinks.Record, error) {
	ents, raws, err := streams.EntriesRaw(m.Subject, m.Header, m.Data)
	if err != nil {
		return nil, fmt.Errorf("%s seq %d: %w", m.Stream, m.Seq, err)
	}
	out := make([]sinks.Record, len(ents))
	for i := range ents {
		out[i] = sinks.Record{Entry: ents[i], Stream: m.Stream, Seq: m.Seq, Index: i}
		if raws != nil {
			out[i].Raw = raws[i]
		}
	}
	return out, nil
}
