package soak

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Limits are the soak's pass criteria.
type Limits struct {
	GoroutineSlope float64 // per minute
	FDSlope        float64 // per minute
	FDGrowth       float64 // end - start
	RSSGrowth      float64 // end/start - 1
	// RSSWindow is the shortest measured window in which RSS is judged. The Go heap and
	// nats-server's caches (embedded mode) still grow for the first minutes: measured here,
	// 29 → 66 MiB in the first minute, then flat at 70–90 MiB (+0.5 MiB/min over 7.5 min).
	// A shorter run reports RSS without judging it.
	RSSWindow time.Duration
}

// DefaultLimits are the figures of issue 8: flat goroutines and fds, RSS within 10%.
var DefaultLimits = Limits{GoroutineSlope: 0.2, FDSlope: 0.1, FDGrowth: 5, RSSGrowth: 0.10, RSSWindow: 5 * time.Minute}

// Row is one line of the final table.
type Row struct {
	Metric     string
	Start, End float64 // medians of the first and last three samples after warm-up
	Slope      float64 // per minute, least squares over the samples after warm-up
	Intercept  float64 // of the least-squares line, at t = 0
	SlopeErr   float64 // standard error of Slope
	Limit      string
	Failed     bool
}

// Verdict is the outcome of a soak's measurements.
type Verdict struct {
	Samples  int // after warm-up
	Rows     []Row
	Failures []string
}

// Judge applies the limits to the samples taken at or after warmup.
func Judge(samples []Sample, warmup time.Duration, lim Limits) Verdict {
	var post []Sample
	for _, s := range samples {
		if s.At >= warmup {
			post = append(post, s)
		}
	}
	v := Verdict{Samples: len(post)}
	if len(post) < 3 {
		v.Failures = append(v.Failures, fmt.Sprintf("only %d samples after the %v warm-up: run longer", len(post), warmup))
		return v
	}
	series := func(f func(Sample) float64) Row {
		xs, ys := make([]float64, len(post)), make([]float64, len(post))
		for i, s := range post {
			xs[i], ys[i] = s.At.Minutes(), f(s)
		}
		slope := Slope(xs, ys)
		return Row{Start: median(ys[:3]), End: median(ys[len(ys)-3:]), Slope: slope, Intercept: mean(ys) - slope*mean(xs), SlopeErr: SlopeErr(xs, ys)}
	}

	g := series(func(s Sample) float64 { return s.Goroutines })
	g.Metric, g.Limit = "goroutines", fmt.Sprintf("slope <= %.2f/min", lim.GoroutineSlope)
	if g.grows(lim.GoroutineSlope) {
		g.Failed = true
		v.Failures = append(v.Failures, fmt.Sprintf("goroutines grow %.2f ± %.2f/min (limit %.2f/min)", g.Slope, g.SlopeErr, lim.GoroutineSlope))
	}

	f := series(func(s Sample) float64 { return s.FDs })
	f.Metric, f.Limit = "open fds", fmt.Sprintf("slope <= %.2f/min, end <= start+%.0f", lim.FDSlope, lim.FDGrowth)
	if f.grows(lim.FDSlope) {
		f.Failed = true
		v.Failures = append(v.Failures, fmt.Sprintf("open fds grow %.2f ± %.2f/min (limit %.2f/min)", f.Slope, f.SlopeErr, lim.FDSlope))
	}
	if f.End > f.Start+lim.FDGrowth {
		f.Failed = true
		v.Failures = append(v.Failures, fmt.Sprintf("open fds went from %.0f to %.0f (limit +%.0f)", f.Start, f.End, lim.FDGrowth))
	}

	// RSS moves by several percent between GCs: judge the fitted line, not two samples.
	r := series(func(s Sample) float64 { return s.RSS / (1 << 20) })
	span := (post[len(post)-1].At - post[0].At).Minutes()
	r.Start = r.Intercept + r.Slope*post[0].At.Minutes()
	r.End = r.Start + r.Slope*span
	r.Metric, r.Limit = "RSS MiB (fit)", fmt.Sprintf("end <= start × %.2f", 1+lim.RSSGrowth)
	if window := post[len(post)-1].At - post[0].At; window < lim.RSSWindow {
		r.Limit = fmt.Sprintf("(reported: window %v < %v)", window.Round(time.Second), lim.RSSWindow)
	} else if r.End > r.Start*(1+lim.RSSGrowth) {
		r.Failed = true
		v.Failures = append(v.Failures, fmt.Sprintf("RSS grew from %.1f MiB to %.1f MiB (limit +%.0f%%)", r.Start, r.End, 100*lim.RSSGrowth))
	}

	l := series(func(s Sample) float64 { return s.Lag })
	l.Metric, l.Limit = "consumer lag", "(reported)"

	v.Rows = []Row{g, f, r, l}
	return v
}

// grows says the slope exceeds limit by more than noise: above the limit and more than three
// standard errors above zero. A 90-second run cannot resolve 0.2/min against a count that
// moves by ±2 as containers come and go (its standard error is ~0.5/min); a real leak of
// one goroutine per container (60/min) or per file rotation (30/min) stands far out of it.
// Over 10 minutes the standard error falls to ~0.05/min and the limit governs. Three
// standard errors: CI runs the soak on every change, and must not fail on noise.
func (r Row) grows(limit float64) bool {
	return r.Slope > limit && r.Slope > 3*r.SlopeErr
}

// Table renders the rows.
func (v Verdict) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-13s %10s %10s %18s  %-36s %s\n", "metric", "start", "end", "slope/min ± s.e.", "limit", "result")
	for _, r := range v.Rows {
		res := "ok"
		if r.Failed {
			res = "FAIL"
		}
		if strings.HasPrefix(r.Limit, "(reported") {
			res = "-"
		}
		fmt.Fprintf(&b, "%-13s %10.1f %10.1f %+10.3f ± %5.3f  %-36s %s\n", r.Metric, r.Start, r.End, r.Slope, r.SlopeErr, r.Limit, res)
	}
	return b.String()
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
