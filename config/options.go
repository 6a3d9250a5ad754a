package config

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Options keeps a component's YAML mapping undecoded, so that the component's own type
// (a sink, a step) decodes it strictly into its own struct and errors keep their line numbers.
type Options struct {
	node ast.Node
}

// UnmarshalYAML keeps the node for a later Decode.
func (o *Options) UnmarshalYAML(node ast.Node) error {
	o.node = node
	return nil
}

// MarshalYAML writes the options back as they were given.
func (o Options) MarshalYAML() (any, error) {
	if o.node == nil {
		return map[string]any{}, nil
	}
	var v any
	if err := yaml.NodeToValue(o.node, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// OptionsFrom builds Options from a Go value (tests and programmatic configs).
// It goes through YAML text because goccy's ValueToNode keeps the quotes of strings that
// need quoting (e.g. "{{.Source}}") inside the decoded value.
func OptionsFrom(v any) (Options, error) {
	b, err := yaml.Marshal(v)
	if err != nil {
		return Options{}, err
	}
	f, err := parser.ParseBytes(b, 0)
	if err != nil {
		return Options{}, err
	}
	if len(f.Docs) == 0 || f.Docs[0].Body == nil {
		return Options{}, nil
	}
	return Options{node: f.Docs[0].Body}, nil
}

// Empty reports whether no options were given.
func (o Options) Empty() bool { return o.node == nil }

// Decode decodes the options strictly (unknown keys are errors) into out, skipping the keys
// in ignore (typically the keys the caller decoded itself, such as name, type and input).
func (o Options) Decode(out any, ignore ...string) error {
	if o.node == nil {
		return nil
	}
	node := o.node
	if m, ok := node.(*ast.MappingNode); ok && len(ignore) > 0 {
		skip := make(map[string]bool, len(ignore))
		for _, k := range ignore {
			skip[k] = true
		}
		cp := *m
		cp.Values = nil
		for _, mv := range m.Values {
			if !skip[mv.Key.GetToken().Value] {
				cp.Values = append(cp.Values, mv)
			}
		}
		node = &cp
	} else if !ok && len(ignore) > 0 && node.Type() != ast.NullType {
		// Keys to skip mean the caller expects a mapping; without them a scalar is fine
		// (a step such as `- drop: 'expr'` decodes its value into a string).
		return fmt.Errorf("want a mapping, got %s", node.Type())
	}
	if err := firstUnknownKey(node, out); err != nil {
		return err
	}
	return yaml.NodeToValue(node, out, yaml.Strict())
}

// firstUnknownKey reports the first key, in the order written, that out's struct does not
// have. goccy's strict mode finds unknown keys by walking a map, so which one it names varies
// from run to run; users should see the first offending line, every time.
func firstUnknownKey(node ast.Node, out any) error {
	m, ok := node.(*ast.MappingNode)
	t := reflect.TypeOf(out)
	if !ok || t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil
	}
	known := map[string]bool{}
	var collect func(reflect.Type)
	collect = func(t reflect.Type) {
		for f := range t.Fields() {
			tag := f.Tag.Get("yaml")
			name, opts, _ := strings.Cut(tag, ",")
			if f.Anonymous || strings.Contains(opts, "inline") {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					collect(ft)
					continue
				}
			}
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			known[name] = true
		}
	}
	collect(t.Elem())
	for _, mv := range m.Values {
		tok := mv.Key.GetToken()
		if !known[tok.Value] {
			return &yaml.UnknownFieldError{Message: fmt.Sprintf("unknown field %q", tok.Value), Token: tok}
		}
	}
	return nil
}

// PipelineKeys are the keys of a sink's mapping that the pipeline decodes itself; a sink
// factory passes them to Decode as the keys to skip.
var PipelineKeys = []string{"name", "type", "input", "batch", "max_deliver", "ack_wait", "backoff", "request"}
