package processors

import (
	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/internal/jsonscan"
)

// An entry is lazy when a json step left it with FieldsFrom and no fields: its fields are
// its message parsed, and nobody has parsed it yet (the step only checked that it parses,
// jsonscan.IsObject). The steps after such a json step that only read fields (a lazyReader)
// look up what they read in the message; the chain parses the message for any other step,
// and a sink or a derived chunk's writer for itself (streams.FieldsOf). So the cost of
// parsing is paid for the fields that are read, and a chain that reads none, or only
// `fields.level`, never builds a map of them.
func lazy(e *event.Entry) bool {
	return e.FieldsFrom == event.FieldsFromJSON && len(e.Fields) == 0
}

// lazyReader is a step that takes lazy entries as they are: it reads fields through
// readField or program.run, which look them up in the message, and it changes neither
// fields nor message without parsing it first (materialize).
type lazyReader interface{ readsLazily() }

// materialize gives a lazy entry its fields.
func materialize(e *event.Entry) {
	if !lazy(e) {
		return
	}
	m, err := jsonscan.Parse(e.Message)
	if err != nil {
		// Cannot happen (IsObject said it parses); recorded on the entry rather than lost.
		e.FieldsFrom = ""
		e.Fields = map[string]any{errorField: "json: " + err.Error()}
		return
	}
	e.Fields = m
}

// readField is path.get on e's fields, looked up in the message of a lazy entry.
func readField(e *event.Entry, path fieldPath) (any, bool) {
	if !lazy(e) {
		return path.get(e.Fields)
	}
	var one [1]string
	one[0] = path[0]
	top := make(map[string]any, 1)
	if !jsonscan.Members(e.Message, one[:], top) {
		materialize(e)
		return path.get(e.Fields)
	}
	return path.get(top)
}
