// Package sources is the registry of source types (`type: file`, `type: docker`), as sinks
// and processors have theirs: each type registers a decoder that reads its options strictly
// and applies its defaults, without side effects, so `logcap check` validates every source
// without running it and a module finds its sources by type.
package sources

import (
	"fmt"

	"github.com/logcap/logcap/config"
)

// Decoder reads a source's options (its whole mapping, `name` and `type` included) into its
// type's options value. It opens nothing and starts nothing.
type Decoder func(src config.Component) (any, error)

var decoders = config.NewRegistry[Decoder]("source type")

// Register makes a source type available by its `type:` name. Called from init only.
func Register(typ string, d Decoder) { decoders.Register(typ, d) }

// Decode reads src's options with its type's decoder.
func Decode(src config.Component) (any, error) {
	d, err := decoders.Lookup(src.Type)
	if err != nil {
		return nil, fmt.Errorf("type: %w", err)
	}
	return d(src)
}

// DataDirChecker is implemented by a source's options that could read logcap's own
// data_dir (a file source's globs): reading it would capture every line again, forever.
type DataDirChecker interface {
	CheckDataDir(dataDir string) error
}

// DecodeIn is Decode plus the checks against cfg: a source may not read cfg's data_dir.
func DecodeIn(cfg *config.Config, src config.Component) (any, error) {
	v, err := Decode(src)
	if err != nil {
		return nil, err
	}
	if c, ok := v.(DataDirChecker); ok {
		if err := c.CheckDataDir(cfg.DataDir); err != nil {
			return nil, fmt.Errorf("source %s: %w", src.Name, err)
		}
	}
	return v, nil
}

// Known reports whether typ is a registered source type.
func Known(typ string) bool { return decoders.Has(typ) }

// Types lists the registered source types.
func Types() []string { return decoders.Types() }

// Select returns the sources of cfg of type typ, in config order, with their decoded
// options. The first source that does not decode is the error.
func Select[O any](cfg *config.Config, typ string) ([]config.Component, []O, error) {
	var srcs []config.Component
	var opts []O
	for _, src := range cfg.Sources {
		if src.Type != typ {
			continue
		}
		v, err := DecodeIn(cfg, src)
		if err != nil {
			return nil, nil, err
		}
		o, ok := v.(O)
		if !ok {
			return nil, nil, fmt.Errorf("source %s: type %s decodes to %T, not %T", src.Name, typ, v, o)
		}
		srcs, opts = append(srcs, src), append(opts, o)
	}
	return srcs, opts, nil
}

// Defaulted is a source type's options that fill their unset keys and check the result.
type Defaulted[T any] interface {
	WithDefaults() (T, error)
}

// DecodeOptions reads src's options strictly (every key known) into a T and applies its
// defaults; errors name the source.
func DecodeOptions[T Defaulted[T]](src config.Component) (T, error) {
	var o T
	if err := src.Options.Decode(&o, "name", "type"); err != nil {
		return o, fmt.Errorf("source %s: %w", src.Name, err)
	}
	o, err := o.WithDefaults()
	if err != nil {
		return o, fmt.Errorf("source %s: %w", src.Name, err)
	}
	return o, nil
}
