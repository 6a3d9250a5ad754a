package processors

import (
	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

func init() {
	Register("drop", func(opts config.Options) (Step, error) { return newFilter(opts, true) })
	Register("keep", func(opts config.Options) (Step, error) { return newFilter(opts, false) })
}

// filter is `drop: 'EXPR'` (drop when true) or `keep: 'EXPR'` (drop when false). An
// expression that fails at run time is false: drop keeps the entry, keep drops it.
type filter struct {
	p    *program
	drop bool
}

func newFilter(opts config.Options, drop bool) (Step, error) {
	src, err := exprOption(opts)
	if err != nil {
		return nil, err
	}
	p, err := compileBool(src)
	if err != nil {
		return nil, err
	}
	return &filter{p: p, drop: drop}, nil
}

func (f *filter) fieldsRead() ([]string, bool) { return f.p.fields, f.p.allFields }

func (f *filter) Apply(e *event.Entry) (bool, error) { return f.applyLookups(e, nil) }

func (f *filter) applyLookups(e *event.Entry, lk *lookups) (bool, error) {
	v, err := f.p.eval(e, lk)
	if err != nil {
		err = tolerate(err)
	}
	return v != f.drop, err
}
