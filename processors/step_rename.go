package processors

import (
	"errors"
	"fmt"

	"github.com/goccy/go-yaml"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

func init() { Register("rename", newRenameStep) }

// renameStep is `rename: {fields: {lvl: level, req.status: http.status}}`: moves values, in
// the order written. A missing source field is skipped; an existing target is replaced.
type renameStep struct {
	from, to []fieldPath
}

func newRenameStep(opts config.Options) (Step, error) {
	var o struct {
		Fields yaml.MapSlice `yaml:"fields"`
	}
	if err := decodeOptions(opts, &o); err != nil {
		return nil, err
	}
	if len(o.Fields) == 0 {
		return nil, errors.New("fields: required (a mapping of old path to new path)")
	}
	s := &renameStep{}
	for _, it := range o.Fields {
		k, ok1 := it.Key.(string)
		v, ok2 := it.Value.(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("fields: %v: %v: want old: new, both field paths", it.Key, it.Value)
		}
		from, err := parsePath(k)
		if err != nil {
			return nil, fmt.Errorf("fields: %w", err)
		}
		to, err := parsePath(v)
		if err != nil {
			return nil, fmt.Errorf("fields: %w", err)
		}
		s.from = append(s.from, from)
		s.to = append(s.to, to)
	}
	return s, nil
}

func (s *renameStep) Apply(e *event.Entry) (bool, error) {
	for i, from := range s.from {
		if v, ok := from.del(e.Fields); ok {
			s.to[i].set(e, v)
		}
	}
	return true, nil
}
