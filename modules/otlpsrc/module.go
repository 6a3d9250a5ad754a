// Package otlpsrc runs the OTLP receiver sources (`type: otlp`): for each it listens at
// start (an address in use fails the start, naming it) and serves the core handler
// (sources/otlp) until stop, under one lifecycle group.
package otlpsrc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/modules/lifecycle"
	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/sources"
	core "github.com/logcap/logcap/sources/otlp"
	"github.com/logcap/logcap/streams"
)

// Type is the source type this module runs.
const Type = core.Type

// shutdownGrace bounds how long a stop waits for requests in hand (their publishes) before
// it closes their connections; the senders then retry.
const shutdownGrace = 5 * time.Second

// Module serves every `type: otlp` source of the configuration.
var Module = fx.Module("otlpsrc", fx.Invoke(start))

type params struct {
	fx.In
	LC     fx.Lifecycle
	Config *config.Config
	Client *natsd.Client
	Log    *zap.Logger
	Reg    prometheus.Registerer
	Gate   streams.Gate `name:"sources" optional:"true"` // memory_limit, when_full
}

func start(p params) error {
	srcs, opts, err := sources.Select[core.Options](p.Config, Type)
	if err != nil {
		return err
	}
	if len(srcs) == 0 {
		return nil
	}
	met, err := core.NewMetrics(p.Reg)
	if err != nil {
		return fmt.Errorf("otlpsrc: metrics: %w", err)
	}
	log := p.Log.Named("otlp")
	g := lifecycle.New("otlpsrc", p.Log)
	lifecycle.StartHook(p.LC, g, func(_ context.Context, closers *lifecycle.Closers) error {
		for i, src := range srcs {
			rc := core.NewReceiver(src.Name, p.Config.Node, opts[i], p.Client.JS, p.Gate, log, met)
			rc.Ready = p.Client.Ready()
			if err := serve(g, closers, src.Name, opts[i], rc, log); err != nil {
				return fmt.Errorf("source %s: %w", src.Name, err)
			}
		}
		return nil
	})
	return nil
}

// serve listens on o.Listen and serves h in g until g stops: then the server stops taking
// requests, waits up to shutdownGrace for those in hand, and closes.
func serve(g *lifecycle.Group, closers *lifecycle.Closers, name string, o core.Options, h http.Handler, log *zap.Logger) error {
	tlsCfg, err := serverTLS(o.TLS)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.Listen, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: zap.NewStdLog(log.Named("http"))}
	closers.Add(func() error { _ = ln.Close(); return nil }) // a failed start: Serve never ran
	addr := ln.Addr().String()
	log.Info("otlp source listening", zap.String("source", name), zap.String("addr", addr), zap.Bool("tls", tlsCfg != nil))
	if err := g.Go("otlpsrc: serve "+name+" "+addr, func(context.Context) error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve %s: %w", addr, err)
		}
		return nil
	}); err != nil {
		return err
	}
	return g.Go("otlpsrc: shutdown "+name, func(ctx context.Context) error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
			return fmt.Errorf("stop %s: requests still in hand after %v, cut: %w", addr, shutdownGrace, err)
		}
		return nil
	})
}

// serverTLS builds the server's TLS config; with a client CA, senders must present a
// certificate it signed.
func serverTLS(o *core.TLS) (*tls.Config, error) {
	if o == nil {
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(o.Cert, o.Key)
	if err != nil {
		return nil, fmt.Errorf("tls.cert: %w", err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if o.ClientCA != "" {
		pem, err := os.ReadFile(o.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("tls.client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.client_ca: %s: no PEM certificate found", o.ClientCA)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}
