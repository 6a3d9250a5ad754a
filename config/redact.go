package config

import (
	"encoding"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// Mask replaces secrets in Redacted output.
const Mask = "****"

// Redacted returns the effective configuration (defaults applied) as YAML, with secrets
// replaced by "****": nats.password and nats.token, and in sources, sinks and steps every key
// whose name contains password, passwd, token, secret, api_key (or api-key), apikey,
// authorization or credential, and `key` under a `tls` or `auth` mapping. Keys at their zero
// value are left out.
func (c *Config) Redacted() ([]byte, error) {
	cp := *c
	if cp.NATS.Password != "" {
		cp.NATS.Password = Mask
	}
	if cp.NATS.Token != "" {
		cp.NATS.Token = Mask
	}
	r := &redactor{budget: 1_000_000}
	v := r.value(reflect.ValueOf(cp))
	if r.err != nil {
		return nil, r.err
	}
	out, err := yaml.MarshalWithOptions(v, yaml.Indent(2), yaml.IndentSequence(true))
	if err != nil {
		return nil, fmt.Errorf("config %s: marshal: %w", c.File, err)
	}
	return out, nil
}

type redactor struct {
	budget int // nodes left to print: aliases can make a small file expand exponentially
	err    error
}

var textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()

func (r *redactor) value(v reflect.Value) any {
	if v.Type() == optionsType {
		o := v.Interface().(Options)
		return r.node(o.node, "")
	}
	if v.Type() == componentType {
		return r.component(v.Interface().(Component))
	}
	if v.Type().Implements(textMarshaler) && v.Kind() != reflect.Pointer {
		b, _ := v.Interface().(encoding.TextMarshaler).MarshalText()
		return string(b)
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return r.value(v.Elem())
	case reflect.Struct:
		return r.fields(v, nil)
	case reflect.Slice:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = r.value(v.Index(i))
		}
		return out
	case reflect.String:
		return MaskURL(v.String())
	}
	return v.Interface()
}

// fields lists a struct's non-zero fields in declaration order, skipping the keys in skip.
func (r *redactor) fields(v reflect.Value, skip map[string]bool) yaml.MapSlice {
	keys, idx := fields(v.Type())
	var out yaml.MapSlice
	for _, k := range keys {
		f := v.Field(idx[k])
		if f.IsZero() || skip[k] {
			continue
		}
		out = append(out, yaml.MapItem{Key: k, Value: r.value(f)})
	}
	return out
}

// component prints a source or sink once: its whole mapping as written, with the keys config
// decoded itself replaced by their effective values.
func (r *redactor) component(c Component) yaml.MapSlice {
	known := map[string]any{}
	var order []string
	for _, it := range r.fields(reflect.ValueOf(c), nil) {
		k := it.Key.(string)
		known[k] = it.Value
		order = append(order, k)
	}
	opts, _ := r.node(c.Options.node, "").(yaml.MapSlice)
	out := make(yaml.MapSlice, 0, len(opts)+len(order))
	for _, it := range opts {
		k, _ := it.Key.(string)
		if v, ok := known[k]; ok {
			it.Value = v
			delete(known, k)
		}
		out = append(out, it)
	}
	for _, k := range order {
		if v, ok := known[k]; ok {
			out = append(out, yaml.MapItem{Key: k, Value: v})
		}
	}
	return out
}

func (r *redactor) node(n ast.Node, parent string) any {
	if r.err != nil || n == nil {
		return nil
	}
	if r.budget--; r.budget < 0 {
		r.err = fmt.Errorf("config: too large to print (aliases expand to over a million nodes)")
		return nil
	}
	switch n := n.(type) {
	case *ast.MappingNode:
		out := make(yaml.MapSlice, 0, len(n.Values))
		for _, mv := range n.Values {
			k := keyOf(mv)
			var v any
			if secretKey(k, parent) && !emptyValue(mv.Value) && !isCollection(mv.Value) {
				v = Mask
			} else {
				v = r.node(mv.Value, k)
			}
			out = append(out, yaml.MapItem{Key: k, Value: v})
		}
		return out
	case *ast.SequenceNode:
		out := make([]any, len(n.Values))
		for i, e := range n.Values {
			out[i] = r.node(e, parent)
		}
		return out
	case *ast.StringNode:
		return MaskURL(n.Value)
	case *ast.LiteralNode:
		return n.Value.Value
	case *ast.IntegerNode:
		return n.Value
	case *ast.FloatNode:
		return n.Value
	case *ast.BoolNode:
		return n.Value
	case *ast.NullNode:
		return nil
	}
	return n.GetToken().Value
}

var (
	// secretWords anywhere in a key make it a secret; secretParts only as a whole part
	// (X-Auth, auth.bearer, Cookie, session_id — but not author or sessions_max).
	secretWords = []string{"password", "passwd", "token", "secret", "api_key", "apikey", "authorization", "credential", "signature"}
	secretParts = []string{"auth", "bearer", "cookie", "session", "sig", "pass", "pw", "pwd"}
)

func secretKey(key, parent string) bool {
	k := strings.ReplaceAll(strings.ToLower(key), "-", "_") // X-Api-Key is api_key too
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	for _, part := range strings.Split(k, "_") {
		if slices.Contains(secretParts, part) {
			return true
		}
	}
	p := strings.ToLower(parent)
	return k == "key" && (p == "tls" || p == "auth")
}

// MaskURL masks the secrets of s if it is a URL: the password of its user info and the
// values of query parameters named like secrets (?api_key=, ?token=, ?sig=). Anything else
// is returned as it is. Errors and logs that name a destination use it too.
func MaskURL(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return s
	}
	changed := false
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), Mask)
		changed = true
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k, vs := range q {
			if secretKey(k, "") {
				for i := range vs {
					vs[i] = Mask
				}
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	if !changed {
		return s
	}
	// url.String escapes the mask in the user info; keep it readable.
	return strings.Replace(u.String(), url.QueryEscape(Mask), Mask, -1)
}

// isCollection is a mapping or a list: a key named like a secret with such a value (auth:
// { user, bearer }) is masked inside, key by key.
func isCollection(n ast.Node) bool {
	switch n.(type) {
	case *ast.MappingNode, *ast.SequenceNode:
		return true
	}
	return false
}

// emptyValue is a missing or empty value: masking it would suggest a secret is set.
func emptyValue(n ast.Node) bool {
	if n == nil || n.Type() == ast.NullType {
		return true
	}
	s, ok := n.(*ast.StringNode)
	return ok && s.Value == ""
}
