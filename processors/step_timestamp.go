package processors

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // timezone: must work in a FROM-scratch image without /usr/share/zoneinfo

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

func init() { Register("timestamp", newTimestampStep) }

// timestampStep is `timestamp: {field: ts, layout: RFC3339, timezone: UTC}`: sets
// Entry.Time from a field. layout is RFC3339 (fractional seconds accepted), unix, unix_ms,
// unix_us, unix_ns (a number or a numeric string; unix may have a fraction), or a Go layout
// (`2006-01-02 15:04:05`), read in timezone when it has no zone of its own.
type timestampStep struct {
	src    source
	layout string
	unit   time.Duration // for unix layouts; 0 otherwise
	loc    *time.Location
}

var unixUnits = map[string]time.Duration{
	"unix": time.Second, "unix_ms": time.Millisecond, "unix_us": time.Microsecond, "unix_ns": time.Nanosecond,
}

func newTimestampStep(opts config.Options) (Step, error) {
	var o struct {
		Field    string `yaml:"field"`
		Layout   string `yaml:"layout"`
		Timezone string `yaml:"timezone"`
	}
	if err := decodeOptions(opts, &o); err != nil {
		return nil, err
	}
	if o.Field == "" {
		o.Field = "ts"
	}
	s := &timestampStep{layout: o.Layout}
	var err error
	if s.src, err = parseSource(o.Field); err != nil {
		return nil, fmt.Errorf("field: %w", err)
	}
	switch o.Layout {
	case "", "RFC3339", "rfc3339", "RFC3339Nano":
		s.layout = time.RFC3339Nano
	default:
		if u, ok := unixUnits[o.Layout]; ok {
			s.unit = u
		} else if !strings.ContainsAny(o.Layout, "0123456789") {
			return nil, fmt.Errorf("layout %q: want RFC3339, unix, unix_ms, unix_us, unix_ns or a Go layout like 2006-01-02 15:04:05", o.Layout)
		}
	}
	if o.Timezone == "" {
		o.Timezone = "UTC"
	}
	if s.loc, err = time.LoadLocation(o.Timezone); err != nil {
		return nil, fmt.Errorf("timezone: %w", err)
	}
	return s, nil
}

func (s *timestampStep) fieldsRead() ([]string, bool) {
	if s.src.msg {
		return nil, false
	}
	return s.src.path[:1], false
}

func (s *timestampStep) Apply(e *event.Entry) (bool, error) { return s.applyLookups(e, nil) }

func (s *timestampStep) applyLookups(e *event.Entry, lk *lookups) (bool, error) {
	var v any
	if s.src.msg {
		v = e.Message
	} else {
		var ok bool
		if v, ok = readField(e, lk, s.src.path); !ok {
			return true, setError(e, fmt.Errorf("timestamp: field %q missing", strings.Join(s.src.path, ".")))
		}
	}
	t, err := s.parse(v)
	if err != nil {
		return true, setError(e, fmt.Errorf("timestamp: %w", err))
	}
	e.Time = t
	return true, nil
}

func (s *timestampStep) parse(v any) (time.Time, error) {
	if s.unit != 0 {
		return parseUnix(v, s.unit)
	}
	str, ok := v.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("want a string for layout %q, got %T", s.layout, v)
	}
	return time.ParseInLocation(s.layout, str, s.loc)
}

// parseUnix reads an epoch number in unit. Integers are exact; a fraction goes through
// float64, which is exact to the microsecond for today's dates in seconds.
func parseUnix(v any, unit time.Duration) (time.Time, error) {
	var s string
	switch t := v.(type) {
	case int64:
		return unixTime(t, 0, unit)
	case int:
		return unixTime(int64(t), 0, unit)
	case uint64:
		if t > math.MaxInt64 {
			return time.Time{}, fmt.Errorf("%d out of range", t)
		}
		return unixTime(int64(t), 0, unit)
	case float64:
		return unixFloat(t, unit)
	case json.Number:
		s = string(t)
	case string:
		s = strings.TrimSpace(t)
	default:
		return time.Time{}, fmt.Errorf("want a number, got %T", v)
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return unixTime(i, 0, unit)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a number", s)
	}
	return unixFloat(f, unit)
}

func unixFloat(f float64, unit time.Duration) (time.Time, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return time.Time{}, errors.New("not a finite number")
	}
	whole, frac := math.Modf(f)
	if whole > math.MaxInt64/2 || whole < math.MinInt64/2 {
		return time.Time{}, fmt.Errorf("%g out of range", f)
	}
	return unixTime(int64(whole), int64(math.Round(frac*float64(unit))), unit)
}

// Years beyond ±10000 are surely a wrong unit (milliseconds read as seconds).
const maxUnixSec = 253402300799 // 9999-12-31T23:59:59Z

func unixTime(n, extraNS int64, unit time.Duration) (time.Time, error) {
	perSec := int64(time.Second / unit)
	sec, rem := n/perSec, n%perSec
	if sec > maxUnixSec || sec < -maxUnixSec {
		return time.Time{}, fmt.Errorf("%d is out of range for %s (wrong unit?)", n, unitName(unit))
	}
	return time.Unix(sec, rem*int64(unit)+extraNS).UTC(), nil
}

func unitName(u time.Duration) string {
	for k, v := range unixUnits {
		if v == u {
			return k
		}
	}
	return u.String()
}
