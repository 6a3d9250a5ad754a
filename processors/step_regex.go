package processors

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

func init() { Register("regex", newRegexStep) }

// regexStep is `regex: {pattern: '(?P<level>\w+) ...', field: message}`: each named group
// that took part in the match becomes a string field. No match leaves the entry unchanged
// and counts as Unmatched (not an error: a regex often applies to some lines only).
type regexStep struct {
	re    *regexp.Regexp
	names []fieldPath // by group index; nil for unnamed groups
	src   source
}

func newRegexStep(opts config.Options) (Step, error) {
	var o struct {
		Pattern string `yaml:"pattern"`
		Field   string `yaml:"field"`
	}
	if err := decodeOptions(opts, &o); err != nil {
		return nil, err
	}
	if o.Pattern == "" {
		return nil, errors.New("pattern: required")
	}
	re, err := regexp.Compile(o.Pattern)
	if err != nil {
		return nil, fmt.Errorf("pattern: %w", err)
	}
	s := &regexStep{re: re, names: make([]fieldPath, re.NumSubexp()+1)}
	named := 0
	for i, n := range re.SubexpNames() {
		if n != "" {
			s.names[i] = fieldPath{n}
			named++
		}
	}
	if named == 0 {
		return nil, fmt.Errorf("pattern %q: no named group like (?P<level>...): nothing to extract", o.Pattern)
	}
	if s.src, err = parseSource(o.Field); err != nil {
		return nil, fmt.Errorf("field: %w", err)
	}
	return s, nil
}

func (s *regexStep) Apply(e *event.Entry) (bool, error) {
	in, ok, err := s.src.read(e)
	if err != nil {
		return true, setError(e, fmt.Errorf("regex: %w", err))
	}
	if !ok {
		return true, ErrNoMatch
	}
	idx := s.re.FindStringSubmatchIndex(in)
	if idx == nil {
		return true, ErrNoMatch
	}
	for g, p := range s.names {
		if p == nil || idx[2*g] < 0 {
			continue
		}
		p.set(e, in[idx[2*g]:idx[2*g+1]])
	}
	return true, nil
}
