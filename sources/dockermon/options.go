package dockermon

import (
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/sources"
)

// Type is the source type of the Docker monitor.
const Type = "docker"

func init() {
	sources.Register(Type, func(src config.Component) (any, error) { return Decode(src) })
}

// Decode reads a docker source's options strictly.
func Decode(src config.Component) (Options, error) {
	var opts Options
	if err := src.Options.Decode(&opts, "name", "type"); err != nil {
		return opts, fmt.Errorf("source %s: %w", src.Name, err)
	}
	return opts, nil
}

// Options are a docker source's keys in the config file (besides name and type).
type Options struct {
	// Host is the engine address (unix:///var/run/docker.sock, tcp://host:2376); empty:
	// DOCKER_HOST, else the default socket.
	Host string `yaml:"host"`
	// TLS for a tcp host; empty: DOCKER_TLS_VERIFY / DOCKER_CERT_PATH from the environment.
	TLS *TLS `yaml:"tls"`

	// Name and image filters are globs (path.Match syntax); label filters are "key" (the
	// label is set) or "key=value". A container is followed when it matches every include
	// list that is not empty and no exclude list.
	IncludeNames  []string `yaml:"include_names"`
	ExcludeNames  []string `yaml:"exclude_names"`
	IncludeLabels []string `yaml:"include_labels"`
	ExcludeLabels []string `yaml:"exclude_labels"`
	IncludeImages []string `yaml:"include_images"`
	ExcludeImages []string `yaml:"exclude_images"`
	// Labels lists the container labels copied into every chunk's headers
	// (Logcap-Label-<key>); compose project and service are always copied.
	Labels []string `yaml:"labels"`

	// ReconcileInterval is how often the container list is compared with what is followed,
	// to repair events the daemon dropped (default 30s).
	ReconcileInterval config.Duration `yaml:"reconcile_interval"`
	// MaxLineBytes bounds a line joined from Docker's 16 KiB parts (default 512KiB); longer
	// lines are published in parts marked Continued.
	MaxLineBytes config.Size `yaml:"max_line_bytes"`
	// MaxChunkBytes bounds one published chunk (default 1MiB).
	MaxChunkBytes config.Size `yaml:"max_chunk_bytes"`
}

// TLS holds the PEM files for a tcp:// engine.
type TLS struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// ApplyDefaults fills unset keys and checks the rest.
func (o *Options) ApplyDefaults() error {
	if o.ReconcileInterval == 0 {
		o.ReconcileInterval = config.Duration(30 * time.Second)
	}
	if o.MaxChunkBytes == 0 {
		o.MaxChunkBytes = 1 << 20
	}
	if o.MaxLineBytes == 0 {
		o.MaxLineBytes = 512 << 10
	}
	if o.MaxChunkBytes < 4<<10 {
		return fmt.Errorf("max_chunk_bytes %d: want at least 4KiB", o.MaxChunkBytes)
	}
	// A line and its timestamp must fit a chunk.
	if lim := o.MaxChunkBytes - 64; o.MaxLineBytes > lim {
		o.MaxLineBytes = lim
	}
	for _, globs := range [][]string{o.IncludeNames, o.ExcludeNames, o.IncludeImages, o.ExcludeImages} {
		for _, g := range globs {
			if _, err := path.Match(g, ""); err != nil {
				return fmt.Errorf("glob %q: %w", g, err)
			}
		}
	}
	return nil
}

// NewClient returns the Docker client for o. It sets no client-wide timeout: that is
// http.Client.Timeout, which would cut every log stream after it (the 30-second
// "rotation" bug logcap exists to fix). Calls are bounded by their contexts instead.
func NewClient(o Options) (*client.Client, error) {
	ops := []client.Opt{client.FromEnv}
	if o.Host != "" {
		ops = append(ops, client.WithHost(o.Host))
	}
	if o.TLS != nil {
		ops = append(ops, client.WithTLSClientConfig(o.TLS.CA, o.TLS.Cert, o.TLS.Key))
	}
	cli, err := client.New(ops...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %q: %w", o.Host, err)
	}
	return cli, nil
}

// Target is a container to follow, as discovery saw it.
type Target struct {
	ID, Name, Image string
	Labels          map[string]string
}

// match reports whether the options select t.
func (o *Options) match(t Target) bool {
	globs := func(pats []string, s string) bool {
		for _, p := range pats {
			if ok, _ := path.Match(p, s); ok {
				return true
			}
		}
		return false
	}
	labels := func(sel []string) bool {
		for _, s := range sel {
			k, v, hasV := strings.Cut(s, "=")
			if got, ok := t.Labels[k]; ok && (!hasV || got == v) {
				return true
			}
		}
		return false
	}
	if len(o.IncludeNames) > 0 && !globs(o.IncludeNames, t.Name) ||
		len(o.IncludeImages) > 0 && !globs(o.IncludeImages, t.Image) ||
		len(o.IncludeLabels) > 0 && !labels(o.IncludeLabels) {
		return false
	}
	return !globs(o.ExcludeNames, t.Name) && !globs(o.ExcludeImages, t.Image) && !labels(o.ExcludeLabels)
}
