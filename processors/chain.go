package processors

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

// ErrNoMatch is what a step returns when it did not apply to an entry (a regex that did not
// match): the entry goes on unchanged and the chain counts it in StepStats.Unmatched.
var ErrNoMatch = errors.New("no match")

// Tolerated is an error a step recovered from: the entry goes on (or is dropped, as keep
// says) and the chain counts it in StepStats.Errors instead of failing the entry. A parse
// failure that is recorded in fields._error is one.
type Tolerated struct{ Err error }

func (t *Tolerated) Error() string { return t.Err.Error() }
func (t *Tolerated) Unwrap() error { return t.Err }

// tolerate wraps err so the chain counts it and goes on.
func tolerate(err error) error { return &Tolerated{Err: err} }

// StepStats are the counters of one step of a chain, for the metrics module.
type StepStats struct {
	Index int
	Type  string
	// In counts entries the step was given; Out those it passed on; Dropped those it
	// dropped; Errors those that failed it (the chain stopped) or that it tolerated (a
	// parse failure recorded in fields._error, an expression that failed at run time).
	In, Out, Dropped, Errors uint64
	// Unmatched counts entries the step passed on unchanged because it did not apply.
	Unmatched uint64
}

type chainStep struct {
	typ                               string
	step                              Step
	lookup                            lookupStep // step, when it takes the lookups
	readsLazily                       bool       // step is a lazyReader
	in, out, dropped, errs, unmatched atomic.Uint64
}

// Chain runs an entry through a processor's steps in order. It is safe for concurrent use
// as long as its steps are, which every step of this package is.
type Chain struct {
	steps []*chainStep
	// keepsFieldsFrom: every step keeps event.Entry.FieldsFrom right (fieldsFromKeepers).
	// Otherwise Process clears it.
	keepsFieldsFrom bool
	// lookups: a lazy json step looks up fields for the steps after it (lazy.go).
	lookups bool
}

// fieldsFromKeepers are the step types that keep event.Entry.FieldsFrom right: they change
// an entry's fields or message only by the json step's own parse, by setError, or (redact)
// clearing it when they do.
var fieldsFromKeepers = map[string]bool{"json": true, "timestamp": true, "drop": true, "keep": true, "sample": true, "route": true, "redact": true}

// BuildChain builds and validates every step of a processor's `steps:` list. Each element is
// a one-key mapping `TYPE: OPTIONS` (or a bare `TYPE` for a step without options). Errors
// name the step: `steps[2] (drop): ...`.
func BuildChain(steps []config.Options) (*Chain, error) {
	c := &Chain{steps: make([]*chainStep, 0, len(steps)), keepsFieldsFrom: true}
	for i, s := range steps {
		typ, opts, err := s.Step()
		if err != nil {
			return nil, fmt.Errorf("steps[%d]: %w", i, err)
		}
		st, err := NewStep(typ, opts)
		if err != nil {
			return nil, fmt.Errorf("steps[%d] (%s): %w", i, typ, err)
		}
		lookup, _ := st.(lookupStep)
		_, lazyOK := st.(lazyReader)
		c.steps = append(c.steps, &chainStep{typ: typ, step: st, lookup: lookup, readsLazily: lazyOK})
		c.keepsFieldsFrom = c.keepsFieldsFrom && fieldsFromKeepers[typ]
	}
	c.makeLazy()
	return c, nil
}

// makeLazy makes a json step followed only by steps that read lazy entries as they are
// (lazyReader) lazy: it builds no fields where a reference to the message says it all, and
// looks up for those steps the fields they read (lazy.go).
func (c *Chain) makeLazy() {
	var names []string
	for i := len(c.steps) - 1; i >= 0 && c.keepsFieldsFrom; i-- {
		switch st := c.steps[i].step.(type) {
		case *jsonStep:
			st.lazy, st.lookups = true, names
			c.lookups = len(names) > 0
			return
		case lazyReader:
			read, all := st.fieldsRead()
			if all {
				continue // it parses the message: no lookup spares it that
			}
			for _, n := range read {
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		default:
			return
		}
	}
}

// Process runs e through the steps in order, in place. keep=false means a step dropped it;
// the steps after that one do not run. An error (a step failed or panicked) names the step
// and means the entry should be dead-lettered; the process never crashes on an entry.
func (c *Chain) Process(e *event.Entry) (keep bool, err error) {
	var lk *lookups
	if c.lookups {
		lk = lookupsPool.Get().(*lookups)
		defer func() {
			clear(lk.fields)
			lk.done = false
			lookupsPool.Put(lk)
		}()
	}
	for i, s := range c.steps {
		s.in.Add(1)
		keep, err := s.apply(e, lk)
		if err != nil {
			var tol *Tolerated
			switch {
			case errors.Is(err, ErrNoMatch):
				s.unmatched.Add(1)
			case errors.As(err, &tol):
				s.errs.Add(1)
			default:
				s.errs.Add(1)
				return false, fmt.Errorf("steps[%d] (%s): %w", i, s.typ, err)
			}
		}
		if !keep {
			s.dropped.Add(1)
			return false, nil
		}
		s.out.Add(1)
	}
	if !c.keepsFieldsFrom {
		materialize(e)
		e.FieldsFrom = ""
	}
	return true, nil
}

// apply turns a panic into an error so that one poison entry is dead-lettered instead of
// taking the processor down with every other entry in flight.
func (s *chainStep) apply(e *event.Entry, lk *lookups) (keep bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			keep, err = false, fmt.Errorf("panic: %v", r)
		}
	}()
	if !s.readsLazily {
		materialize(e)
	}
	if s.lookup != nil {
		return s.lookup.applyLookups(e, lk)
	}
	return s.step.Apply(e)
}

// Len is the number of steps.
func (c *Chain) Len() int { return len(c.steps) }

// Stats returns a snapshot of every step's counters, in step order.
func (c *Chain) Stats() []StepStats {
	out := make([]StepStats, len(c.steps))
	for i, s := range c.steps {
		out[i] = StepStats{
			Index: i, Type: s.typ,
			In: s.in.Load(), Out: s.out.Load(), Dropped: s.dropped.Load(),
			Errors: s.errs.Load(), Unmatched: s.unmatched.Load(),
		}
	}
	return out
}
