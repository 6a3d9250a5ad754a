package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Load reads a config file, expands environment variables, decodes it strictly, applies
// defaults and validates it. A non-nil error is an Errors listing every problem found, each
// naming the file (as given in path), line and key.
func Load(path string) (*Config, error) {
	data, err := readBounded(path, maxConfigBytes)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is already the error's prefix
		}
		return nil, Errors{{File: path, Msg: fmt.Sprintf("read config: %v", err)}}
	}
	return Parse(path, data)
}

// readBounded reads at most limit bytes of path; a longer file is an error.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d MiB", limit>>20)
	}
	return data, nil
}

// Parse is Load on bytes; name is used in error messages.
func Parse(name string, data []byte) (*Config, error) {
	data, err := ExpandEnv(name, data, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	root, fe := parseYAML(name, data)
	if fe != nil {
		return nil, Errors{fe}
	}
	c := &Config{File: name, root: root}
	d := &decoder{file: name}
	if root != nil {
		d.decode(root, reflect.ValueOf(c).Elem(), "")
	}
	c.ApplyDefaults()
	errs := d.errs
	if verr := c.Validate(); verr != nil {
		for _, e := range verr.(Errors) {
			if !d.covers(e.Path) {
				errs = append(errs, e)
			}
		}
	}
	if len(errs) > 0 {
		errs.sortByLine()
		return nil, errs
	}
	return c, nil
}

// parseYAML parses one YAML document and resolves anchors, aliases and merge keys, so that
// everything downstream (the decoder, Options.Decode, Redacted) sees a plain tree.
func parseYAML(name string, data []byte) (root ast.Node, fe *FieldError) {
	defer func() {
		// The YAML parser is third-party code fed user input: a crash in it must still be a
		// config error, not a crashed `logcap check`.
		if r := recover(); r != nil {
			root, fe = nil, &FieldError{File: name, Msg: fmt.Sprintf("YAML parser failed: %v", r)}
		}
	}()
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, syntaxError(name, data, err)
	}
	var body ast.Node
	for i, doc := range f.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		if body != nil {
			return nil, &FieldError{File: name, Line: line(doc.Body), Msg: fmt.Sprintf("more than one YAML document (document %d)", i+1)}
		}
		body = doc.Body
	}
	if body == nil {
		return nil, nil
	}
	r := &resolver{anchors: map[string]ast.Node{}}
	body = r.resolve(body)
	if r.err == nil {
		if n := expandedNodes(body, map[ast.Node]int{}); n > maxExpandedNodes {
			r.err = &FieldError{Line: line(body), Msg: fmt.Sprintf("aliases expand the document to more than %d values (an alias bomb?)", maxExpandedNodes)}
		}
	}
	if r.err != nil {
		r.err.File = name
		return nil, r.err
	}
	return body, nil
}

// maxExpandedNodes bounds what aliases may expand a config to: shared in the resolved tree,
// they are copied by every decode into Go values (nine aliases of nine, nine levels deep, made
// `check` allocate 10.9 GB and `run` 24 GB). A real config has a few thousand values.
const maxExpandedNodes = 200_000

// maxConfigBytes bounds the config file read.
const maxConfigBytes = 4 << 20

// expandedNodes is the number of nodes n stands for once its aliases are copied out, counted
// over the shared tree (memo) and saturated just past the limit.
func expandedNodes(n ast.Node, memo map[ast.Node]int) int {
	if n == nil {
		return 0
	}
	if c, ok := memo[n]; ok {
		return c
	}
	c := 1
	switch n := n.(type) {
	case *ast.SequenceNode:
		for _, v := range n.Values {
			c += expandedNodes(v, memo)
			if c > maxExpandedNodes {
				break
			}
		}
	case *ast.MappingNode:
		for _, mv := range n.Values {
			c += 1 + expandedNodes(mv.Value, memo)
			if c > maxExpandedNodes {
				break
			}
		}
	case *ast.MappingValueNode:
		c += expandedNodes(n.Value, memo)
	}
	c = min(c, maxExpandedNodes+1)
	memo[n] = c
	return c
}

