package processors

import (
	"errors"
	"strings"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

// A field path names a value in Entry.Fields; dots nest (`http.status` is
// Fields["http"]["status"]). The path "message" names Entry.Message itself, so steps that
// read "a field" read the message by default.
const messageField = "message"

// errorField is where a step that tolerates a failure records it, so the entry keeps
// flowing and the reason travels with it (Vector and Promtail users know the pattern).
const errorField = "_error"

type fieldPath []string

func parsePath(p string) (fieldPath, error) {
	if p == "" {
		return nil, errors.New("empty field path")
	}
	parts := strings.Split(p, ".")
	for _, s := range parts {
		if s == "" {
			return nil, errors.New("field path " + quote(p) + ": empty segment")
		}
	}
	return parts, nil
}

func quote(s string) string { return `"` + s + `"` }

// get returns the value at path, or false when any segment is missing or not an object.
func (p fieldPath) get(fields map[string]any) (any, bool) {
	m := fields
	for i, k := range p {
		v, ok := m[k]
		if !ok {
			return nil, false
		}
		if i == len(p)-1 {
			return v, true
		}
		if m, ok = v.(map[string]any); !ok {
			return nil, false
		}
	}
	return nil, false
}

// set stores v at path, creating (or replacing non-object values with) the objects on the way.
func (p fieldPath) set(e *event.Entry, v any) {
	if e.Fields == nil {
		e.Fields = make(map[string]any, 4)
	}
	m := e.Fields
	for _, k := range p[:len(p)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = make(map[string]any, 2)
			m[k] = next
		}
		m = next
	}
	m[p[len(p)-1]] = v
}

// del removes the value at path and returns it.
func (p fieldPath) del(fields map[string]any) (any, bool) {
	m := fields
	for _, k := range p[:len(p)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil, false
		}
		m = next
	}
	last := p[len(p)-1]
	v, ok := m[last]
	if ok {
		delete(m, last)
	}
	return v, ok
}

// source is where a parsing step reads its input: the message or a string field.
type source struct {
	msg  bool
	path fieldPath
}

func parseSource(field string) (source, error) {
	if field == "" || field == messageField {
		return source{msg: true}, nil
	}
	p, err := parsePath(field)
	return source{path: p}, err
}

// read returns the input text; ok=false when the field is absent or not a string.
func (s source) read(e *event.Entry) (string, bool, error) {
	if s.msg {
		return e.Message, true, nil
	}
	v, ok := s.path.get(e.Fields)
	if !ok {
		return "", false, nil
	}
	str, ok := v.(string)
	if !ok {
		return "", true, errors.New("field " + quote(strings.Join(s.path, ".")) + " is not a string")
	}
	return str, true, nil
}

// setError records a tolerated failure in fields._error and returns it for the counters.
func setError(e *event.Entry, err error) error {
	materialize(e)
	e.FieldsFrom = "" // the fields are no longer the message parsed
	if e.Fields == nil {
		e.Fields = make(map[string]any, 1)
	}
	e.Fields[errorField] = err.Error()
	return tolerate(err)
}

// target is where a parsing step puts what it parsed: merged into Fields, or under a path.
type target struct{ path fieldPath }

func parseTarget(t string) (target, error) {
	if t == "" {
		return target{}, nil
	}
	p, err := parsePath(t)
	return target{path: p}, err
}

// store puts the parsed object m into the entry.
func (t target) store(e *event.Entry, m map[string]any) {
	if t.path == nil {
		if e.Fields == nil {
			e.Fields = m
			return
		}
		for k, v := range m {
			e.Fields[k] = v
		}
		return
	}
	t.path.set(e, m)
}

// decodeOptions decodes a step's options strictly; `json:` with nothing after it is the same
// as `json: {}`.
func decodeOptions(opts config.Options, out any) error {
	if opts.Empty() {
		return nil
	}
	if v, err := opts.MarshalYAML(); err == nil && v == nil {
		return nil
	}
	return opts.Decode(out)
}
