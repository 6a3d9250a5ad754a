package processors

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/internal/jsonscan"
)

// exprEnv is what an expression sees: `fields.level == "debug"`, `source matches "^nginx"`.
type exprEnv struct {
	Time    time.Time      `expr:"time"`
	Host    string         `expr:"host"`
	Kind    string         `expr:"kind"`
	Source  string         `expr:"source"`
	Stream  string         `expr:"stream"`
	Message string         `expr:"message"`
	Fields  map[string]any `expr:"fields"`
	// The fields an expression names, when it reads them only as fields.NAME (compileExpr
	// rewrites those to these): the VM loads a struct field by its index, where fetching
	// from a map goes through reflect and allocates a copy of the value.
	F0 any `expr:"__field0"`
	F1 any `expr:"__field1"`
	F2 any `expr:"__field2"`
	F3 any `expr:"__field3"`
	F4 any `expr:"__field4"`
	F5 any `expr:"__field5"`
	F6 any `expr:"__field6"`
	F7 any `expr:"__field7"`
}

// slotted is the number of exprEnv's field slots.
const slotted = 8

func (env *exprEnv) slot(i int) *any {
	return [slotted]*any{&env.F0, &env.F1, &env.F2, &env.F3, &env.F4, &env.F5, &env.F6, &env.F7}[i]
}

// program is an expression compiled once at build time. Running it reuses VMs and
// environments from pools, so an evaluation does not allocate for them.
type program struct {
	src  string
	prog *vm.Program
	// fields are the only fields the expression reads, as fields.NAME or fields["NAME"],
	// each rewritten to the slot of its index (exprEnv.F0...): a lazy entry's are looked up
	// in its message. allFields: it reads fields otherwise (len(fields), fields[x], $env) or
	// names more than there are slots, and a lazy entry is parsed for it.
	fields    []string
	allFields bool
}

// pooledEnv is an environment and the map a lazy entry's looked-up fields go in.
type pooledEnv struct {
	env    exprEnv
	fields map[string]any
}

var (
	envPool = sync.Pool{New: func() any { return &pooledEnv{fields: make(map[string]any, 2)} }}
	vmPool  = sync.Pool{New: func() any { return new(vm.VM) }}
)

func compileExpr(src string, opts ...expr.Option) (*program, error) {
	if src == "" {
		return nil, errors.New("empty expression")
	}
	opts = append([]expr.Option{expr.Env(exprEnv{})}, opts...)
	// A patch sees the tree before the optimizer folds it (`fields["a" + "b"]`, `x and
	// false`), so the fields read are found by one, on the tree the slotter will rewrite.
	read := &fieldsVisitor{}
	p, err := expr.Compile(src, append(opts, expr.Patch(read))...)
	if err == nil && read.slot != "" {
		err = fmt.Errorf("unknown name %s", read.slot)
	}
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", src, err)
	}
	if read.all() || len(read.names) > slotted {
		return &program{src: src, prog: p, allFields: true}, nil
	}
	if len(read.names) == 0 {
		return &program{src: src, prog: p}, nil
	}
	slots := &slotter{names: read.names}
	sp, err := expr.Compile(src, append(opts, expr.Patch(slots))...)
	if err != nil || slots.missed {
		// Cannot happen (both patches walk the same tree); the program reads the map.
		return &program{src: src, prog: p, allFields: true}, nil
	}
	return &program{src: src, prog: sp, fields: read.names}, nil
}

// fieldsVisitor finds the fields an expression reads: the NAMEs of its fields.NAME and
// fields["NAME"]; all() when it uses fields (or the whole environment) in another way.
type fieldsVisitor struct {
	names           []string
	idents, members int
	env             bool
	// slot is a slot's name written in the expression: not a name users have.
	slot string
}

func (v *fieldsVisitor) all() bool { return v.idents != v.members || v.env }

func (v *fieldsVisitor) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		switch {
		case n.Value == "fields":
			v.idents++
		case n.Value == "$env":
			v.env = true
		case strings.HasPrefix(n.Value, slotPrefix):
			v.slot = n.Value
		}
	case *ast.MemberNode:
		if name, ok := fieldName(n); ok {
			v.members++
			if !slices.Contains(v.names, name) {
				v.names = append(v.names, name)
			}
		}
	}
}

// fieldName is NAME when n is fields.NAME or fields["NAME"].
func fieldName(n *ast.MemberNode) (string, bool) {
	id, ok := n.Node.(*ast.IdentifierNode)
	prop, isName := n.Property.(*ast.StringNode)
	if !ok || id.Value != "fields" || !isName {
		return "", false
	}
	return prop.Value, true
}

// slotPrefix starts the names of exprEnv's slots.
const slotPrefix = "__field"

// slotter rewrites fields.NAME to the slot of NAME's index in names; missed: a NAME was
// not there.
type slotter struct {
	names  []string
	missed bool
}

func (s *slotter) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok {
		return
	}
	if name, ok := fieldName(m); ok {
		i := slices.Index(s.names, name)
		if i < 0 {
			s.missed = true
			return
		}
		ast.Patch(node, &ast.IdentifierNode{Value: fmt.Sprintf("%s%d", slotPrefix, i)})
	}
}

func compileBool(src string) (*program, error) { return compileExpr(src, expr.AsBool()) }

func (p *program) run(e *event.Entry, lk *lookups) (any, error) {
	pe := envPool.Get().(*pooledEnv)
	env := &pe.env
	*env = exprEnv{Time: e.Time, Host: e.Host, Kind: e.Kind, Source: e.Source,
		Stream: e.Stream, Message: e.Message}
	switch {
	case p.allFields:
		materialize(e)
		env.Fields = e.Fields
	case len(p.fields) > 0:
		fields := e.Fields
		if lazy(e) {
			if fields = lk.of(e); fields == nil {
				if _, ok := jsonscan.Members(e.Message, p.fields, pe.fields); ok {
					fields = pe.fields
				} else {
					materialize(e)
					fields = e.Fields
				}
			}
		}
		for i, name := range p.fields {
			*env.slot(i) = fields[name]
		}
	}
	m := vmPool.Get().(*vm.VM)
	out, err := m.Run(p.prog, env)
	*env = exprEnv{}
	clear(pe.fields)
	envPool.Put(pe)
	vmPool.Put(m)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", p.src, err)
	}
	return out, nil
}

// eval runs a boolean expression. A run-time failure (a field of an unexpected type, a
// member of a missing object) counts as false, and the error is returned for the counters.
func (p *program) eval(e *event.Entry, lk *lookups) (bool, error) {
	out, err := p.run(e, lk)
	if err != nil {
		return false, err
	}
	b, _ := out.(bool)
	return b, nil
}

// exprOption reads a step whose options are one expression string: `drop: 'EXPR'`.
func exprOption(opts config.Options) (string, error) {
	v, err := opts.MarshalYAML()
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("want an expression string, got %s", kindOf(v))
	}
	return s, nil
}

func kindOf(v any) string {
	if v == nil {
		return "nothing"
	}
	switch reflect.TypeOf(v).Kind() {
	case reflect.Map:
		return "a mapping"
	case reflect.Slice:
		return "a list"
	}
	return fmt.Sprintf("%T", v)
}