func line(n ast.Node) int {
	if n == nil {
		return 0
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
}

// resolver replaces anchors by their values, aliases by what they name, tags by their value and
// merge keys (`<<: *base`) by the merged keys. Aliases share the resolved node, so the result
// is no bigger than the source.
type resolver struct {
	anchors map[string]ast.Node
	err     *FieldError
	depth   int
}

const maxDepth = 200

func (r *resolver) resolve(n ast.Node) ast.Node {
	if r.err != nil || n == nil {
		return n
	}
	r.depth++
	defer func() { r.depth-- }()
	if r.depth > maxDepth {
		r.err = &FieldError{Line: line(n), Msg: fmt.Sprintf("nested more than %d levels deep", maxDepth)}
		return n
	}
	switch n := n.(type) {
	case *ast.AnchorNode:
		v := r.resolve(n.Value)
		if v == nil {
			v = ast.Null(n.Start)
		}
		r.anchors[n.Name.GetToken().Value] = v
		return v
	case *ast.AliasNode:
		name := n.Value.GetToken().Value
		v, ok := r.anchors[name]
		if !ok {
			r.err = &FieldError{Line: line(n), Msg: fmt.Sprintf("unknown alias *%s", name)}
			return n
		}
		return v
	case *ast.TagNode:
		return r.resolve(n.Value)
	case *ast.SequenceNode:
		cp := *n
		cp.Values = make([]ast.Node, len(n.Values))
		for i, v := range n.Values {
			if n.IsFlowStyle {
				v = rejoinColonScalar(v)
			}
			cp.Values[i] = r.resolve(v)
		}
		return &cp
	case *ast.MappingNode:
		cp := *n
		cp.Values = nil
		var merged []*ast.MappingValueNode
		for _, mv := range n.Values {
			v := r.resolve(mv.Value)
			if _, isMerge := mv.Key.(*ast.MergeKeyNode); isMerge {
				merged = append(merged, r.mergeValues(v)...)
				continue
			}
			mvc := *mv
			mvc.Value = v
			cp.Values = append(cp.Values, &mvc)
		}
		// Explicit keys win over merged ones, and earlier merged mappings over later ones.
		seen := map[string]bool{}
		for _, mv := range cp.Values {
			seen[keyOf(mv)] = true
		}
		for _, mv := range merged {
			if k := keyOf(mv); !seen[k] {
				seen[k] = true
				cp.Values = append(cp.Values, mv)
			}
		}
		return &cp
	case *ast.MappingValueNode:
		// The parser wraps mappings in MappingNode; keep this for safety.
		cp := *n
		cp.Value = r.resolve(n.Value)
		return &cp
	}
	return n
}

var dupKeyRe = regexp.MustCompile(`^mapping key "(.*)" already defined at \[(\d+):\d+\]`)

// syntaxError makes a parser error one readable line; a duplicate key gets its full key path,
// found by parsing again with duplicates allowed.
func syntaxError(name string, data []byte, err error) *FieldError {
	fe := yamlError(name, err)
	if strings.ContainsRune(fe.Msg, '\t') {
		fe.Msg = "tab character: YAML indentation must use spaces"
		return fe
	}
	m := dupKeyRe.FindStringSubmatch(fe.Msg)
	if m == nil {
		fe.Msg = "YAML syntax: " + fe.Msg
		return fe
	}
	fe.Path, fe.Msg = m[1], "duplicate key (first on line "+m[2]+")"
	var ye yaml.Error
	if !errors.As(err, &ye) || ye.GetToken() == nil {
		return fe
	}
	f, err2 := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
	if err2 != nil {
		return fe
	}
	for _, doc := range f.Docs {
		if doc != nil {
			if p, ok := findToken(doc.Body, ye.GetToken(), ""); ok && p != "" {
				fe.Path = p
				break
			}
		}
	}
	return fe
}

// rejoinColonScalar works around a goccy/go-yaml v1.19 parser bug: in a flow sequence nested in
// a flow mapping (`cluster: {routes: [nats-route://10.0.0.2:6222]}`) it reads the plain
// scalar "nats-route://10.0.0.2:6222" as the pair {"nats-route://10.0.0.2": 6222}. YAML says a
// ":" not followed by a space is part of the scalar; where key, ":" and value touch, the
// element is rebuilt as the one string it was written as.
func rejoinColonScalar(n ast.Node) ast.Node {
	m, ok := n.(*ast.MappingNode)
	if !ok || m.IsFlowStyle || len(m.Values) != 1 {
		return n
	}
	mv := m.Values[0]
	k, isStr := mv.Key.(*ast.StringNode)
	if !isStr || mv.Value == nil || k.Token == nil || k.Token.Position == nil || mv.Start == nil || mv.Start.Position == nil {
		return n
	}
	vt := mv.Value.GetToken()
	if vt == nil || vt.Position == nil {
		return n
	}
	kp, cp, vp := k.Token.Position, mv.Start.Position, vt.Position
	if k.Token.Type != token.StringType || !isPlainScalar(vt) ||
		kp.Line != cp.Line || cp.Line != vp.Line ||
		kp.Column+len(k.Token.Value) != cp.Column || cp.Column+1 != vp.Column {
		return n
	}
	tk := *k.Token
	tk.Value = k.Token.Value + ":" + vt.Value
	tk.Origin = tk.Value
	return ast.String(&tk)
}

func isPlainScalar(tk *token.Token) bool {
	switch tk.Type {
	case token.StringType, token.IntegerType, token.FloatType, token.BoolType, token.NullType:
		return true
	}
	return false
}

func (r *resolver) mergeValues(v ast.Node) []*ast.MappingValueNode {
	switch v := v.(type) {
	case *ast.MappingNode:
		return v.Values
	case *ast.SequenceNode:
		var out []*ast.MappingValueNode
		for _, e := range v.Values {
			out = append(out, r.mergeValues(e)...)
		}
		return out
	}
	if r.err == nil {
		r.err = &FieldError{Line: line(v), Msg: "merge key << wants a mapping or a list of mappings"}
	}
	return nil
}

func keyOf(mv *ast.MappingValueNode) string {
	if mv.Key == nil {
		return ""
	}
	if s, ok := mv.Key.(*ast.StringNode); ok {
		return s.Value
	}
	if tk := mv.Key.GetToken(); tk != nil {
		return tk.Value
	}
	return ""
}
