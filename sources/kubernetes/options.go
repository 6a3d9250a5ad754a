// Package kubernetes is the Kubernetes node source (`type: kubernetes`): the container logs
// the CRI runtime (containerd, CRI-O) writes below /var/log/pods, with the pod's identity
// from each file's path. It is the file monitor (sources/filemon) with a flavor: the
// tailing, file identity, positions (the stream, then the positions KV), rotation and gzip
// handling, the hold during a NATS outage and exactly-once across kill -9 are the file
// monitor's; this package adds the layout, the CRI framing (frame.go) and the subjects.
package kubernetes

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/sources"
	"github.com/logcap/logcap/sources/filemon"
	"github.com/logcap/logcap/streams"
)

// Type is the source type.
const Type = "kubernetes"

// DefaultPodsDir is where the kubelet has the runtime write container logs.
const DefaultPodsDir = "/var/log/pods"

// Options are the keys of a `type: kubernetes` source. Key names are a contract with users.
type Options struct {
	PodsDir string `yaml:"pods_dir"`
	// Globs over names (no '/'): the containers followed are those of a namespace, pod and
	// container each matching one of these; empty: all.
	Namespaces []string `yaml:"namespaces"`
	Pods       []string `yaml:"pods"`
	Containers []string `yaml:"containers"`
	// Exclude: `<namespace>/<pod>/<container>` globs of containers not followed.
	Exclude []string `yaml:"exclude"`
	// As the file source's keys (sources/filemon): start_at applies to the logs present at
	// the source's very first start; later containers are read from their beginning.
	StartAt           string          `yaml:"start_at"`
	PollInterval      config.Duration `yaml:"poll_interval"`
	MaxLineBytes      config.Size     `yaml:"max_line_bytes"`
	MaxChunkBytes     config.Size     `yaml:"max_chunk_bytes"`
	PartialFlush      config.Duration `yaml:"partial_flush"`
	CloseRemovedAfter config.Duration `yaml:"close_removed_after"`
	MaxOpenFiles      int             `yaml:"max_open_files"`
	Readers           int             `yaml:"readers"`
}

func init() {
	sources.Register(Type, func(src config.Component) (any, error) { return Decode(src) })
}

// Decode reads a kubernetes source's options strictly and applies the defaults.
func Decode(src config.Component) (Options, error) {
	var o Options
	if err := src.Options.Decode(&o, "name", "type"); err != nil {
		return o, fmt.Errorf("source %s: %w", src.Name, err)
	}
	o, err := o.WithDefaults()
	if err != nil {
		return o, fmt.Errorf("source %s: %w", src.Name, err)
	}
	return o, nil
}

// WithDefaults fills unset fields and checks the result, the file monitor's keys included.
func (o Options) WithDefaults() (Options, error) {
	if o.PodsDir == "" {
		o.PodsDir = DefaultPodsDir
	}
	if abs, err := filepath.Abs(o.PodsDir); err == nil {
		o.PodsDir = abs
	}
	var errs []error
	for i, globs := range [][]string{o.Namespaces, o.Pods, o.Containers} {
		for _, g := range globs {
			if err := checkNameGlob(g); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", []string{"namespaces", "pods", "containers"}[i], err))
			}
		}
	}
	for _, ex := range o.Exclude {
		parts := strings.Split(ex, "/")
		if len(parts) != 3 {
			errs = append(errs, fmt.Errorf("exclude: %q: want <namespace>/<pod>/<container> (globs, e.g. kube-system/*/*)", ex))
			continue
		}
		for _, g := range parts {
			if err := checkNameGlob(g); err != nil {
				errs = append(errs, fmt.Errorf("exclude: %q: %w", ex, err))
			}
		}
	}
	if len(errs) > 0 {
		return o, errors.Join(errs...)
	}
	if _, err := o.File(); err != nil {
		return o, err
	}
	return o, nil
}

// checkNameGlob checks a glob over a Kubernetes name: names hold neither '/' nor '_' (the
// pod directory is <namespace>_<pod>_<uid>).
func checkNameGlob(g string) error {
	if g == "" || strings.ContainsAny(g, "/_") {
		return fmt.Errorf("glob %q: empty, or holds '/' or '_' (no Kubernetes name does)", g)
	}
	if !doublestar.ValidatePattern(g) {
		return fmt.Errorf("glob %q: invalid pattern", g)
	}
	return nil
}

// File is the file monitor's options for this source: globs over the pods directory
// (N.log, its rotations N.log.<time> and their gzip copies), the kubelet's temporary files
// and the excluded containers left out.
func (o Options) File() (filemon.Options, error) {
	or := func(g []string) []string {
		if len(g) == 0 {
			return []string{"*"}
		}
		return g
	}
	fo := filemon.Options{
		StartAt: o.StartAt, PollInterval: o.PollInterval, MaxLineBytes: o.MaxLineBytes, MaxChunkBytes: o.MaxChunkBytes,
		PartialFlush: o.PartialFlush, CloseRemovedAfter: o.CloseRemovedAfter, MaxOpenFiles: o.MaxOpenFiles,
		Readers: o.Readers, IncludeCompressed: true,
		Exclude: []string{filepath.Join(o.PodsDir, "**", "*.tmp")},
	}
	for _, ns := range or(o.Namespaces) {
		for _, pod := range or(o.Pods) {
			for _, c := range or(o.Containers) {
				fo.Paths = append(fo.Paths, filepath.Join(o.PodsDir, ns+"_"+pod+"_*", c, "*.log*"))
			}
		}
	}
	for _, ex := range o.Exclude {
		p := strings.Split(ex, "/")
		fo.Exclude = append(fo.Exclude, filepath.Join(o.PodsDir, p[0]+"_"+p[1]+"_*", p[2], "*"))
	}
	return fo.WithDefaults()
}

// CheckDataDir refuses a pods_dir that holds logcap's own store (sources.DataDirChecker).
func (o Options) CheckDataDir(dataDir string) error {
	fo, err := o.File()
	if err != nil {
		return err
	}
	return fo.CheckDataDir(dataDir)
}

// Flavor is the file monitor's flavor for the pods directory podsDir; an open line goes
// out as parts after partialFlush by the runtime's clock (CRI).
func Flavor(podsDir string, partialFlush time.Duration) *filemon.Flavor {
	return &filemon.Flavor{
		Kind:   streams.KindKubernetes,
		Framer: CRI{PartialFlush: partialFlush},
		Describe: func(path string) (string, *streams.PodRef) {
			rel, err := filepath.Rel(podsDir, path)
			if err != nil {
				return path, nil
			}
			ref, ok := streams.PodRefOf(filepath.ToSlash(rel))
			if !ok {
				return filepath.ToSlash(rel), nil // not the kubelet's layout: the path names it
			}
			return ref.Source(), &ref
		},
	}
}

// New builds the monitor of a kubernetes source; opts must have been through WithDefaults.
func New(name string, opts Options, d filemon.Deps) (*filemon.Monitor, error) {
	fo, err := opts.File()
	if err != nil {
		return nil, fmt.Errorf("kubernetes source %s: %w", name, err)
	}
	d.Flavor = Flavor(opts.PodsDir, fo.PartialFlush.D())
	return filemon.New(name, fo, d)
}
