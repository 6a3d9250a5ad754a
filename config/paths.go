package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// Errorf builds an error about the key at path (such as "sinks[1].url" or
// "processors[0].steps[2]") with the line of the deepest node of that path present in the
// file: a missing key gets the line of its parent mapping.
func (c *Config) Errorf(path string, format string, args ...any) *FieldError {
	_, ln := c.lookup(path)
	return &FieldError{File: c.File, Line: ln, Path: path, Msg: fmt.Sprintf(format, args...)}
}

// WrapOptionsError turns an error from Options.Decode of the component at path (for example
// "sinks[1]", or "processors[0].steps[2]" for a step) into a FieldError naming the offending
// key and its line. An error without a position gets the line of path.
func (c *Config) WrapOptionsError(path string, err error) *FieldError {
	if err == nil {
		return nil
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe
	}
	node, ln := c.lookup(path)
	out := &FieldError{File: c.File, Line: ln, Path: path, Msg: oneLine(err.Error())}
	var ye yaml.Error
	if !errors.As(err, &ye) {
		// goccy drops the position of errors from UnmarshalText (Duration, Size): find the key
		// by the quoted value the message names, e.g. invalid duration "banana".
		if i := strings.IndexByte(out.Msg, '"'); i >= 0 {
			if q, qerr := strconv.QuotedPrefix(out.Msg[i:]); qerr == nil {
				val, _ := strconv.Unquote(q)
				if rel, l, ok := findScalar(node, val, ""); ok {
					out.Path, out.Line = joinRel(path, rel), l
				}
			}
		}
		return out
	}
	tk := ye.GetToken()
	if tk != nil && tk.Position != nil {
		out.Line = tk.Position.Line
		if rel, ok := findToken(node, tk, ""); ok && rel != "" {
			out.Path = joinRel(path, rel)
		}
	}
	out.Msg = oneLine(ye.GetMessage())
	var (
		unknown  *yaml.UnknownFieldError
		typeErr  *yaml.TypeError
		overflow *yaml.OverflowError
		nodeType *yaml.UnexpectedNodeTypeError
	)
	switch {
	case errors.As(err, &unknown):
		out.Msg = "unknown key"
	case errors.As(err, &typeErr):
		out.Msg = fmt.Sprintf("want %s, got %s", describeType(typeErr.DstType), describeToken(tk))
	case errors.As(err, &nodeType):
		out.Msg = fmt.Sprintf("want %s, got %s", describeNodeType(nodeType.Expected), describeToken(tk))
	case errors.As(err, &overflow):
		out.Msg = fmt.Sprintf("number %s out of range", overflow.SrcNum)
	}
	return out
}

func joinRel(path, rel string) string {
	if strings.HasPrefix(rel, "[") || path == "" {
		return path + rel
	}
	return path + "." + rel
}

func describeType(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	case reflect.Pointer:
		return describeType(t.Elem())
	}
	return t.String()
}

func describeToken(tk *token.Token) string {
	if tk == nil {
		return "another type"
	}
	switch tk.Type {
	case token.MappingStartType, token.MappingValueType:
		return "a mapping"
	case token.SequenceStartType, token.SequenceEntryType:
		return "a list"
	case token.IntegerType, token.FloatType, token.BinaryIntegerType, token.OctetIntegerType, token.HexIntegerType:
		return "number " + tk.Value
	case token.BoolType:
		return tk.Value
	case token.NullType:
		return "null"
	}
	return strconv.Quote(tk.Value)
}

// lookup finds the deepest node on path and its line; the line is 0 without a parsed file.
func (c *Config) lookup(path string) (ast.Node, int) {
	cur := c.root
	if cur == nil {
		return nil, 0
	}
	ln := line(cur)
	for _, seg := range splitPath(path) {
		switch n := cur.(type) {
		case *ast.MappingNode:
			if seg.index >= 0 {
				return cur, ln
			}
			var next *ast.MappingValueNode
			for _, mv := range n.Values {
				if keyOf(mv) == seg.key {
					next = mv
				}
			}
			if next == nil {
				return cur, ln
			}
			if l := line(next.Key); l > 0 {
				ln = l
			}
			cur = next.Value
		case *ast.SequenceNode:
			if seg.index < 0 || seg.index >= len(n.Values) {
				return cur, ln
			}
			cur = n.Values[seg.index]
			if l := line(cur); l > 0 {
				ln = l
			}
		default:
			return cur, ln
		}
		if cur == nil {
			return nil, ln
		}
	}
	return cur, ln
}

type pathSeg struct {
	key   string
	index int // -1 for a key
}

// splitPath splits "sinks[1].batch.max_bytes" into sinks, [1], batch, max_bytes.
func splitPath(path string) []pathSeg {
	var out []pathSeg
	for _, part := range strings.Split(path, ".") {
		key := part
		var idxs []int
		for {
			open := strings.LastIndexByte(key, '[')
			if open < 0 || !strings.HasSuffix(key, "]") {
				break
			}
			i, err := strconv.Atoi(key[open+1 : len(key)-1])
			if err != nil {
				break
			}
			idxs = append([]int{i}, idxs...)
			key = key[:open]
		}
		if key != "" {
			out = append(out, pathSeg{key: key, index: -1})
		}
		for _, i := range idxs {
			out = append(out, pathSeg{index: i})
		}
	}
	return out
}

// findToken returns the key path, relative to n, of the node holding tk.
func findToken(n ast.Node, tk *token.Token, path string) (string, bool) {
	if n == nil {
		return "", false
	}
	same := func(t *token.Token) bool {
		return t == tk || t != nil && t.Position != nil && tk.Position != nil &&
			t.Position.Line == tk.Position.Line && t.Position.Column == tk.Position.Column && t.Value == tk.Value
	}
	switch n := n.(type) {
	case *ast.MappingNode:
		for _, mv := range n.Values {
			p := join(path, keyOf(mv))
			if mv.Key != nil && same(mv.Key.GetToken()) {
				return p, true
			}
			if rel, ok := findToken(mv.Value, tk, p); ok {
				return rel, true
			}
		}
	case *ast.SequenceNode:
		for i, e := range n.Values {
			if rel, ok := findToken(e, tk, fmt.Sprintf("%s[%d]", path, i)); ok {
				return rel, true
			}
		}
	}
	if same(n.GetToken()) {
		return path, true
	}
	return "", false
}

func describeNodeType(t ast.NodeType) string {
	switch t {
	case ast.MappingType, ast.MappingValueType:
		return "a mapping"
	case ast.SequenceType:
		return "a list"
	case ast.StringType:
		return "a string"
	case ast.IntegerType:
		return "an integer"
	case ast.BoolType:
		return "true or false"
	}
	return strings.ToLower(t.String())
}

// findScalar returns the key path and line of the first scalar under n whose text is val.
func findScalar(n ast.Node, val, path string) (string, int, bool) {
	switch n := n.(type) {
	case nil:
		return "", 0, false
	case *ast.MappingNode:
		for _, mv := range n.Values {
			if rel, l, ok := findScalar(mv.Value, val, join(path, keyOf(mv))); ok {
				return rel, l, true
			}
		}
		return "", 0, false
	case *ast.SequenceNode:
		for i, e := range n.Values {
			if rel, l, ok := findScalar(e, val, fmt.Sprintf("%s[%d]", path, i)); ok {
				return rel, l, true
			}
		}
		return "", 0, false
	}
	if s, ok := scalarText(n); ok && s == val {
		return path, line(n), true
	}
	return "", 0, false
}
