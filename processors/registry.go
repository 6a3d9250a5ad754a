package processors

import (
	"fmt"
	"sort"

	"github.com/logcap/logcap/config"
)

// Factory builds a step from its options (the value under the step's type key, e.g. the
// `{fields: [password]}` of `- redact: {fields: [password]}`). No side effects.
type Factory func(opts config.Options) (Step, error)

var factories = map[string]Factory{}

// Register makes a step type available by name. Called from init only.
func Register(typ string, f Factory) {
	if _, dup := factories[typ]; dup {
		panic("processors: step registered twice: " + typ)
	}
	factories[typ] = f
}

// NewStep builds one step of the given type.
func NewStep(typ string, opts config.Options) (Step, error) {
	f, ok := factories[typ]
	if !ok {
		return nil, fmt.Errorf("unknown step %q (known: %v)", typ, Types())
	}
	return f(opts)
}

// Types lists the registered step types.
func Types() []string {
	out := make([]string, 0, len(factories))
	for t := range factories {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
