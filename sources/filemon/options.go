// Package filemon is the file monitor's core. It starts no goroutine: the monitor offers
// blocking functions (Tasks: Discover, Resolve, Read) that modules/filemon runs through the
// lifecycle group. Its parts, one file each:
//
//   - discover.go, paths.go: the globs, excludes, inotify watches and rescans; a file is
//     held (opened) the moment it is found.
//   - hold.go: held files waiting to be placed, what is lost and reported.
//   - positions.go: the resume position of a subject (its last message in LOGS) and of an
//     identity (the positions KV, its format in streams), the only requests that wait for
//     NATS.
//   - place.go: where a held file starts (its subject, its offset), then on the subject.
//   - read.go: the scheduler: readers take subjects with work and publish one chunk each.
//   - identity.go, content.go, gzip.go, monitor_gzip.go: file identity, the content index
//     and gzip files; tailer.go, lines.go: one file's chunks and entries; options.go.
//
// Ownership: every field of the monitor and of a file is guarded by the monitor's mutex,
// except a placed file's tailer, used only by the reader that holds its subject (busy).
//
// Tests: beside each part (package filemon), and the monitor end to end against an embedded
// NATS, real files and logrotate (package filemon_test, harness_test.go).
package filemon

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/sources"
)

// Options are the keys of a `type: file` source. Key names are a contract with users.
type Options struct {
	Paths   []string `yaml:"paths"`
	Exclude []string `yaml:"exclude"`
	// StartAt applies to files present at the source's very first start: "end" (default)
	// or "beginning". Files that appear later are always read from the beginning.
	StartAt           string          `yaml:"start_at"`
	PollInterval      config.Duration `yaml:"poll_interval"`
	Multiline         *MultilineOpts  `yaml:"multiline"`
	MaxLineBytes      config.Size     `yaml:"max_line_bytes"`
	MaxChunkBytes     config.Size     `yaml:"max_chunk_bytes"`
	PartialFlush      config.Duration `yaml:"partial_flush"`
	CloseRemovedAfter config.Duration `yaml:"close_removed_after"`
	MaxOpenFiles      int             `yaml:"max_open_files"`
	// MaxFiles bounds the files one source tracks (held, read, or finished and remembered):
	// the memory of a glob that matches a whole filesystem. Beyond it, matched files are not
	// read; that is counted, logged and reported by /readyz.
	MaxFiles int `yaml:"max_files"`
	Readers  int `yaml:"readers"`
	// IncludeCompressed reads gzip files (named *.gz and starting with the gzip magic) that
	// the globs match, decompressed; other compressed formats stay ignored.
	IncludeCompressed bool `yaml:"include_compressed"`
}

// MultilineOpts joins lines into entries: with Start, a line matching it begins an entry
// and other lines continue it; with Continue, a line matching it continues the previous
// entry. MaxLines and Timeout bound an entry.
type MultilineOpts struct {
	Start    string          `yaml:"start"`
	Continue string          `yaml:"continue"`
	MaxLines int             `yaml:"max_lines"`
	Timeout  config.Duration `yaml:"timeout"`
}

// Defaults.
const (
	DefaultPollInterval      = time.Second
	DefaultMaxLineBytes      = 1 << 20
	DefaultMaxChunkBytes     = 1 << 20
	DefaultPartialFlush      = 5 * time.Second
	DefaultCloseRemovedAfter = 10 * time.Second
	DefaultMaxOpenFiles      = 1024
	DefaultMaxFiles          = 10000
	DefaultReaders           = 4
	DefaultMultilineMaxLines = 500
	DefaultMultilineTimeout  = 5 * time.Second
)

// Type is the source type of the file monitor.
const Type = "file"

func init() {
	sources.Register(Type, func(src config.Component) (any, error) { return Decode(src) })
}

// Decode reads a file source's options strictly and applies the defaults.
func Decode(src config.Component) (Options, error) { return sources.DecodeOptions[Options](src) }

