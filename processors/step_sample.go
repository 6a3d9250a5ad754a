package processors

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

func init() { Register("sample", newSampleStep) }

// sampleStep is `sample: {rate: 10, key: 'source'}`: keeps about 1 entry in rate. The
// decision is FNV-1a(key) mod rate == 0, with key an expression (default: the message), so
// the same entry always gets the same decision: rebuilding a derived stream from LOGS
// reproduces it exactly, on any node, whatever came before. Entries with equal keys share
// their fate: a key of `source` keeps or drops whole sources.
type sampleStep struct {
	rate uint64
	key  *program // nil: the message
}

func newSampleStep(opts config.Options) (Step, error) {
	var o struct {
		Rate int64  `yaml:"rate"`
		Key  string `yaml:"key"`
	}
	if err := decodeOptions(opts, &o); err != nil {
		return nil, err
	}
	if o.Rate < 1 {
		return nil, errors.New("rate: required, 1 or more (keep 1 entry in rate)")
	}
	s := &sampleStep{rate: uint64(o.Rate)}
	if o.Key != "" && o.Key != "message" {
		p, err := compileExpr(o.Key)
		if err != nil {
			return nil, fmt.Errorf("key: %w", err)
		}
		s.key = p
	}
	return s, nil
}

func (s *sampleStep) fieldsRead() ([]string, bool) {
	if s.key == nil {
		return nil, false
	}
	return s.key.fields, s.key.allFields
}

func (s *sampleStep) Apply(e *event.Entry) (bool, error) { return s.applyLookups(e, nil) }

func (s *sampleStep) applyLookups(e *event.Entry, lk *lookups) (bool, error) {
	if s.rate == 1 {
		return true, nil
	}
	key := e.Message
	if s.key != nil {
		v, err := s.key.run(e, lk)
		if err != nil {
			// Keyless entries are sampled on the message, still deterministically.
			return fnvKeep(e.Message, s.rate), tolerate(err)
		}
		key = keyString(v)
	}
	return fnvKeep(key, s.rate), nil
}

func fnvKeep(key string, rate uint64) bool {
	return fnv1a(key)%rate == 0
}

// fnv1a is FNV-1a 64 (hash/fnv's New64a) without the allocations of a hash.Hash.
func fnv1a(s string) uint64 {
	const offset64, prime64 = 14695981039346656037, 1099511628211
	h := uint64(offset64)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime64
	}
	return h
}

func keyString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case nil:
		return ""
	case int:
		return strconv.Itoa(t)
	case int64:
		return strconv.FormatInt(t, 10)
	}
	return fmt.Sprint(v)
}
