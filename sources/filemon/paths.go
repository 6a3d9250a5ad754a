package filemon

import (
	"cmp"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"
)

// dropSymlinkedDirs removes from matched the paths whose directory is, through symlinks, a
// directory matched under a shorter path: each directory is read under one path. A
// directory symlink that leads back to an ancestor (logs/a → logs) made a `**` glob descend
// 40 levels, to ELOOP, and the deepest path sorts first: a file was published under a
// subject hundreds of characters long. Such a loop is skipped with one warning.
//
// walked are the loops the walk skipped already (prunedFS): directory → the path below it.
func (m *Monitor) dropSymlinkedDirs(matched map[string]bool, walked map[string]string) {
	var dirs []string
	seen := map[string]bool{}
	for p := range matched {
		if d := filepath.Dir(p); !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	slices.SortFunc(dirs, func(a, b string) int { return cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b)) })
	claimed := map[string]string{} // real directory → the path it is read under
	skip := map[string]string{}    // directory → the path its files are read under
	for _, d := range dirs {
		real, err := filepath.EvalSymlinks(d)
		if err != nil {
			real = d
		}
		if c, ok := claimed[real]; ok {
			skip[d] = c
			continue
		}
		claimed[real] = d
	}
	loops := map[string]bool{}
	for c, p := range walked {
		m.warnLoop(loops, c, p)
	}
	if len(skip) == 0 {
		m.loops = loops
		return
	}
	for p := range matched {
		c, ok := skip[filepath.Dir(p)]
		if !ok {
			continue
		}
		delete(matched, p)
		if !strings.HasPrefix(p, c+string(filepath.Separator)) {
			continue // another path to a directory matched already: its files are read there
		}
		m.warnLoop(loops, c, p)
	}
	m.loops = loops
}

// warnLoop warns about the symlink loop below dir once (while it lasts) and adds it to loops.
func (m *Monitor) warnLoop(loops map[string]bool, dir, skipped string) {
	if !m.loops[dir] && !loops[dir] {
		m.met.errs.Inc()
		m.log.Warn("file monitor: symlink loop: a directory below leads back to it; its files are read under their shortest path only",
			zap.String("dir", dir), zap.String("skipped", skipped))
	}
	loops[dir] = true
}
