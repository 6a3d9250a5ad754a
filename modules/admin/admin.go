// Package admin serves logcap's operational HTTP endpoints: /healthz, /readyz, /metrics and
// /debug/pprof/. It also provides the Prometheus registry every module registers on.
package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/modules/lifecycle"
	"github.com/logcap/logcap/modules/natsd"
)

// Module provides the metrics registry and runs the admin server.
var Module = fx.Module("admin",
	fx.Provide(NewRegistry),
	fx.Provide(func() *Checks { return &Checks{} }),
	fx.Provide(func(r *prometheus.Registry) prometheus.Registerer { return r }),
	fx.Invoke(Serve),
)

// NewRegistry returns a registry with the Go and process collectors (go_goroutines,
// process_open_fds, process_resident_memory_bytes: what the soak test watches).
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Serve listens on admin.listen at start (a port in use fails the start, naming the
// address) and serves until stop.
func Serve(lc fx.Lifecycle, cfg *config.Config, reg *prometheus.Registry, client *natsd.Client, checks *Checks, log *zap.Logger) {
	if cfg.Admin.Listen == "none" {
		return
	}
	log = log.Named("admin")
	g := lifecycle.New("admin", log)
	srv := &http.Server{Handler: Handler(reg, client, checks), ReadHeaderTimeout: 10 * time.Second}
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			ln, err := net.Listen("tcp", cfg.Admin.Listen)
			if err != nil {
				return fmt.Errorf("admin.listen %s: %w", cfg.Admin.Listen, err)
			}
			log.Info("admin listening", zap.String("addr", ln.Addr().String()))
			return g.Go("admin: serve "+ln.Addr().String(), func(context.Context) error {
				if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
					return err
				}
				return nil
			})
		},
		OnStop: func(ctx context.Context) error {
			err := srv.Shutdown(ctx)
			if err != nil {
				srv.Close() // a handler still busy at the deadline: cut it
			}
			return errors.Join(err, g.Stop(ctx))
		},
	})
}

// Handler is the admin mux.
func Handler(reg *prometheus.Registry, client *natsd.Client, checks *Checks) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		why := readiness(r.Context(), client)
		if why == "" {
			why = checks.NotReady()
		}
		note := ""
		if n := checks.Note(); n != "" {
			note = "\n" + n
		}
		if why != "" {
			http.Error(w, "not ready: "+why+note, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready"+note)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// readiness is "" when NATS is connected and the streams exist, else the reason.
func readiness(ctx context.Context, c *natsd.Client) string {
	if why := c.NotReady(); why != "" {
		return why
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for _, name := range []string{c.LogsStream, c.DeadLetterStream} {
		if _, err := c.JS.Stream(ctx, name); err != nil {
			return fmt.Sprintf("stream %s: %v", name, err)
		}
	}
	return ""
}

// Checks are the readiness conditions of components beside NATS's: each returns "" while
// all is well, else why logcap is not ready (a source that lost a file, for example).
type Checks struct {
	mu   sync.Mutex
	fns  []func() string
	note string
}

// SetNote sets a line /readyz shows under its answer, ready or not: what the last
// configuration reload did, for example.
func (c *Checks) SetNote(note string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.note = note
}

// Note is the line set by SetNote.
func (c *Checks) Note() string {
	if c == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.note
}

// Add registers a condition.
func (c *Checks) Add(notReady func() string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, notReady)
}

// NotReady is "" if every condition holds, else the reasons of those that do not.
func (c *Checks) NotReady() string {
	if c == nil {
		return ""
	}
	c.mu.Lock()
	fns := slices.Clone(c.fns)
	c.mu.Unlock()
	var why []string
	for _, fn := range fns {
		if w := fn(); w != "" {
			why = append(why, w)
		}
	}
	return strings.Join(why, "; ")
}
