package app

import (
	"errors"

	"github.com/logcap/logcap/config"
)

// Validate builds every configured component without running it, so `logcap check` reports
// errors in sources, steps and sinks with their file, line and key path — all of them.
func Validate(cfg *config.Config) error {
	var errs config.Errors
	for _, v := range validators {
		errs = append(errs, v(cfg)...)
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.Join(errs)
}

// validators check one kind of component each; modules add theirs as they are wired in.
var validators []func(*config.Config) config.Errors
