// Package processors holds the pure transforms a processor applies to entries: no NATS, no
// fx, no goroutines. The pipeline module splits each input chunk into entries, runs them
// through a Chain and publishes what comes out.
package processors

import "github.com/logcap/logcap/event"

// Step transforms one entry in place. keep=false drops the entry. An error marks the entry
// as failed: the chain stops for that entry and the pipeline dead-letters the chunk.
type Step interface {
	Apply(e *event.Entry) (keep bool, err error)
}
