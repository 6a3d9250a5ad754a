package pipeline

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// setupFailures is what /readyz says of processors and sinks that cannot set their consumer
// up (a derived stream the server refuses to make, an input stream that does not exist).
// They retry for ever, and until they succeed nothing flows through them: that is not
// ready, not a warning in the log alone.
type setupFailures struct {
	mu   sync.Mutex
	last map[string]string // component ("processor parsed") → its last setup error
}

func (s *setupFailures) note(what string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		s.last = make(map[string]string)
	}
	s.last[what] = err.Error()
}

func (s *setupFailures) clear(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.last, what)
}

// NotReady is "" when no component is failing its setup, else each one's last error.
func (s *setupFailures) NotReady() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var why []string
	for _, what := range slices.Sorted(maps.Keys(s.last)) {
		why = append(why, fmt.Sprintf("%s: cannot set up its consumer (retrying): %s", what, s.last[what]))
	}
	return strings.Join(why, "; ")
}
