// Package sinks holds the destinations logcap delivers to. Every sink is plain Go: no NATS,
// no fx, no goroutines of its own. The pipeline module drives it from a durable JetStream
// consumer and acks a message only after Write returned nil for every record it carried.
package sinks

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/logcap/logcap/event"
)

// Record is an entry plus where it sits in JetStream, which gives every record a stable
// identity: redelivery of the same message yields the same IDs.
type Record struct {
	event.Entry
	// Stream is the JetStream stream the chunk was read from, e.g. "LOGS" or "PARSED". It
	// shadows Entry.Stream (a container's stdout/stderr): a document's stream is
	// r.Entry.Stream, never r.Stream.
	Stream string
	Seq    uint64 // stream sequence of the chunk
	Index  int    // position of the entry within its chunk
	MsgID  string // the chunk's Nats-Msg-Id: which message Seq held when the record was read
	// Raw is the entry's original bytes when it came from the raw stream (LOGS), nil otherwise.
	Raw []byte
	// Header is the chunk's headers (streams' Logcap-*), shared by the records of one
	// message and read-only: what identifies the chunk beyond the entry (the read time, a
	// container's id and image) for sinks that map it (otlp). nil when not known.
	Header map[string][]string
}

// ID is the record's idempotency key: stream, sequence and index.
func (r Record) ID() string { return string(r.AppendID(nil)) }

// AppendID appends the record's ID to dst: no formatting, no allocation of its own.
func (r *Record) AppendID(dst []byte) []byte {
	dst = append(dst, r.Stream...)
	dst = append(dst, '-')
	dst = strconv.AppendUint(dst, r.Seq, 10)
	dst = append(dst, '-')
	return strconv.AppendInt(dst, int64(r.Index), 10)
}

// Sink is a destination. Write blocks until the destination accepted the whole batch (nil),
// or returns an error; it must return promptly when ctx is cancelled. Check is a cheap health
// probe the pipeline calls while the sink is failing, to know when to fetch again. Close
// releases everything the sink holds (idle connections, files).
type Sink interface {
	Write(ctx context.Context, batch []Record) error
	Check(ctx context.Context) error
	Close() error
}

// Ordered is implemented by a sink that must receive each stream's records in stream order,
// a crash included: the file sink remembers only the newest position per stream, so a record
// redelivered after later ones were written would be skipped as already written. The
// pipeline then keeps one message unacknowledged on the consumer at a time, so a message left
// unacked by a killed process is redelivered (after ack_wait) before anything newer.
type Ordered interface {
	Ordered() bool
}

// FieldsReader is implemented by a sink that can tell whether its output uses entries'
// Fields. One that does not (a file or stdout sink writing raw lines) gets the entries of
// derived chunks without them: building them was most of such a sink's decoding. A sink that
// does not implement it gets them.
type FieldsReader interface {
	ReadsFields() bool
}

// Concurrent is implemented by a sink whose Write may run concurrently with itself (an HTTP
// sink: each Write is one request on a pooled connection). Concurrency is how many writes
// the pipeline keeps in flight when request.concurrency is not set; a sink that does not
// implement it gets one at a time, and request.concurrency above 1 is refused for it.
type Concurrent interface {
	Concurrency() int
}

// StreamChecked is implemented by a sink that skips records at or before a position it
// recorded per stream (the file sink). A stream can go backwards: a store whose end was lost
// (a crash with sync_interval's window, a damaged last block) re-uses the lost sequence
// numbers for other messages, which such a sink would skip as written. The pipeline gives it
// a StreamCheck to ask before it skips.
type StreamChecked interface {
	SetStreamCheck(StreamCheck)
}

// StreamCheck reports whether stream still holds at seq the message whose Nats-Msg-Id is id
// (id "": any message). False: the stream went backwards since that position was recorded.
type StreamCheck func(ctx context.Context, stream string, seq uint64, id string) (bool, error)

// ErrPermanent marks an error that retrying cannot fix (a 400, a mapping error): the
// records go to dead letters at once instead of being redelivered.
var ErrPermanent = errors.New("permanent")

// Permanent wraps err so that errors.Is(err, ErrPermanent) holds.
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// PartialError reports a batch the destination accepted only in part (Elasticsearch _bulk
// per-item errors). Failed maps a record's index in the batch to its error; records not in
// Failed were accepted. Errors wrapping ErrPermanent are dead-lettered, the others retried.
type PartialError struct {
	Failed map[int]error
}

func (e *PartialError) Error() string {
	for i, err := range e.Failed {
		return fmt.Sprintf("%d of the batch's records failed, e.g. #%d: %v", len(e.Failed), i, err)
	}
	return "partial failure"
}
