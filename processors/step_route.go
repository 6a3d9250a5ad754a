package processors

import (
	"errors"
	"fmt"
	"strings"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

func init() { Register("route", newRoute) }

// route is `route: {if: 'EXPR', to: errors}`: when the expression is true the entry's Route
// is set, and the pipeline publishes it under that subject prefix instead of the
// processor's. A run-time failure is false (the entry stays on the default route).
type route struct {
	p  *program
	to string
}

func newRoute(opts config.Options) (Step, error) {
	var o struct {
		If string `yaml:"if"`
		To string `yaml:"to"`
	}
	if err := decodeOptions(opts, &o); err != nil {
		return nil, err
	}
	if o.To == "" {
		return nil, errors.New("to: required (a subject prefix such as errors)")
	}
	if strings.ContainsAny(o.To, " \t\r\n*>") || strings.HasPrefix(o.To, ".") || strings.HasSuffix(o.To, ".") || strings.Contains(o.To, "..") {
		return nil, fmt.Errorf("to: %q is not a valid subject prefix (no spaces, wildcards, or empty tokens)", o.To)
	}
	if o.If == "" {
		return nil, errors.New("if: required (a boolean expression)")
	}
	p, err := compileBool(o.If)
	if err != nil {
		return nil, fmt.Errorf("if: %w", err)
	}
	return &route{p: p, to: o.To}, nil
}

func (r *route) fieldsRead() ([]string, bool) { return r.p.fields, r.p.allFields }

func (r *route) Apply(e *event.Entry) (bool, error) { return r.applyLookups(e, nil) }

func (r *route) applyLookups(e *event.Entry, lk *lookups) (bool, error) {
	v, err := r.p.eval(e, lk)
	if err != nil {
		return true, tolerate(err)
	}
	if v {
		e.Route = r.to
	}
	return true, nil
}
