package sinks

import (
	"fmt"
	"sort"

	"github.com/logcap/logcap/config"
)

// Factory builds a sink from its configuration. It has no side effects beyond validating and
// preparing (no connections, no goroutines), so `logcap check` can build every sink safely.
// opts holds the sink's whole YAML mapping; a factory decodes it with
// opts.Decode(&v, config.PipelineKeys...) so the keys the pipeline owns are skipped.
type Factory func(name string, opts config.Options) (Sink, error)

var factories = map[string]Factory{}

// Register makes a sink type available by its `type:` name. Called from init only.
func Register(typ string, f Factory) {
	if _, dup := factories[typ]; dup {
		panic("sinks: type registered twice: " + typ)
	}
	factories[typ] = f
}

// New builds a sink of the given type.
func New(typ, name string, opts config.Options) (Sink, error) {
	f, ok := factories[typ]
	if !ok {
		return nil, fmt.Errorf("type: unknown sink type %q (known: %v)", typ, Types())
	}
	return f(name, opts)
}

// Types lists the registered sink types.
func Types() []string {
	out := make([]string, 0, len(factories))
	for t := range factories {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
