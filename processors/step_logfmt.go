package processors

import (
	"fmt"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

func init() { Register("logfmt", newLogfmtStep) }

// logfmtStep is `logfmt: {field: message, target: ""}`: parses key=value pairs into Fields.
// Keys are taken as written (a dot in a key does not nest). On a syntax error nothing is
// stored and fields._error says why.
type logfmtStep struct {
	src source
	dst target
}

func newLogfmtStep(opts config.Options) (Step, error) {
	src, dst, err := parserOptions(opts)
	if err != nil {
		return nil, err
	}
	return &logfmtStep{src: src, dst: dst}, nil
}

func (s *logfmtStep) Apply(e *event.Entry) (bool, error) {
	in, ok, err := s.src.read(e)
	if err != nil {
		return true, setError(e, fmt.Errorf("logfmt: %w", err))
	}
	if !ok {
		return true, ErrNoMatch
	}
	m := make(map[string]any, 8)
	if err := parseLogfmt(in, func(k, v string) { m[k] = v }); err != nil {
		return true, setError(e, fmt.Errorf("logfmt: %w", err))
	}
	if len(m) == 0 {
		return true, ErrNoMatch
	}
	s.dst.store(e, m)
	return true, nil
}
