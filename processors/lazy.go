package processors

import (
	"sync"

	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/internal/jsonscan"
)

// An entry is lazy when a json step left it with FieldsFrom and no fields: its fields are
// its message parsed, and nobody has parsed it yet (the step only checked that it parses,
// jsonscan.Members). The steps after such a json step that only read fields (a lazyReader)
// get what they read from the message; the chain parses the message for any other step,
// and a sink or a derived chunk's writer for itself (streams.FieldsOf). So the cost of
// parsing is paid for the fields that are read, and a chain that reads none, or only
// `fields.level`, never builds a map of them.
func lazy(e *event.Entry) bool {
	return e.FieldsFrom == event.FieldsFromJSON && len(e.Fields) == 0
}

// lookups are the top-level fields that the steps after a chain's lazy json step read, as
// that step found them in its one pass over the message (Chain.Process, one per entry).
type lookups struct {
	fields map[string]any
	// done: the json step filled fields for this entry. While the entry stays lazy its
	// message is the one they were found in: a step that changes it parses it first.
	done bool
}

var lookupsPool = sync.Pool{New: func() any { return &lookups{fields: make(map[string]any, 4)} }}

// of gives the fields that lk holds for e, or nil when it holds none for it.
func (lk *lookups) of(e *event.Entry) map[string]any {
	if lk == nil || !lk.done || !lazy(e) {
		return nil
	}
	return lk.fields
}

// A lookupStep takes, besides the entry, the chain's lookups (nil when the chain has none):
// its lazy json step fills them, the lazyReaders after it read them.
type lookupStep interface {
	applyLookups(e *event.Entry, lk *lookups) (keep bool, err error)
}

// lazyReader is a step that takes lazy entries as they are: it reads the fields it names
// from the lookups or from the message (readField, program.run), and it changes neither
// fields nor message without parsing the message first (materialize).
type lazyReader interface {
	lookupStep
	// fieldsRead are the top-level fields the step reads; all: it may read any (it parses
	// the message of a lazy entry).
	fieldsRead() (names []string, all bool)
}

// materialize gives a lazy entry its fields.
func materialize(e *event.Entry) {
	if !lazy(e) {
		return
	}
	m, err := jsonscan.Parse(e.Message)
	if err != nil {
		// Cannot happen (Members said it parses); recorded on the entry rather than lost.
		e.FieldsFrom = ""
		e.Fields = map[string]any{errorField: "json: " + err.Error()}
		return
	}
	e.Fields = m
}

// readField is path.get on e's fields, found in the lookups or the message of a lazy entry.
func readField(e *event.Entry, lk *lookups, path fieldPath) (any, bool) {
	if !lazy(e) {
		return path.get(e.Fields)
	}
	if top := lk.of(e); top != nil {
		return path.get(top)
	}
	top := make(map[string]any, 1)
	if _, ok := jsonscan.Members(e.Message, path[:1], top); !ok {
		materialize(e)
		return path.get(e.Fields)
	}
	return path.get(top)
}
