package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// Pairs splits a mapping into its keys and their values, in the order written, each value
// kept undecoded so its own decoder still reports line numbers. A processor step (`- drop:
// 'EXPR'`) is a one-key mapping whose key picks the step type.
func (o Options) Pairs() (keys []string, values []Options, err error) {
	var mvs []*ast.MappingValueNode
	switch n := o.node.(type) {
	case *ast.MappingNode:
		mvs = n.Values
	case *ast.MappingValueNode:
		mvs = []*ast.MappingValueNode{n}
	case nil:
		return nil, nil, nil
	default:
		return nil, nil, fmt.Errorf("want a mapping, got %s", o.node.Type())
	}
	for _, mv := range mvs {
		keys = append(keys, mv.Key.GetToken().Value)
		values = append(values, Options{node: mv.Value})
	}
	return keys, values, nil
}

// Step splits a processor step into its type and options. A step is a one-key mapping
// `TYPE: OPTIONS` (`- redact: {fields: [x]}`), or a bare `TYPE` for a step that takes no
// options (`- json`). config.Validate, processors.BuildChain and `logcap check` all read
// steps through it, so they accept the same shapes.
func (o Options) Step() (typ string, opts Options, err error) {
	if s, ok := o.node.(*ast.StringNode); ok && s.Value != "" {
		return s.Value, Options{}, nil
	}
	keys, values, err := o.Pairs()
	if err != nil {
		return "", Options{}, fmt.Errorf("want a one-key mapping like `json: {}` or a step name, got %s", o.node.GetToken().Value)
	}
	switch len(keys) {
	case 1:
		return keys[0], values[0], nil
	case 0:
		return "", Options{}, errors.New("empty step: want a one-key mapping like `json: {}`")
	default:
		return "", Options{}, fmt.Errorf("one step per list item, got %d keys (%s): start each with its own `- `",
			len(keys), strings.Join(keys, ", "))
	}
}

// Routes lists the `to:` of the processor's route steps: subject prefixes its derived
// stream takes besides <lower(name)>.>.
func (p Processor) Routes() ([]string, error) {
	var out []string
	for i, st := range p.Steps {
		typ, opts, err := st.Step()
		if err != nil || typ != "route" {
			continue
		}
		var o struct {
			If string `yaml:"if"`
			To string `yaml:"to"`
		}
		if err := opts.Decode(&o); err != nil {
			return nil, fmt.Errorf("steps[%d] (route): %w", i, err)
		}
		out = append(out, o.To)
	}
	return out, nil
}
