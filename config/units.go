package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written the human way in YAML ("10s", "2m", "72h").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String prints d as Go does, without zero trailing units: 72h, 2m, 1h30m.
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// MarshalText writes d as Go prints durations.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText accepts Go duration syntax, plus "0" alone.
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. 500ms, 10s, 2m, 72h)", s)
	}
	if v < 0 {
		return fmt.Errorf("invalid duration %q: negative", s)
	}
	*d = Duration(v)
	return nil
}

// Size is a byte count written the human way in YAML ("512", "64KiB", "10GiB", "1MB").
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	// Longest suffixes first so "KiB" is not read as "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// String prints s in the largest binary unit that divides it exactly.
func (s Size) String() string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s != 0 && int64(s)%u.mult == 0 {
			return strconv.FormatInt(int64(s)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// MarshalText writes s in its shortest exact form.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText accepts a plain byte count or a number with a unit (KiB, MiB, GiB, TiB, KB, MB, GB, TB).
func (s *Size) UnmarshalText(b []byte) error {
	str := strings.TrimSpace(string(b))
	num, mult := str, int64(1)
	for _, u := range sizeUnits {
		// Case-insensitive: "64kib" and "10gb" are what people type.
		if n := len(str) - len(u.suffix); n >= 0 && strings.EqualFold(str[n:], u.suffix) {
			num, mult = strings.TrimSpace(str[:n]), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	// ParseFloat accepts "NaN", "Inf" and hex floats, none of which is a size.
	if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) || strings.ContainsAny(num, "xXpPnN") {
		return fmt.Errorf("invalid size %q (want e.g. 1048576, 64KiB, 10GiB)", str)
	}
	if v*float64(mult) >= math.MaxInt64 {
		return fmt.Errorf("invalid size %q: too large", str)
	}
	*s = Size(v * float64(mult))
	return nil
}
