package processors

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
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
}

var (
	envPool = sync.Pool{New: func() any { return new(exprEnv) }}
	vmPool  = sync.Pool{New: func() any { return new(vm.VM) }}
)

func compileExpr(src string, opts ...expr.Option) (*program, error) {
	if src == "" {
		return nil, errors.New("empty expression")
	}
	opts = append([]expr.Option{expr.Env(&exprEnv{})}, opts...)
	p, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", src, err)
	}
	return &program{src: src, prog: p}, nil
}

func compileBool(src string) (*program, error) { return compileExpr(src, expr.AsBool()) }

func (p *program) run(e *event.Entry) (any, error) {
	env := envPool.Get().(*exprEnv)
	*env = exprEnv{Time: e.Time, Host: e.Host, Kind: e.Kind, Source: e.Source,
		Stream: e.Stream, Message: e.Message, Fields: e.Fields}
	m := vmPool.Get().(*vm.VM)
	out, err := m.Run(p.prog, env)
	*env = exprEnv{}
	envPool.Put(env)
	vmPool.Put(m)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", p.src, err)
	}
	return out, nil
}

// eval runs a boolean expression. A run-time failure (a field of an unexpected type, a
// member of a missing object) counts as false, and the error is returned for the counters.
func (p *program) eval(e *event.Entry) (bool, error) {
	out, err := p.run(e)
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
