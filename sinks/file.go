package sinks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/logcap/logcap/config"
)

func init() {
	Register("file", func(name string, opts config.Options) (Sink, error) {
		var o FileOptions
		if err := opts.Decode(&o, config.PipelineKeys...); err != nil {
			return nil, fmt.Errorf("file sink %s: %w", name, err)
		}
		s, err := NewFile(o)
		if err != nil {
			return nil, fmt.Errorf("file sink %s: %w", name, err)
		}
		return s, nil
	})
}

// FileOptions is the `type: file` mapping.
type FileOptions struct {
	// Path is a text/template of the output path with {{.Date}} (YYYY-MM-DD, UTC, of the
	// entry's time), {{.Host}}, {{.Kind}} and {{.Source}}; the values are sanitized so that
	// they cannot leave their path segment.
	Path   string      `yaml:"path"`
	Format string      `yaml:"format"` // json (default) or raw
	Rotate *FileRotate `yaml:"rotate"`
	// Fsync is "batch" (default: data and position fsynced once per Write, before it
	// returns), "always" (every record fsynced on its own: slow) or "never" (the page cache
	// decides: survives a process crash, not a power loss).
	Fsync string `yaml:"fsync"`
}

// FileRotate configures size and age rotation of each output file.
type FileRotate struct {
	MaxSize  config.Size     `yaml:"max_size"`  // rotate before a batch would pass this size; 0: no size limit
	MaxAge   config.Duration `yaml:"max_age"`   // rotate a file older than this; 0: no age limit
	MaxFiles int             `yaml:"max_files"` // rotated files kept; default 10
	Compress bool            `yaml:"compress"`  // gzip rotated files (x.log.1.gz)
}

const (
	fsyncBatch  = "batch"
	fsyncAlways = "always"
	fsyncNever  = "never"

	// fileMaxOpen bounds the output files held open at once; a path template with {{.Source}}
	// can fan out widely, and a closed file is reopened (and checked) on its next record.
	fileMaxOpen = 64
)

// FileSink appends records to files named by a path template, and remembers per file the last
// record it durably wrote from each stream, so a redelivered batch is not written twice.
type FileSink struct {
	tmpl     *template.Template
	static   string // the path when the template has no actions
	probeDir string // the directory Check probes: the template's constant prefix
	format   string
	fsync    string
	rotate   FileRotate

	check StreamCheck // nil: positions are trusted (replay)

	files map[string]*outFile
	clock uint64 // write counter for least-recently-used eviction
	buf   []byte
	now   func() time.Time
}

var (
	_ Sink          = (*FileSink)(nil)
	_ Ordered       = (*FileSink)(nil)
	_ StreamChecked = (*FileSink)(nil)
	_ FieldsReader  = (*FileSink)(nil)
)

// SetStreamCheck makes the sink ask check before it skips records as written.
func (s *FileSink) SetStreamCheck(check StreamCheck) { s.check = check }

// Ordered reports true: positions are per stream, newest only (see Ordered).
func (s *FileSink) Ordered() bool { return true }

// ReadsFields: only the json format writes the fields (a path template names none).
func (s *FileSink) ReadsFields() bool { return s.format != "raw" }

// NewFile validates o. It opens nothing: files are opened on first write.
func NewFile(o FileOptions) (*FileSink, error) {
	if o.Path == "" {
		return nil, errors.New("path: required")
	}
	format, err := lineFormat(o.Format, "json")
	if err != nil {
		return nil, err
	}
	s := &FileSink{format: format, files: map[string]*outFile{}, now: time.Now}
	switch o.Fsync {
	case "":
		s.fsync = fsyncBatch
	case fsyncBatch, fsyncAlways, fsyncNever:
		s.fsync = o.Fsync
	default:
		return nil, fmt.Errorf("fsync: %q is not one of always, batch, never", o.Fsync)
	}
	if o.Rotate != nil {
		s.rotate = *o.Rotate
		if s.rotate.MaxFiles < 0 {
			return nil, fmt.Errorf("rotate.max_files: %d is negative", s.rotate.MaxFiles)
		}
		if s.rotate.MaxFiles == 0 {
			s.rotate.MaxFiles = 10
		}
	}
	tmpl, err := template.New("path").Option("missingkey=error").Parse(o.Path)
	if err != nil {
		return nil, fmt.Errorf("path: %w", err)
	}
	// Executing on sample values catches unknown fields ({{.Container}}) now, not per record.
	var sample strings.Builder
	if err := tmpl.Execute(&sample, pathFields{Date: "2006-01-02", Host: "h", Kind: "k", Source: "s"}); err != nil {
		return nil, fmt.Errorf("path: %w", err)
	}
	if strings.HasSuffix(sample.String(), "/") {
		return nil, fmt.Errorf("path: %q names a directory, not a file", o.Path)
	}
	if !strings.Contains(o.Path, "{{") {
		s.static = filepath.Clean(o.Path)
	} else {
		s.tmpl = tmpl
	}
	prefix, _, _ := strings.Cut(o.Path, "{{")
	s.probeDir = filepath.Dir(prefix + "x")
	return s, nil
}

