package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/logcap/logcap/modules/app"
)

// reload applies the configuration file again (SIGHUP). An invalid file, or one that changes
// what only a restart can (NATS, data_dir, streams, admin.listen, node...), is refused with
// a log line and the running configuration stays; a valid one replaces the sources,
// processors and sinks while NATS keeps running. /readyz shows what the last reload did. The
// error is non-nil only when no components could be started again: logcap then stops.
func reload(rt *app.Runtime, path, level string, log *zap.Logger) error {
	if path == "" {
		log.Warn("SIGHUP: no -c given, nothing to reload; the built-in default configuration keeps running")
		return nil
	}
	at := time.Now().UTC().Format(time.RFC3339)
	log.Info("SIGHUP: reloading the configuration", zap.String("file", path))
	cfg, err := loadConfig(path)
	if err == nil {
		err = app.Validate(cfg)
	}
	// Each outcome is noted for /readyz before it is logged: whoever sees the log line (a
	// person, a test waiting for it) finds /readyz already saying the same.
	if err != nil {
		rt.Note(fmt.Sprintf("last reload %s: rejected (%s has errors); the previous configuration runs", at, path))
		log.Error("configuration reload rejected: the file has errors; the running configuration stays",
			zap.String("file", path), zap.Strings("errors", strings.Split(err.Error(), "\n")))
		return nil
	}
	if level != "" {
		cfg.Log.Level = level // --log-level still wins over the file
	}
	for _, w := range app.Warnings(cfg) {
		log.Warn(w)
	}
	began := time.Now()
	change, err := rt.Reload(cfg)
	var fatal *app.FatalError
	switch {
	case errors.As(err, &fatal):
		log.Error("configuration reload failed and the previous sources, processors and sinks did not start again", zap.Error(err))
		return err
	case errors.Is(err, app.ErrNeedsRestart):
		rt.Note(fmt.Sprintf("last reload %s: refused, needs a restart (%s changed); the previous configuration runs",
			at, strings.Join(change.Restart, ", ")))
		log.Error("configuration reload refused: the change needs a restart; the running configuration stays",
			zap.String("file", path), zap.Strings("keys", change.Restart), zap.Error(err))
	case err != nil:
		rt.Note(fmt.Sprintf("last reload %s: failed (%v); the previous configuration runs", at, err))
		log.Error("configuration reload failed; the previous configuration runs again", zap.String("file", path), zap.Error(err))
	case change.Empty():
		rt.Note(fmt.Sprintf("last reload %s: no change", at))
		log.Info("configuration reloaded: no source, processor or sink changed", zap.String("file", path))
	default:
		took := time.Since(began)
		rt.Note(fmt.Sprintf("last reload %s: %s", at, change))
		logApplied(log, path, change, took)
	}
	return nil
}

func logApplied(log *zap.Logger, path string, change app.Change, took time.Duration) {
	log.Info("configuration reloaded", zap.String("file", path), zap.String("changes", change.String()),
		zap.Duration("took", took))
	if removed := slices.Concat(change.Processors.Removed, change.Sinks.Removed); len(removed) > 0 {
		// Their positions stay for when they come back; but the retention guard counts every
		// durable consumer, so one nobody reads holds capture once LOGS fills (when_full: block).
		log.Warn("removed processors and sinks keep their durable consumers (and positions) in NATS; "+
			"delete those gone for good (nats consumer rm STREAM NAME), or streams.logs.when_full: block holds capture once the stream fills",
			zap.Strings("consumers", removed))
	}
}
