package app

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/logcap/logcap/config"
)

// Change is what a new configuration changes against the running one.
type Change struct {
	// Restart are the keys that changed and that a reload cannot apply: the embedded server,
	// the connection, data_dir, the streams, admin.listen, node... (e.g. "nats.embedded.listen").
	Restart []string
	// Sources, Processors and Sinks name the components added, removed or changed.
	Sources, Processors, Sinks Delta
}

// Delta names the components of one kind that a new configuration adds, removes or changes.
type Delta struct {
	Added, Removed, Changed []string
}

func (d Delta) empty() bool { return len(d.Added)+len(d.Removed)+len(d.Changed) == 0 }

// Empty reports whether the new configuration changes no component.
func (c Change) Empty() bool {
	return c.Sources.empty() && c.Processors.empty() && c.Sinks.empty()
}

// String is the summary the log line and /readyz show, e.g.
// "sinks: added [b], removed [a]; sources: changed [app]".
func (c Change) String() string {
	var parts []string
	for _, k := range []struct {
		kind string
		d    Delta
	}{{"sources", c.Sources}, {"processors", c.Processors}, {"sinks", c.Sinks}} {
		var ds []string
		for _, x := range []struct {
			what  string
			names []string
		}{{"added", k.d.Added}, {"removed", k.d.Removed}, {"changed", k.d.Changed}} {
			if len(x.names) > 0 {
				ds = append(ds, fmt.Sprintf("%s %v", x.what, x.names))
			}
		}
		if len(ds) > 0 {
			parts = append(parts, k.kind+": "+strings.Join(ds, ", "))
		}
	}
	if len(parts) == 0 {
		return "no component changed"
	}
	return strings.Join(parts, "; ")
}

// reloadable are the top-level keys a reload applies: everything else lives in the core
// (the embedded server, the connection, the admin endpoint, the streams' guard).
var reloadable = map[string]bool{"sources": true, "processors": true, "sinks": true}

// Diff compares the running configuration with a new one.
func Diff(old, new *config.Config) (Change, error) {
	var c Change
	c.Restart = changedKeys("", reflect.ValueOf(*old), reflect.ValueOf(*new))
	var err error
	if c.Sources, err = delta(old.Sources, new.Sources, componentName); err != nil {
		return c, err
	}
	if c.Processors, err = delta(old.Processors, new.Processors, processorName); err != nil {
		return c, err
	}
	c.Sinks, err = delta(old.Sinks, new.Sinks, componentName)
	return c, err
}

func componentName(c config.Component) string { return c.Name }
func processorName(p config.Processor) string { return p.Name }

// changedKeys names the keys (dotted yaml paths) whose values differ between a and b, two
// values of one struct type, descending into nested structs so the name is precise.
func changedKeys(prefix string, a, b reflect.Value) []string {
	var keys []string
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || tag == "" || tag == "-" || (prefix == "" && reloadable[tag]) {
			continue
		}
		x, y := a.Field(i), b.Field(i)
		if reflect.DeepEqual(x.Interface(), y.Interface()) {
			continue
		}
		if x.Kind() == reflect.Pointer && !x.IsNil() && !y.IsNil() {
			x, y = x.Elem(), y.Elem()
		}
		if x.Kind() == reflect.Struct && x.Type().NumField() > 0 && x.Type().Field(0).IsExported() {
			if sub := changedKeys(prefix+tag+".", x, y); len(sub) > 0 {
				keys = append(keys, sub...)
				continue
			}
		}
		keys = append(keys, prefix+tag)
	}
	return keys
}

// delta compares two lists of components by name; a component whose whole mapping (its
// options as written, after ${VAR} expansion) differs is changed.
func delta[T any](old, new []T, name func(T) string) (Delta, error) {
	var d Delta
	before := map[string][]byte{}
	for _, c := range old {
		b, err := fingerprint(c)
		if err != nil {
			return d, err
		}
		before[name(c)] = b
	}
	seen := map[string]bool{}
	for _, c := range new {
		n := name(c)
		seen[n] = true
		b, err := fingerprint(c)
		if err != nil {
			return d, err
		}
		prev, ok := before[n]
		switch {
		case !ok:
			d.Added = append(d.Added, n)
		case !bytes.Equal(prev, b):
			d.Changed = append(d.Changed, n)
		}
	}
	for _, c := range old {
		if n := name(c); !seen[n] {
			d.Removed = append(d.Removed, n)
		}
	}
	slices.Sort(d.Added)
	slices.Sort(d.Removed)
	slices.Sort(d.Changed)
	return d, nil
}

// fingerprint is a component as YAML: its common keys and, for a source or sink, its
// options (which the struct's own marshalling leaves out).
func fingerprint(v any) ([]byte, error) {
	var parts []any
	parts = append(parts, v)
	if c, ok := v.(config.Component); ok {
		parts = append(parts, c.Options)
	}
	b, err := yaml.Marshal(parts)
	if err != nil {
		return nil, fmt.Errorf("compare configurations: %w", err)
	}
	return b, nil
}
