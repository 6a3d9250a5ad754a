package sinks

import (
	"fmt"

	"github.com/logcap/logcap/config"
)

// Factory builds a sink from its configuration. It has no side effects beyond validating and
// preparing (no connections, no goroutines), so `logcap check` can build every sink safely.
// opts holds the sink's whole YAML mapping; a factory decodes it with
// opts.Decode(&v, config.PipelineKeys...) so the keys the pipeline owns are skipped.
type Factory func(name string, opts config.Options) (Sink, error)

var factories = config.NewRegistry[Factory]("sink type")

// Register makes a sink type available by its `type:` name. Called from init only.
func Register(typ string, f Factory) { factories.Register(typ, f) }

// New builds a sink of the given type.
func New(typ, name string, opts config.Options) (Sink, error) {
	f, err := factories.Lookup(typ)
	if err != nil {
		return nil, fmt.Errorf("type: %w", err)
	}
	return f(name, opts)
}

// Types lists the registered sink types.
func Types() []string { return factories.Types() }
