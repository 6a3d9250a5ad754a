package replay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/processors"
	"github.com/logcap/logcap/sinks"
	"github.com/logcap/logcap/streams"
)

// isRaw tells a LOGS chunk from a derived (NDJSON) one by its subject.
func isRaw(m Msg) bool {
	return strings.HasPrefix(m.Subject, streams.LogsPrefix+".") && m.Header.Get("Logcap-Format") != "ndjson"
}

// countEntries is the number of entries a message carries, from its header when it has one.
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

// Records decodes a message into sink records: Stream, Seq and Index from where it is
// stored, Raw the entry's original bytes (without its line terminator) for LOGS chunks.
func Records(m Msg) ([]sinks.Record, error) {
	if !isRaw(m) {
		return ndjsonRecords(m)
	}
	c, err := streams.DecodeChunk(m.Subject, m.Header, m.Data)
	if err != nil {
		return nil, fmt.Errorf("%s seq %d: %w", m.Stream, m.Seq, err)
	}
	var out []sinks.Record
	var part []byte // the parts of a line split at max_line_bytes, joined
	c.EachEntry(func(_ int, b []byte, continued bool) {
		if continued {
			part = append(part, b...)
			return
		}
		raw := streams.TrimEOL(b)
		if part != nil {
			raw, part = append(part, raw...), nil
		}
		e := event.Entry{Host: c.Host, Kind: c.Kind, Source: c.Source, Time: c.ReadTime, Message: string(raw)}
		if c.Kind == streams.KindDocker {
			if c.Docker != nil {
				e.Stream = c.Docker.Stream
			}
			if ts, msg, ok := processors.ParseDockerLine(raw); ok {
				e.Time, e.Message = ts, string(msg)
			}
		}
		out = append(out, sinks.Record{Entry: e, Stream: m.Stream, Seq: m.Seq, Index: len(out), Raw: raw})
	})
	return out, nil
}

func ndjsonRecords(m Msg) ([]sinks.Record, error) {
	var out []sinks.Record
	for i, l := range bytes.Split(m.Data, []byte{'\n'}) {
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		var e event.Entry
		if err := json.Unmarshal(l, &e); err != nil {
			return nil, fmt.Errorf("%s seq %d: line %d: %w", m.Stream, m.Seq, i+1, err)
		}
		out = append(out, sinks.Record{Entry: e, Stream: m.Stream, Seq: m.Seq, Index: len(out)})
	}
	return out, nil
}
