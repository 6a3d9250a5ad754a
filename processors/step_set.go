package processors

import (
	"errors"
	"fmt"

	"github.com/goccy/go-yaml"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

func init() { Register("set", newSetStep) }

// setStep is `set: {fields: {env: prod, team.name: core}}`: sets literal values, in the
// order written. An object or list value is copied per entry, so a later step that changes
// it in one entry cannot change it in the next.
type setStep struct {
	paths  []fieldPath
	values []any
}

func newSetStep(opts config.Options) (Step, error) {
	var o struct {
		Fields yaml.MapSlice `yaml:"fields"`
	}
	if err := decodeOptions(opts, &o); err != nil {
		return nil, err
	}
	if len(o.Fields) == 0 {
		return nil, errors.New("fields: required (a mapping of field path to value)")
	}
	s := &setStep{}
	for _, it := range o.Fields {
		k, ok := it.Key.(string)
		if !ok {
			return nil, fmt.Errorf("fields: key %v is not a string", it.Key)
		}
		p, err := parsePath(k)
		if err != nil {
			return nil, fmt.Errorf("fields: %w", err)
		}
		s.paths = append(s.paths, p)
		s.values = append(s.values, normalizeYAML(it.Value))
	}
	return s, nil
}

func (s *setStep) Apply(e *event.Entry) (bool, error) {
	for i, p := range s.paths {
		p.set(e, deepCopy(s.values[i]))
	}
	return true, nil
}

// normalizeYAML turns decoded YAML into the types JSON decoding gives (int64, float64,
// string, bool, nil, map[string]any, []any), so fields compare the same in expressions
// whichever way they were made.
func normalizeYAML(v any) any {
	switch t := v.(type) {
	case uint64:
		if t <= 1<<63-1 {
			return int64(t)
		}
		return float64(t)
	case int:
		return int64(t)
	case uint:
		return int64(t)
	case int32:
		return int64(t)
	case float32:
		return float64(t)
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = normalizeYAML(x)
		}
		return out
	case yaml.MapSlice:
		out := make(map[string]any, len(t))
		for _, it := range t {
			out[fmt.Sprint(it.Key)] = normalizeYAML(it.Value)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[fmt.Sprint(k)] = normalizeYAML(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = normalizeYAML(x)
		}
		return out
	}
	return v
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = deepCopy(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = deepCopy(x)
		}
		return out
	}
	return v
}
