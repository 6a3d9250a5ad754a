package processors

import (
	"errors"
	"fmt"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

func init() { Register("remove", newRemoveStep) }

// removeStep is `remove: {fields: [debug, http.headers]}`: deletes fields; missing ones are
// not an error.
type removeStep struct{ paths []fieldPath }

func newRemoveStep(opts config.Options) (Step, error) {
	var o struct {
		Fields []string `yaml:"fields"`
	}
	if err := decodeOptions(opts, &o); err != nil {
		return nil, err
	}
	if len(o.Fields) == 0 {
		return nil, errors.New("fields: required (a list of field paths)")
	}
	s := &removeStep{}
	for _, f := range o.Fields {
		p, err := parsePath(f)
		if err != nil {
			return nil, fmt.Errorf("fields: %w", err)
		}
		s.paths = append(s.paths, p)
	}
	return s, nil
}

func (s *removeStep) Apply(e *event.Entry) (bool, error) {
	for _, p := range s.paths {
		p.del(e.Fields)
	}
	return true, nil
}
