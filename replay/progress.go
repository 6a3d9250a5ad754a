package replay

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Summary prints the final summary line only: for a stderr that is not a terminal.
type Summary struct{ W io.Writer }

func (Summary) Update(Stats, int64) {}

func (p Summary) Done(s Stats) { fmt.Fprintln(p.W, s.Summary()) }

// Bar draws a progress bar over the messages (chunks) to read, with entries, megabytes and
// throughput in its description, then the summary line.
type Bar struct {
	w     io.Writer
	bar   *progressbar.ProgressBar
	max   int64
	began time.Time
}

// NewBar draws on w, which should be a terminal.
func NewBar(w io.Writer) *Bar { return &Bar{w: w, began: time.Now()} }

func (p *Bar) Update(s Stats, total int64) {
	if p.bar == nil {
		p.max = total
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetItsString("chunks"),
			progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(24),
			progressbar.OptionClearOnFinish(),
			// The spinner of an unknown length (--follow) redraws from a goroutine of its
			// own that only ends with Finish: redraw on updates instead.
			progressbar.OptionSetSpinnerChangeInterval(0),
		)
	}
	if total >= 0 && total != p.max {
		p.max = total
		p.bar.ChangeMax64(total)
	}
	secs := max(time.Since(p.began).Seconds(), 1e-3)
	if s.Input != "" {
		p.bar.Describe(fmt.Sprintf("%s from %s: %d messages %.1f MB", s.Stream, s.Input, s.Derived, float64(s.Bytes)/1e6))
		_ = p.bar.Set64(s.Messages)
		return
	}
	p.bar.Describe(fmt.Sprintf("%s %d entries %.1f MB %.1f MB/s", s.Stream, s.Entries, float64(s.Bytes)/1e6, float64(s.Bytes)/1e6/secs))
	_ = p.bar.Set64(s.Messages)
}

func (p *Bar) Done(s Stats) {
	if p.bar != nil {
		_ = p.bar.Finish()
		_ = p.bar.Clear()
	}
	fmt.Fprintln(p.w, s.Summary())
}
