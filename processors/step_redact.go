package processors

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

func init() { Register("redact", newRedactStep) }

// redactStep is `redact: {fields: [password], patterns: [email, credit_card, bearer_token,
// 'custom regex'], replacement: "[REDACTED]"}`. A field whose key equals one of fields
// (case-insensitively, at any depth, inside lists too) has its whole value replaced; the
// patterns are masked in the message and in every string field. The built-in patterns are
// byte scans, not regexes: a line with no '@', no long digit run and no "bearer" or
// "authorization" costs a few passes over its bytes and no allocation.
type redactStep struct {
	fields  []string
	maskers []func(s, repl string) string
	repl    string
	// lowerFields are the named fields, lower-cased, for maskKV: a JSON or logfmt line
	// keeps its raw text in message after parsing, and a secret must not survive there
	// (`"password":"x"`, `password=x`, `password: x`).
	lowerFields []string
	// regexes: some pattern is a user's regex, which may match a field's value and not the
	// message it was parsed from (`^\d+$`).
	regexes bool
	// asciiNames: every named field is ASCII, so indexFold finds in a message every key
	// that named() matches, save those spelt with the two runes that fold to ASCII letters.
	asciiNames bool
}

func newRedactStep(opts config.Options) (Step, error) {
	var o struct {
		Fields      []string `yaml:"fields"`
		Patterns    []string `yaml:"patterns"`
		Replacement *string  `yaml:"replacement"`
	}
	if err := decodeOptions(opts, &o); err != nil {
		return nil, err
	}
	if len(o.Fields) == 0 && len(o.Patterns) == 0 {
		return nil, errors.New("nothing to redact: give fields, patterns or both")
	}
	s := &redactStep{repl: "[REDACTED]"}
	if o.Replacement != nil {
		s.repl = *o.Replacement
	}
	for _, f := range o.Fields {
		if f == "" {
			return nil, errors.New("fields: empty name")
		}
		s.fields = append(s.fields, f)
	}
	s.asciiNames = true
	for _, f := range s.fields {
		s.lowerFields = append(s.lowerFields, strings.ToLower(f))
		s.asciiNames = s.asciiNames && isASCII(f)
	}
	for i, p := range o.Patterns {
		switch p {
		case "email":
			s.maskers = append(s.maskers, maskEmails)
		case "credit_card":
			s.maskers = append(s.maskers, maskCards)
		case "bearer_token":
			s.maskers = append(s.maskers, maskAuth)
		case "":
			return nil, fmt.Errorf("patterns[%d]: empty", i)
		default:
			re, err := regexp.Compile(p)
			if err != nil {
				return nil, fmt.Errorf("patterns[%d]: %w", i, err)
			}
			s.regexes = true
			s.maskers = append(s.maskers, func(s, repl string) string {
				if !re.MatchString(s) {
					return s
				}
				return re.ReplaceAllLiteralString(s, repl)
			})
		}
	}
	return s, nil
}

func (*redactStep) fieldsRead() ([]string, bool) { return nil, false }

func (s *redactStep) applyLookups(e *event.Entry, _ *lookups) (bool, error) { return s.Apply(e) }

func (s *redactStep) Apply(e *event.Entry) (bool, error) {
	msg := e.Message
	masked := s.mask(msg)
	for _, f := range s.lowerFields {
		masked = maskKV(masked, f, s.repl)
	}
	if lazy(e) {
		if masked == msg && s.nothingInFields(msg) {
			return true, nil
		}
		materialize(e)
	}
	e.Message = masked
	// An entry with nothing to redact keeps event.Entry.FieldsFrom: its fields are still
	// its message parsed (the maskers return their input as it was when they mask nothing).
	if s.walkMap(e.Fields) || e.Message != msg {
		e.FieldsFrom = ""
	}
	return true, nil
}

// nothingInFields says that the fields parsed from msg, a JSON object the maskers left as
// it was, have nothing to redact either, so a lazy entry need not be parsed. Without a
// backslash in msg every key and string value is its text between quotes, verbatim; a
// named field's key would be found in msg by indexFold (named() folds Unicode: ASCII
// names, and no K for Kelvin or long s in msg); and a built-in pattern matches a value
// exactly where it matches that value in msg, since a quote ends every one of them as the
// ends of the value do (a user's regex may not: ^ and $). FuzzLazyFields checks it.
func (s *redactStep) nothingInFields(msg string) bool {
	if s.regexes || !s.asciiNames || strings.IndexByte(msg, '\\') >= 0 ||
		strings.Contains(msg, "\u212a") || strings.Contains(msg, "\u017f") {
		return false
	}
	for _, f := range s.lowerFields {
		if indexFold(msg, f) >= 0 {
			return false
		}
	}
	return true
}

func (s *redactStep) mask(str string) string {
	for _, m := range s.maskers {
		str = m(str, s.repl)
	}
	return str
}

func (s *redactStep) named(k string) bool {
	for _, f := range s.fields {
		if strings.EqualFold(k, f) {
			return true
		}
	}
	return false
}

// walkMap redacts m in place and reports whether it changed anything.
func (s *redactStep) walkMap(m map[string]any) bool {
	changed := false
	for k, v := range m {
		if s.named(k) {
			m[k] = s.repl
			changed = true
			continue
		}
		nv, replace, inPlace := s.walk(v)
		if replace {
			m[k] = nv
		}
		changed = changed || replace || inPlace
	}
	return changed
}

// walk redacts v: replace says v is to be replaced by nv (a masked string), inPlace that a
// map or list inside it changed.
func (s *redactStep) walk(v any) (nv any, replace, inPlace bool) {
	switch t := v.(type) {
	case string:
		if len(s.maskers) == 0 {
			return nil, false, false
		}
		if m := s.mask(t); m != t {
			return m, true, false
		}
	case map[string]any:
		return nil, false, s.walkMap(t)
	case []any:
		for i, x := range t {
			nv, replace, changed := s.walk(x)
			if replace {
				t[i] = nv
			}
			inPlace = inPlace || replace || changed
		}
	}
	return nil, false, inPlace
}
