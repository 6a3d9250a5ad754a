package filemon

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"go.uber.org/zap"
)

// The glob walk is streamed and bounded: `paths: ["/**"]` materialised every path below /
// (with /proc/<pid>/root leading back to / again) before anything was excluded: 1.7 GB of
// path strings in doublestar's match list, and growing, before the first file was held.
// Now pruned trees (pseudo filesystems, logcap's own store) are never read, directories
// are not matches, and the walk stops once it has max_files matches.

// errMaxFiles stops a walk (or refuses a file) at max_files.
var errMaxFiles = errors.New("max_files reached")

// matchGlobs returns the paths the globs match now (at most max_files, in walk order:
// directory by directory, names sorted), sorted, gzip files last (a .gz is recognised by the
// content of files read, including those this scan places or sees grown past 1 KiB), and
// the same as a set. It reports whether the walk stopped at max_files.
func (m *Monitor) matchGlobs() ([]string, map[string]bool, bool) {
	matched := map[string]bool{}
	loops := map[string]string{}
	capped := false
	for _, p := range m.opts.Paths {
		err := m.walkGlob(p, loops, func(x string) error {
			if matched[x] {
				return nil
			}
			if len(matched) >= m.opts.MaxFiles {
				return errMaxFiles
			}
			matched[x] = true
			return nil
		})
		if errors.Is(err, errMaxFiles) {
			capped = true
			break
		}
		if err != nil {
			m.noteErr(p, fmt.Errorf("glob %s: %w", p, err), zap.ErrorLevel)
		}
	}
	m.dropSymlinkedDirs(matched, loops)
	return scanOrder(slices.Collect(maps.Keys(matched)), m.isGzip), matched, capped
}

// scanOrder sorts the paths a scan holds (and Resolve places, in that order): gzip files
// last, and otherwise by name with a name before every name it is the start of — a rotated
// generation (0.log.20261206-101500, app.log.1) before the file now at its path (0.log,
// app.log). Generations of one subject (a container's CRI logs) are placed in the order
// they were written; a current file placed first would queue its rotated predecessor after it.
func scanOrder(paths []string, isGzip func(string) bool) []string {
	slices.SortFunc(paths, func(a, b string) int {
		if ga, gb := isGzip(a), isGzip(b); ga != gb {
			if ga {
				return 1
			}
			return -1
		}
		return strings.Compare(a+"\xff", b+"\xff") // "\xff" sorts after any byte of a name
	})
	return paths
}

// walkGlob calls fn with each path the glob matches that is not a directory and not
// excluded, as the walk finds it; an error from fn stops the walk and is returned. Symlink
// loops skipped are added to loops.
func (m *Monitor) walkGlob(pattern string, loops map[string]string, fn func(path string) error) error {
	base, rel := doublestar.SplitPattern(filepath.ToSlash(filepath.Clean(pattern)))
	fsys := &prunedFS{FS: os.DirFS(base), base: base, prune: m.pruned, listed: map[string]string{}, loops: loops}
	return doublestar.GlobWalk(fsys, rel, func(p string, d fs.DirEntry) error {
		if d.IsDir() {
			return nil
		}
		full := filepath.Join(base, filepath.FromSlash(p))
		if m.excluded(full) {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			if fi, err := os.Stat(full); err == nil && fi.IsDir() {
				return nil // a link to a directory: the walk lists it (once), not a file
			}
		}
		return fn(full)
	})
}

// pruned reports whether a path's tree is never walked nor read: logcap's own store, and
// kernel pseudo filesystems unless a glob starts inside one (/dev/shm/app/*.log asks for it;
// /** does not).
func (m *Monitor) pruned(path string) bool {
	if m.d.DataDir != "" && within(path, StoreDir(m.d.DataDir)) {
		return true
	}
	for dir := range pseudoFS {
		if within(path, dir) && !m.globsWithin(dir) {
			return true
		}
	}
	return false
}

// globsWithin reports whether a glob's fixed directory part is inside dir.
func (m *Monitor) globsWithin(dir string) bool {
	for _, p := range m.opts.Paths {
		if base, _ := doublestar.SplitPattern(filepath.ToSlash(p)); within(filepath.FromSlash(base), dir) {
			return true
		}
	}
	return false
}

// prunedFS is a directory tree whose listings leave out the pruned entries, so that a glob
// walk never descends into them (doublestar lists directories with fs.ReadDir), and that
// lists each real directory once: a second path to it through symlinks (/bin → usr/bin, and
// usr/bin/X11 → . below it, 40 levels deep) lists nothing. Those copies filled max_files
// before any other file was found; dropSymlinkedDirs dropped them only after the walk.
type prunedFS struct {
	fs.FS
	base   string
	prune  func(path string) bool
	listed map[string]string // real directory → the path it was listed under
	loops  map[string]string // directory → a path below it that leads back to it
}

func (p *prunedFS) ReadDir(name string) ([]fs.DirEntry, error) {
	dir := filepath.Join(p.base, filepath.FromSlash(name))
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		// doublestar lists a directory once to descend and once to match in it: same path
		switch first, ok := p.listed[real]; {
		case !ok:
			p.listed[real] = dir
		case first != dir:
			if strings.HasPrefix(dir, first+string(filepath.Separator)) {
				p.loops[first] = dir
			}
			return nil, nil
		}
	}
	ents, err := fs.ReadDir(p.FS, name)
	return slices.DeleteFunc(ents, func(e fs.DirEntry) bool {
		// only a directory (or a link to one) roots a pruned tree
		return (e.IsDir() || e.Type()&fs.ModeSymlink != 0) && p.prune(filepath.Join(dir, e.Name()))
	}), err
}

func (p *prunedFS) Stat(name string) (fs.FileInfo, error) { return fs.Stat(p.FS, name) }

// setCappedLocked records whether the source is at max_files (a scan stopped there or a
// file was refused); getting there is counted, logged and reported by readiness.
func (m *Monitor) setCappedLocked(on bool) {
	switch {
	case on && !m.capped:
		m.met.maxFiles.Inc()
		m.met.errs.Inc()
		m.log.Warn("file monitor: the globs match more files than max_files: the files after the first max_files (in directory order) are not read",
			zap.Int("max_files", m.opts.MaxFiles), zap.Strings("paths", m.opts.Paths))
	case !on && m.capped:
		m.log.Info("file monitor: the globs match max_files files or fewer again: all are read", zap.Int("max_files", m.opts.MaxFiles))
	}
	m.capped = on
}
