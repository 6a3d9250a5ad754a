package config

import (
	"fmt"
	"slices"
	"sort"
)

// Registry maps the `type:` names of one kind of component (sources, processor steps,
// sinks) to what builds them. Types register from init; afterwards it is only read, so it
// needs no lock.
type Registry[F any] struct {
	kind string // e.g. "sink type": in the errors
	m    map[string]F
}

// NewRegistry returns an empty registry of components of the given kind.
func NewRegistry[F any](kind string) *Registry[F] {
	return &Registry[F]{kind: kind, m: map[string]F{}}
}

// Register makes a type available by name. Called from init only: a name registered twice
// is a programming error, and panics.
func (r *Registry[F]) Register(typ string, f F) {
	if _, dup := r.m[typ]; dup {
		panic(fmt.Sprintf("%s registered twice: %s", r.kind, typ))
	}
	r.m[typ] = f
}

// Lookup returns what builds typ, or an error naming the known types.
func (r *Registry[F]) Lookup(typ string) (F, error) {
	f, ok := r.m[typ]
	if !ok {
		return f, fmt.Errorf("unknown %s %q (known: %v)", r.kind, typ, r.Types())
	}
	return f, nil
}

// Has reports whether typ is registered.
func (r *Registry[F]) Has(typ string) bool { return slices.Contains(r.Types(), typ) }

// Types lists the registered types, sorted.
func (r *Registry[F]) Types() []string {
	out := make([]string, 0, len(r.m))
	for t := range r.m {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