// WithDefaults fills unset fields and checks the result.
func (o Options) WithDefaults() (Options, error) {
	if o.StartAt == "" {
		o.StartAt = "end"
	}
	if o.PollInterval <= 0 {
		o.PollInterval = config.Duration(DefaultPollInterval)
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	if o.MaxChunkBytes <= 0 {
		o.MaxChunkBytes = DefaultMaxChunkBytes
	}
	if o.PartialFlush <= 0 {
		o.PartialFlush = config.Duration(DefaultPartialFlush)
	}
	if o.CloseRemovedAfter <= 0 {
		o.CloseRemovedAfter = config.Duration(DefaultCloseRemovedAfter)
	}
	if o.MaxOpenFiles <= 0 {
		o.MaxOpenFiles = DefaultMaxOpenFiles
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = DefaultMaxFiles
	}
	if o.Readers <= 0 {
		o.Readers = DefaultReaders
	}
	if m := o.Multiline; m != nil {
		cp := *m
		if cp.MaxLines <= 0 {
			cp.MaxLines = DefaultMultilineMaxLines
		}
		if cp.Timeout <= 0 {
			cp.Timeout = config.Duration(DefaultMultilineTimeout)
		}
		o.Multiline = &cp
	}
	// Absolute globs: a file's subject is its path, and a relative path would name a different
	// file (and subject) whenever logcap starts from another directory.
	o.Paths, o.Exclude = absGlobs(o.Paths), absGlobs(o.Exclude)
	var errs []error
	if len(o.Paths) == 0 {
		errs = append(errs, errors.New("paths: at least one glob is required"))
	}
	for _, p := range append(append([]string{}, o.Paths...), o.Exclude...) {
		if !doublestar.ValidatePathPattern(p) {
			errs = append(errs, fmt.Errorf("glob %q: invalid pattern", p))
		}
	}
	if o.StartAt != "end" && o.StartAt != "beginning" {
		errs = append(errs, fmt.Errorf("start_at: %q, want beginning or end", o.StartAt))
	}
	if o.IncludeCompressed && !slices.ContainsFunc(o.Paths, mayMatchGzip) {
		errs = append(errs, errors.New(`include_compressed: no glob in paths can match a name ending in .gz (e.g. "/var/log/app.log*" matches app.log.1.gz, "/var/log/*.log" does not)`))
	}
	if o.MaxLineBytes > o.MaxChunkBytes {
		errs = append(errs, fmt.Errorf("max_line_bytes %s is above max_chunk_bytes %s: a chunk never splits an entry", o.MaxLineBytes, o.MaxChunkBytes))
	}
	if m := o.Multiline; m != nil {
		if (m.Start == "") == (m.Continue == "") {
			errs = append(errs, errors.New("multiline: set exactly one of start and continue"))
		}
		if _, err := NewMultiline(m, int(o.MaxLineBytes)); err != nil {
			errs = append(errs, err)
		}
	}
	return o, errors.Join(errs...)
}

// Multiline joiner from options; nil when not configured.
func NewMultiline(m *MultilineOpts, maxBytes int) (*Multiline, error) {
	if m == nil {
		return nil, nil
	}
	j := &Multiline{MaxLines: m.MaxLines, MaxBytes: maxBytes}
	var err error
	if m.Start != "" {
		if j.Start, err = regexp.Compile(m.Start); err != nil {
			return nil, fmt.Errorf("multiline.start: %w", err)
		}
	}
	if m.Continue != "" {
		if j.Continue, err = regexp.Compile(m.Continue); err != nil {
			return nil, fmt.Errorf("multiline.continue: %w", err)
		}
	}
	if j.MaxLines <= 0 {
		j.MaxLines = DefaultMultilineMaxLines
	}
	return j, nil
}

// mayMatchGzip reports whether glob can match a name ending in ".gz": not when it ends in a
// literal character other than 'z' (as "*.log" does), the common mistake.
func mayMatchGzip(glob string) bool {
	if glob == "" {
		return false
	}
	switch c := glob[len(glob)-1]; c {
	case '*', '?', ']', '}', 'z':
		return true
	default:
		return false
	}
}

func absGlobs(globs []string) []string {
	out := make([]string, len(globs))
	for i, g := range globs {
		out[i] = g
		if a, err := filepath.Abs(g); err == nil && !filepath.IsAbs(g) {
			out[i] = a
		}
	}
	return out
}

// CheckDataDir refuses globs that reach logcap's own store, data_dir/jetstream: its block
// files grow with every line captured (one seed line became 6.4 million lines of block files
// in 25 s). Refused: a glob whose directory part is inside the store, or a glob aimed into
// data_dir (its directory part there) that matches the store's files. Logs kept elsewhere in
// data_dir (the demo's data/demo/*.log) are fine, and so is a wider glob (/var/**, /**): the
// monitor skips the store (StoreDir).
func (o Options) CheckDataDir(dataDir string) error {
	dd, err := filepath.Abs(dataDir)
	if err != nil {
		return nil
	}
	store := StoreDir(dd)
	probes := []string{filepath.Join(store, "$G", "streams", "LOGS", "msgs", "1.blk"), filepath.Join(store, "$G", "streams", "LOGS", "meta.inf")}
	var errs []error
	for _, p := range o.Paths {
		base, _ := doublestar.SplitPattern(filepath.ToSlash(p))
		reaches := within(filepath.FromSlash(base), store) || within(p, store)
		for _, probe := range probes {
			if ok, _ := doublestar.PathMatch(p, probe); ok && within(filepath.FromSlash(base), dd) {
				reaches = true
			}
		}
		if reaches {
			errs = append(errs, fmt.Errorf("paths: %q reads logcap's own store %s: every line captured would be captured again", p, store))
		}
	}
	return errors.Join(errs...)
}

// StoreDir is where the embedded JetStream keeps its files below dataDir.
func StoreDir(dataDir string) string { return filepath.Join(dataDir, "jetstream") }

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
