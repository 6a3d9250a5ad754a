package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/modules/pipeline"
	"github.com/logcap/logcap/sources"
)

// Validate builds every configured component without running it, so `logcap check` reports
// errors in sources, steps and sinks with their file, line and key path — all of them.
func Validate(cfg *config.Config) error {
	var errs config.Errors
	for i, src := range cfg.Sources {
		if !sources.Known(src.Type) {
			continue // config.Validate reports the type
		}
		if _, err := sources.DecodeIn(cfg, src); err != nil {
			errs = append(errs, cfg.WrapOptionsError(fmt.Sprintf("sources[%d]", i), err))
		}
	}
	errs = append(errs, pipeline.Validate(cfg)...)
	if len(errs) == 0 {
		return nil
	}
	return errors.Join(errs)
}

// Warnings are what `check` and `run` say about a configuration that is valid but will not
// hold up on this host.
func Warnings(cfg *config.Config) []string {
	var ws []string
	if e := cfg.NATS.Embedded; e != nil {
		if free, dir, ok := freeSpace(cfg.DataDir); ok && uint64(cfg.Streams.Logs.MaxBytes) > free {
			ws = append(ws, fmt.Sprintf("streams.logs.max_bytes %s does not fit the free space of data_dir (%s free on %s): "+
				"once the disk is full (less than nats.embedded.store_reserve %s free) capture is held until space is freed; lower max_bytes or free space",
				cfg.Streams.Logs.MaxBytes, config.Size(free), dir, e.StoreReserve))
		}
	}
	return ws
}

// freeSpace is the space available on the file system of dir, or of its nearest existing
// parent when dir is not created yet.
func freeSpace(dir string) (free uint64, at string, ok bool) {
	at = dir
	for {
		var st unix.Statfs_t
		if err := unix.Statfs(at, &st); err == nil {
			return st.Bavail * uint64(st.Bsize), at, true
		} else if !errors.Is(err, os.ErrNotExist) {
			return 0, at, false
		}
		parent := filepath.Dir(at)
		if parent == at {
			return 0, at, false
		}
		at = parent
	}
}
