package pipeline

import (
	"fmt"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/processors"
	"github.com/logcap/logcap/sinks"
)

// Validate builds every processor step and every sink of cfg without running them, for
// `logcap check`: each error names the component's key path and line, all of them at once.
// Wire it with `validators = append(validators, pipeline.Validate)` in modules/app.
func Validate(cfg *config.Config) config.Errors {
	var errs config.Errors
	for i, pc := range cfg.Processors {
		for j, st := range pc.Steps {
			path := fmt.Sprintf("processors[%d].steps[%d]", i, j)
			typ, opts, err := st.Step()
			if err != nil {
				continue // config.Validate reports the shape
			}
			if _, err := processors.NewStep(typ, opts); err != nil {
				fe := cfg.WrapOptionsError(path, err)
				fe.Msg = fmt.Sprintf("(%s) %s", typ, fe.Msg)
				errs = append(errs, fe)
			}
		}
	}
	for i, sc := range cfg.Sinks {
		if sc.Type == "" {
			continue
		}
		s, err := sinks.New(sc.Type, sc.Name, sc.Options)
		if err != nil {
			errs = append(errs, cfg.WrapOptionsError(fmt.Sprintf("sinks[%d]", i), err))
			continue
		}
		if err := checkConcurrency(sc, s); err != nil {
			errs = append(errs, cfg.WrapOptionsError(fmt.Sprintf("sinks[%d]", i), err))
		}
		_ = s.Close()
	}
	return errs
}

// checkConcurrency refuses request.concurrency above 1 for a sink that takes one write at a
// time (the file sink's order, syslog's one connection).
func checkConcurrency(sc config.Component, s sinks.Sink) error {
	if sc.Request.Concurrency <= 1 {
		return nil
	}
	_, concurrent := s.(sinks.Concurrent)
	if o, ok := s.(sinks.Ordered); !concurrent || ok && o.Ordered() {
		return fmt.Errorf("request.concurrency: %d: the %s sink takes one batch at a time", sc.Request.Concurrency, sc.Type)
	}
	return nil
}
