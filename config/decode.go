package config

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// decoder decodes the YAML tree into Config by reflection, collecting every error rather than
// stopping at the first, with the key path and line of each.
type decoder struct {
	file   string
	errs   Errors
	failed []string // paths that failed to decode: validation stays quiet about them
}

func (d *decoder) errorf(n ast.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{File: d.file, Line: line(n), Path: path, Msg: fmt.Sprintf(format, args...)})
	d.failed = append(d.failed, path)
}

// covers reports whether path is, or lies under, a path that failed to decode: a key that
// could not be decoded would otherwise also be reported as missing or invalid.
func (d *decoder) covers(path string) bool {
	for _, f := range d.failed {
		if path == f || strings.HasPrefix(path, f+".") || strings.HasPrefix(path, f+"[") {
			return true
		}
	}
	return false
}

var (
	optionsType    = reflect.TypeFor[Options]()
	componentType  = reflect.TypeFor[Component]()
	unmarshalerTyp = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) decode(n ast.Node, v reflect.Value, path string) {
	if n == nil {
		return
	}
	if v.Type() == optionsType {
		v.Set(reflect.ValueOf(Options{node: n}))
		return
	}
	if n.Type() == ast.NullType {
		// `embedded:` with nothing under it means "embedded, with defaults".
		if v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.Struct && v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerTyp) {
		s, ok := scalarText(n)
		if !ok {
			d.errorf(n, path, "want a string, got %s", kindOf(n))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			d.errorf(n, path, "%v", err)
		}
		return
	}
	d.decodeKind(n, v, path)
}

// decodeKind decodes a scalar, list or struct node into v by v's kind.
func (d *decoder) decodeKind(n ast.Node, v reflect.Value, path string) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == componentType {
			d.component(n, v.Addr().Interface().(*Component), path)
			return
		}
		d.structure(n, v, path)
	case reflect.Slice:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			d.errorf(n, path, "want a list, got %s", kindOf(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(seq.Values), len(seq.Values))
		for i, e := range seq.Values {
			d.decode(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.String:
		s, ok := scalarText(n)
		if !ok {
			d.errorf(n, path, "want a string, got %s", kindOf(n))
			return
		}
		v.SetString(s)
	case reflect.Int, reflect.Int64, reflect.Int32:
		in, ok := n.(*ast.IntegerNode)
		if !ok {
			d.errorf(n, path, "want an integer, got %s", kindOf(n))
			return
		}
		i, err := strconv.ParseInt(fmt.Sprint(in.Value), 10, 64)
		if err != nil || i < math.MinInt32 || i > math.MaxInt32 {
			d.errorf(n, path, "integer %s out of range", in.Token.Value)
			return
		}
		v.SetInt(i)
	case reflect.Bool:
		b, ok := n.(*ast.BoolNode)
		if !ok {
			d.errorf(n, path, "want true or false, got %s", kindOf(n))
			return
		}
		v.SetBool(b.Value)
	default:
		d.errorf(n, path, "cannot decode into %s", v.Type())
	}
}

// fields maps a struct's YAML keys to field indexes, in declaration order.
func fields(t reflect.Type) (keys []string, idx map[string]int) {
	idx = map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if !f.IsExported() || tag == "-" || tag == "" {
			continue
		}
		keys = append(keys, tag)
		idx[tag] = i
	}
	return keys, idx
}

func (d *decoder) structure(n ast.Node, v reflect.Value, path string) {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		d.errorf(n, path, "want a mapping, got %s", kindOf(n))
		return
	}
	keys, idx := fields(v.Type())
	for _, mv := range m.Values {
		k := keyOf(mv)
		i, ok := idx[k]
		if !ok {
			d.errorf(mv.Key, join(path, k), "unknown key%s", suggest(k, keys))
			continue
		}
		d.decode(mv.Value, v.Field(i), join(path, k))
	}
}

// Keys of a source or sink that config decodes; the rest belong to the component's type.
var (
	sourceKeys = []string{"name", "type"}
	sinkKeys   = PipelineKeys
)

func (d *decoder) component(n ast.Node, c *Component, path string) {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		d.errorf(n, path, "want a mapping, got %s", kindOf(n))
		return
	}
	c.Options = Options{node: m}
	known := sinkKeys
	if strings.HasPrefix(path, "sources") {
		known = sourceKeys
	}
	_, idx := fields(componentType)
	v := reflect.ValueOf(c).Elem()
	for _, mv := range m.Values {
		k := keyOf(mv)
		for _, kk := range known {
			if kk == k {
				d.decode(mv.Value, v.Field(idx[k]), join(path, k))
			}
		}
	}
}

// scalarText is the text of a scalar as written: `node: 42` is the string "42".
func scalarText(n ast.Node) (string, bool) {
	switch n := n.(type) {
	case *ast.StringNode:
		return n.Value, true
	case *ast.LiteralNode:
		return n.Value.Value, true
	case *ast.NullNode:
		return "", true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return n.GetToken().Value, true
	}
	return "", false
}

func kindOf(n ast.Node) string {
	switch n.Type() {
	case ast.MappingType, ast.MappingValueType:
		return "a mapping"
	case ast.SequenceType:
		return "a list"
	case ast.StringType, ast.LiteralType:
		return fmt.Sprintf("string %q", n.GetToken().Value)
	case ast.IntegerType, ast.FloatType, ast.InfinityType, ast.NanType:
		return "number " + n.GetToken().Value
	case ast.BoolType:
		return n.GetToken().Value
	case ast.NullType:
		return "null"
	}
	return strings.ToLower(n.Type().String())
}

// suggest names the closest known key when the unknown one looks like a typo.
func suggest(k string, keys []string) string {
	best, bestD := "", 3
	for _, kk := range keys {
		if dd := editDistance(k, kk); dd < bestD {
			best, bestD = kk, dd
		}
	}
	if best == "" || len(k) < 3 {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
