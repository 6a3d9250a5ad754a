package config

import (
	"fmt"

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
