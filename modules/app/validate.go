package app

import (
	"errors"
	"fmt"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/modules/dockermon"
	"github.com/logcap/logcap/modules/filemon"
	"github.com/logcap/logcap/modules/pipeline"
)

// Validate builds every configured component without running it, so `logcap check` reports
// errors in sources, steps and sinks with their file, line and key path — all of them.
func Validate(cfg *config.Config) error {
	var errs config.Errors
	for i, src := range cfg.Sources {
		var err error
		switch src.Type {
		case filemon.Type:
			_, err = filemon.Decode(src, cfg.DataDir)
		case dockermon.Type:
			_, err = dockermon.Decode(src)
		}
		if err != nil {
			errs = append(errs, cfg.WrapOptionsError(fmt.Sprintf("sources[%d]", i), err))
		}
	}
	errs = append(errs, pipeline.Validate(cfg)...)
	if len(errs) == 0 {
		return nil
	}
	return errors.Join(errs)
}
