package streams

import (
	"encoding/json"
	"fmt"
)

// SinkPosition is a sink's record in PositionsBucket, JSON under SinkPositionKey: the
// consumer's ack floor as the server reported it once the sink's acks were processed. The
// server writes a consumer's acks to disk lazily (its store's flusher, at most ten times a
// second), so a kill -9 of the process that embeds it loses the last acks, and the messages
// they acked come back; this record is written before the next batch is acked, and lets the
// sink ack them again without writing them twice.
type SinkPosition struct {
	Stream string `json:"stream"` // the consumer's stream
	Seq    uint64 `json:"seq"`    // every message of the consumer up to Seq is acked
	ID     string `json:"id"`     // the Nats-Msg-Id at Seq: a stream that went backwards holds another there
	// Consumer is the consumer's creation time (Unix ns): a consumer deleted and created
	// again (to deliver everything again) is a new one, and the record is not its own.
	Consumer int64 `json:"consumer"`
}

// Encode is the record's KV value.
func (p SinkPosition) Encode() []byte {
	b, _ := json.Marshal(p) // strings and numbers: cannot fail
	return b
}

// DecodeSinkPosition reads a record back from its KV value.
func DecodeSinkPosition(b []byte) (*SinkPosition, error) {
	var p SinkPosition
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("sink position: %w", err)
	}
	if p.Stream == "" || p.Seq == 0 {
		return nil, fmt.Errorf("sink position: no stream or sequence in %q", b)
	}
	return &p, nil
}

// SinkPositionKey is the key of sink name's record: sink.<name>. Nodes sharing the sink's
// durable consumer share the record: it holds the consumer's ack floor, which is theirs too.
func SinkPositionKey(name string) string { return "sink." + kvToken(name) }
