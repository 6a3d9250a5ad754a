// Package soak holds the measuring parts of the soak driver (internal/cmd/soak): parsing the
// admin /metrics text, least-squares slopes, and goroutine-profile differences. They are plain
// functions so that they can be tested and fuzzed without a running logcap.
package soak

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Sample is one scrape of logcap's /metrics.
type Sample struct {
	At         time.Duration // since the soak began
	Goroutines float64
	FDs        float64
	RSS        float64 // bytes
	Lag        float64 // sum of logcap_pipeline_consumer_pending over consumers
}

// ParseMetrics reads Prometheus text exposition and returns, for each wanted metric name, the
// sum of its samples over all label sets. A wanted name that is absent is missing from the map.
// Comments, histograms' _bucket lines and unparsable lines are skipped: the soak reads what it
// knows and ignores the rest.
func ParseMetrics(text []byte, wanted ...string) map[string]float64 {
	want := make(map[string]bool, len(wanted))
	for _, w := range wanted {
		want[w] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ \t"); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if !want[name] {
			continue
		}
		if strings.HasPrefix(rest, "{") {
			// Label values are quoted and may hold '}' escaped or not: find the closing brace
			// outside quotes.
			end := labelsEnd(rest)
			if end < 0 {
				continue
			}
			rest = rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil || math.IsNaN(v) {
			continue
		}
		out[name] += v
	}
	return out
}

// labelsEnd returns the index of the '}' closing the label set that s starts with, or -1.
func labelsEnd(s string) int {
	inQuote, esc := false, false
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case esc:
			esc = false
		case c == '\\' && inQuote:
			esc = true
		case c == '"':
			inQuote = !inQuote
		case c == '}' && !inQuote:
			return i
		}
	}
	return -1
}

// Slope is the least-squares slope of ys over xs (units of y per unit of x); 0 with fewer
// than two distinct xs.
func Slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if len(xs) < 2 || len(xs) != len(ys) {
		return 0
	}
	var sx, sy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
	}
	mx, my := sx/n, sy/n
	var num, den float64
	for i := range xs {
		num += (xs[i] - mx) * (ys[i] - my)
		den += (xs[i] - mx) * (xs[i] - mx)
	}
	if den == 0 {
		return 0
	}
	return num / den
}

// SlopeErr is the standard error of Slope(xs, ys): how far the slope may be off by noise
// alone. 0 with fewer than three points.
func SlopeErr(xs, ys []float64) float64 {
	n := len(xs)
	if n < 3 || n != len(ys) {
		return 0
	}
	b := Slope(xs, ys)
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx, my = mx/float64(n), my/float64(n)
	a := my - b*mx
	var rss, sxx float64
	for i := range xs {
		r := ys[i] - (a + b*xs[i])
		rss += r * r
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	if sxx == 0 {
		return 0
	}
	return math.Sqrt(rss / float64(n-2) / sxx)
}

// GoroutineGroups parses a /debug/pprof/goroutine?debug=1 profile and returns the number of
// goroutines per top function (the first frame of each stack; "unknown" when a record has no
// symbolized frame).
func GoroutineGroups(profile []byte) map[string]int {
	out := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(profile))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	count, top := 0, ""
	flush := func() {
		if count > 0 {
			if top == "" {
				top = "unknown"
			}
			out[top] += count
		}
		count, top = 0, ""
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, " @ ") && !strings.HasPrefix(line, "#"):
			// "<count> @ 0x… 0x…" begins a record.
			flush()
			n, err := strconv.Atoi(strings.TrimSpace(line[:strings.Index(line, " @ ")]))
			if err == nil && n > 0 {
				count = n
			}
		case strings.HasPrefix(line, "#\t") && count > 0 && top == "":
			// "#\t0x4a2b3c\tpkg.fn+0x12\t/path/file.go:123"
			f := strings.Split(line, "\t")
			if len(f) >= 3 {
				fn := f[2]
				if i := strings.LastIndex(fn, "+0x"); i > 0 {
					fn = fn[:i]
				}
				top = fn
			}
		case line == "":
			flush()
		}
	}
	flush()
	return out
}

// CountWithFrame is the number of goroutines of a /debug/pprof/goroutine?debug=1 profile
// whose stack holds a frame of function fn (e.g. "net/http.(*persistConn).readLoop").
func CountWithFrame(profile []byte, fn string) int {
	total, count, found := 0, 0, false
	sc := bufio.NewScanner(bytes.NewReader(profile))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, " @ ") && !strings.HasPrefix(line, "#"):
			count, found = 0, false
			if n, err := strconv.Atoi(strings.TrimSpace(line[:strings.Index(line, " @ ")])); err == nil {
				count = n
			}
		case strings.HasPrefix(line, "#\t") && !found && strings.Contains(line, "\t"+fn+"+0x"):
			found = true
			total += count
		}
	}
	return total
}

// GroupDiff is the change of one top function's goroutine count between two profiles.
type GroupDiff struct {
	Func              string
	Start, End, Delta int
}

// DiffGroups lists the top functions whose count changed, largest growth first.
func DiffGroups(start, end map[string]int) []GroupDiff {
	var out []GroupDiff
	seen := map[string]bool{}
	for _, m := range []map[string]int{start, end} {
		for fn := range m {
			if seen[fn] {
				continue
			}
			seen[fn] = true
			if d := end[fn] - start[fn]; d != 0 {
				out = append(out, GroupDiff{fn, start[fn], end[fn], d})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Delta != out[j].Delta {
			return out[i].Delta > out[j].Delta
		}
		return out[i].Func < out[j].Func
	})
	return out
}

// FormatDiff renders a goroutine difference as an aligned table.
func FormatDiff(d []GroupDiff) string {
	if len(d) == 0 {
		return "  (no top function changed its goroutine count)\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  %6s %6s %6s  %s\n", "start", "end", "delta", "top function")
	for _, g := range d {
		fmt.Fprintf(&b, "  %6d %6d %+6d  %s\n", g.Start, g.End, g.Delta, g.Func)
	}
	return b.String()
}
