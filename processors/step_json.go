package processors

import (
	"fmt"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/internal/jsonscan"
)

func init() { Register("json", newJSONStep) }

// jsonStep is `json: {field: message, target: ""}`: parses a JSON object into Fields.
type jsonStep struct {
	src source
	dst target
	// lazy: the steps after this one read lazy entries as they are (Chain.makeLazy), so an
	// entry whose fields would be exactly its message parsed gets only FieldsFrom, not the
	// fields: whoever needs them parses the message (lazy.go, streams.FieldsOf).
	lazy bool
	// lookups are the top-level fields those steps read: a lazy json step finds them in
	// the pass that checks the message.
	lookups []string
}

func newJSONStep(opts config.Options) (Step, error) {
	src, dst, err := parserOptions(opts)
	if err != nil {
		return nil, err
	}
	return &jsonStep{src: src, dst: dst}, nil
}

// parserOptions decodes the options every parsing step takes: `{field: message, target: ""}`.
func parserOptions(opts config.Options) (source, target, error) {
	var o struct {
		Field  string `yaml:"field"`
		Target string `yaml:"target"`
	}
	if err := decodeOptions(opts, &o); err != nil {
		return source{}, target{}, err
	}
	src, err := parseSource(o.Field)
	if err != nil {
		return source{}, target{}, fmt.Errorf("field: %w", err)
	}
	dst, err := parseTarget(o.Target)
	if err != nil {
		return source{}, target{}, fmt.Errorf("target: %w", err)
	}
	return src, dst, nil
}

func (s *jsonStep) Apply(e *event.Entry) (bool, error) { return s.applyLookups(e, nil) }

func (s *jsonStep) applyLookups(e *event.Entry, lk *lookups) (bool, error) {
	in, ok, err := s.src.read(e)
	if ok {
		e.FieldsFrom = "" // its fields change, whatever comes of it
	}
	if err != nil {
		return true, setError(e, fmt.Errorf("json: %w", err))
	}
	if !ok {
		return true, ErrNoMatch
	}
	fresh := len(e.Fields) == 0 && s.src.msg && s.dst.path == nil
	if fresh && s.lazy {
		var members, ok bool
		if lk != nil {
			members, ok = jsonscan.Members(in, s.lookups, lk.fields)
			lk.done = ok && members
		} else {
			members, ok = jsonscan.IsObject(in)
		}
		if ok && members {
			e.Fields, e.FieldsFrom = nil, event.FieldsFromJSON
			return true, nil
		}
	}
	m, err := jsonscan.Parse(in)
	if err != nil {
		return true, setError(e, fmt.Errorf("json: %w", err))
	}
	// The entry's fields are the message parsed, and only that, when the message is the
	// source, the root the target and these the first fields.
	if fresh && len(m) > 0 {
		e.FieldsFrom = event.FieldsFromJSON
	}
	s.dst.store(e, m)
	return true, nil
}
