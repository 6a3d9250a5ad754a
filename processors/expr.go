package processors

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
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
}

// program is an expression compiled once at build time. Running it reuses VMs and
// environments from pools, so an evaluation does not allocate for them.
type program struct {
	src  string
	prog *vm.Program
	// fields are the only fields the expression reads (as fields.NAME or fields["NAME"]):
	// a lazy entry's are looked up in its message. allFields: it reads fields otherwise
	// (len(fields), fields[x], $env), and a lazy entry is parsed for it.
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
	p, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", src, err)
	}
	fields, all := fieldsRead(p.Node())
	return &program{src: src, prog: p, fields: fields, allFields: all}, nil
}

// fieldsRead finds the fields an expression reads: the NAMEs of its fields.NAME and
// fields["NAME"], or all=true when it uses fields (or the whole environment) in another way.
func fieldsRead(root ast.Node) (names []string, all bool) {
	v := &fieldsVisitor{}
	ast.Walk(&root, v)
	return v.names, v.idents != v.members || v.env
}

type fieldsVisitor struct {
	names           []string
	idents, members int
	env             bool
}

func (v *fieldsVisitor) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		switch n.Value {
		case "fields":
			v.idents++
		case "$env":
			v.env = true
		}
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		prop, isName := n.Property.(*ast.StringNode)
		if ok && id.Value == "fields" && isName {
			v.members++
			if !slices.Contains(v.names, prop.Value) {
				v.names = append(v.names, prop.Value)
			}
		}
	}
}

func compileBool(src string) (*program, error) { return compileExpr(src, expr.AsBool()) }

func (p *program) run(e *event.Entry, lk *lookups) (any, error) {
	pe := envPool.Get().(*pooledEnv)
	fields := e.Fields
	if lazy(e) {
		fields = lk.of(e)
		if fields == nil && !p.allFields {
			if _, ok := jsonscan.Members(e.Message, p.fields, pe.fields); ok {
				fields = pe.fields
			}
		}
		if fields == nil || p.allFields {
			materialize(e)
			fields = e.Fields
		}
	}
	env := &pe.env
	*env = exprEnv{Time: e.Time, Host: e.Host, Kind: e.Kind, Source: e.Source,
		Stream: e.Stream, Message: e.Message, Fields: fields}
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