// pathFields are the values a path template may use.
type pathFields struct {
	Date, Host, Kind, Source string
}

// sanitizeSegment keeps a template value inside its path segment: no separators, no "..",
// never empty (an empty {{.Host}} in "{{.Host}}/x.log" would make the path absolute).
func sanitizeSegment(v string) string {
	v = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 {
			return '_'
		}
		return r
	}, v)
	v = strings.ReplaceAll(v, "..", "__")
	if v == "" || v == "." {
		return "_"
	}
	return v
}

func (s *FileSink) pathFor(r *Record, cache map[pathFields]string) (string, error) {
	if s.tmpl == nil {
		return s.static, nil
	}
	// The zero time formats as 0001-01-01: deterministic, so a redelivery lands in the same file.
	pf := pathFields{
		Date:   r.Time.UTC().Format("2006-01-02"),
		Host:   sanitizeSegment(r.Host),
		Kind:   sanitizeSegment(r.Kind),
		Source: sanitizeSegment(r.Source),
	}
	if p, ok := cache[pf]; ok {
		return p, nil
	}
	var b strings.Builder
	if err := s.tmpl.Execute(&b, pf); err != nil {
		return "", err
	}
	p := filepath.Clean(b.String())
	cache[pf] = p
	return p, nil
}

// Write appends every record not yet in its output file, then fsyncs the data and records the
// new positions. Files are written one after another; if one fails, the ones before it are
// committed, so the retried batch skips their records.
func (s *FileSink) Write(ctx context.Context, batch []Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cache := map[pathFields]string{}
	var order []string
	groups := map[string][]int{}
	for i := range batch {
		p, err := s.pathFor(&batch[i], cache)
		if err != nil {
			return Permanent(fmt.Errorf("file: record %s: path: %w", batch[i].ID(), err))
		}
		if _, ok := groups[p]; !ok {
			order = append(order, p)
		}
		groups[p] = append(groups[p], i)
	}
	for _, p := range order {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.writeFile(ctx, p, batch, groups[p]); err != nil {
			return err
		}
	}
	s.evict()
	return nil
}

func (s *FileSink) writeFile(ctx context.Context, path string, batch []Record, idx []int) error {
	of, err := s.open(path)
	if err != nil {
		return err
	}
	if s.check != nil {
		if err := of.checkStreams(ctx, s.check, batch, idx); err != nil {
			return err
		}
	}
	s.clock++
	of.lastUse = s.clock
	p, err := of.prepare(s.buf, batch, idx, s.format)
	if err != nil {
		return err
	}
	s.buf = p.data[:0]
	if len(p.data) == 0 {
		return nil
	}
	if s.dueForRotation(of, len(p.data)) {
		if err := s.rotateFile(of); err != nil {
			s.drop(of)
			return err
		}
		p.state.Size = of.state.Size + int64(len(p.data))
		p.state.Created = of.state.Created
	}
	if err := of.appendData(p, s.fsync); err != nil {
		s.rollback(of)
		return err
	}
	if err := of.commit(p.state, s.fsync != fsyncNever); err != nil {
		s.rollback(of)
		return err
	}
	return nil
}

// rollback cuts a file back to its last committed size after a failed write, so the retry
// appends after committed data only. If even that fails the handle is dropped: reopening
// repairs the file from the position file.
func (s *FileSink) rollback(of *outFile) {
	if err := of.f.Truncate(of.state.Size); err != nil {
		s.drop(of)
	}
}

func (s *FileSink) drop(of *outFile) {
	_ = of.close()
	delete(s.files, of.path)
}

// evict closes the least recently used files beyond fileMaxOpen.
func (s *FileSink) evict() {
	for len(s.files) > fileMaxOpen {
		var lru *outFile
		for _, of := range s.files {
			if lru == nil || of.lastUse < lru.lastUse {
				lru = of
			}
		}
		s.drop(lru)
	}
}

func (s *FileSink) open(path string) (*outFile, error) {
	if of, ok := s.files[path]; ok {
		return of, nil
	}
	of, err := openOutFile(path, s.fsync != fsyncNever, s.now())
	if err != nil {
		return nil, err
	}
	s.files[path] = of
	return of, nil
}

// Check verifies that the output directory exists (or can be created) and is writable.
func (s *FileSink) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(s.probeDir, 0o755); err != nil {
		return fmt.Errorf("file: check %s: %w", s.probeDir, err)
	}
	f, err := os.CreateTemp(s.probeDir, ".logcap-check-*")
	if err != nil {
		return fmt.Errorf("file: check %s: %w", s.probeDir, err)
	}
	name := f.Name()
	err = f.Close()
	if rmErr := os.Remove(name); err == nil {
		err = rmErr
	}
	if err != nil {
		return fmt.Errorf("file: check %s: %w", s.probeDir, err)
	}
	return nil
}

// Close closes every open file. A later Write reopens them.
func (s *FileSink) Close() error {
	var errs []error
	for _, of := range s.files {
		errs = append(errs, of.close())
	}
	clear(s.files)
	return errors.Join(errs...)
}
