package processors

import (
	"github.com/logcap/logcap/config"
)

// Factory builds a step from its options (the value under the step's type key, e.g. the
// `{fields: [password]}` of `- redact: {fields: [password]}`). No side effects.
type Factory func(opts config.Options) (Step, error)

var steps = config.NewRegistry[Factory]("step")

// Register makes a step type available by name. Called from init only.
func Register(typ string, f Factory) { steps.Register(typ, f) }

// NewStep builds one step of the given type.
func NewStep(typ string, opts config.Options) (Step, error) {
	f, err := steps.Lookup(typ)
	if err != nil {
		return nil, err
	}
	return f(opts)
}

// Types lists the registered step types.
func Types() []string { return steps.Types() }
