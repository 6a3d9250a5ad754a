// Package event holds the one type every stage after capture agrees on: a log entry.
// It has no dependencies, so processors and sinks can share it without importing NATS.
package event

import "time"

// Entry is one log entry. Its JSON encoding is the NDJSON line of derived streams
// (DESIGN.md "Wire format"): {"time","host","kind","source","stream","message","fields"}.
type Entry struct {
	Time    time.Time      `json:"time"`
	Host    string         `json:"host"`
	Kind    string         `json:"kind"`             // "file", "docker" or "kubernetes"
	Source  string         `json:"source"`           // file path or container name
	Stream  string         `json:"stream,omitempty"` // "stdout" or "stderr" for containers
	Message string         `json:"message"`
	Fields  map[string]any `json:"fields,omitempty"`
	// Continued marks a part of a line longer than max_line_bytes that continues in the next
	// entry, in the next chunk (a line longer than max_chunk_bytes): raw sinks write the
	// parts as one line.
	Continued bool `json:"continued,omitempty"`

	// Route, when set by a route step, names the output subject prefix the entry goes to
	// instead of the processor's default. It is not part of the wire format.
	Route string `json:"-"`
	// FieldsFrom "json" says Fields are exactly Message parsed as a JSON object
	// (jsonscan.Parse), nothing added or changed: a lines+json derived chunk then stores
	// that instead of the fields (streams.FormatLinesJSON). The json step sets it on an
	// entry it gives its first fields, and a reader of such a chunk on the entries it
	// parses; a processor whose chain has a step that may change fields or message clears
	// it. It is not part of the wire format as is.
	FieldsFrom string `json:"-"`
}

// FieldsFromJSON is Entry.FieldsFrom of an entry whose fields are its message parsed as a
// JSON object.
const FieldsFromJSON = "json"
