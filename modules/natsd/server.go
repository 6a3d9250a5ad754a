// Package natsd is logcap's NATS: an embedded nats-server with JetStream (the default), or a
// connection to an external deployment; the one client connection every component shares;
// and the streams logcap provisions on it.
package natsd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
)

// serverOptions turns the embedded config into nats-server options.
func serverOptions(cfg *config.Config) (*server.Options, error) {
	e := cfg.NATS.Embedded
	// nats-server keeps its files in StoreDir/jetstream: data_dir/jetstream.
	storeDir := cfg.DataDir
	if err := checkWritable(storeDir); err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", cfg.DataDir, err)
	}
	o := &server.Options{
		ServerName: cfg.Node,
		JetStream:  true,
		StoreDir:   storeDir,
		NoSigs:     true, // else nats-server installs its own SIGTERM handler and calls os.Exit
		MaxPayload: int32(e.MaxPayload),
		// A patched nats-server (third_party/nats-server/PATCH.md): without it the file store
		// holds every block it wrote or read for 10 s, ingest rate × 10 s of memory.
		JetStreamCacheExpire: e.CacheExpire.D(),
	}
	// nats-server's default store limit is 75 % of the space free at start, and it reserves
	// every stream's max_bytes against it, so on a disk with less free space than the streams
	// may one day hold a stream could not be made at all (a processor's derived stream: the
	// defaults need ~28 GB free for one). The disk's size is the real bound; a disk that
	// fills up is the store_reserve guard's (space.go), which holds capture instead.
	if size, err := diskSize(storeDir); err == nil {
		o.JetStreamMaxStore = size
	}
	if e.Auth != config.AuthNone {
		users, err := serverUsers(cfg)
		if err != nil {
			return nil, err
		}
		o.Users = users
	}
	if e.Listen == "none" {
		o.DontListen = true
	} else {
		host, port, err := splitHostPort(e.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats.embedded.listen: %w", err)
		}
		o.Host, o.Port = host, port
		if port == 0 {
			o.Port = server.RANDOM_PORT // ":0" means any free port, as everywhere in Go (nats-server reads 0 as 4222)
		}
	}
	switch e.SyncInterval {
	case "always":
		o.SyncAlways = true
	default:
		d, err := time.ParseDuration(e.SyncInterval)
		if err != nil {
			return nil, fmt.Errorf("nats.embedded.sync_interval: %w", err)
		}
		o.SyncInterval = d
	}
	if c := e.Cluster; c != nil {
		if err := clusterOptions(o, c); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// clusterOptions sets the route options of nats.embedded.cluster: listen, routes, the
// route user and password, TLS.
func clusterOptions(o *server.Options, c *config.Cluster) error {
	host, port, err := splitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("nats.embedded.cluster.listen: %w", err)
	}
	o.Cluster.Name, o.Cluster.Host, o.Cluster.Port = c.Name, host, port
	if port == 0 {
		o.Cluster.Port = server.RANDOM_PORT
	}
	o.Routes = server.RoutesFromStr(strings.Join(c.Routes, ","))
	if c.User != "" {
		// Accept only routes that present the pair; present it on the routes dialed.
		o.Cluster.Username, o.Cluster.Password = c.User, string(c.Password)
		for _, r := range o.Routes {
			if r.User == nil {
				r.User = url.UserPassword(c.User, string(c.Password))
			}
		}
	}
	if t := c.TLS; t != nil {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: t.Cert, KeyFile: t.Key, CaFile: t.CA,
			Verify:   t.CA != "", // mutual TLS: a peer without a cert signed by ca is refused
			Insecure: t.InsecureSkipVerify,
		})
		if err != nil {
			return fmt.Errorf("nats.embedded.cluster.tls: %w", err)
		}
		if t.CA != "" {
			// As nats-server does for a cluster block in its config file: a node both accepts
			// and dials routes, so the CA verifies the peers either way.
			tc.RootCAs = tc.ClientCAs
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
		o.Cluster.TLSConfig = tc
		o.Cluster.TLSTimeout = 5
	}
	return nil
}

// startServer starts the embedded server and waits until it takes connections.
func startServer(o *server.Options, log *zap.Logger, onError func(msg string)) (*server.Server, error) {
	s, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	s.SetLoggerV2(serverLogger{log.Named("nats-server").Sugar(), onError}, false, false, false)
	s.Start()
	// A port in use makes Start log an error and the server never becomes ready.
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		addr := net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
		return nil, fmt.Errorf("nats server: not ready after 15s (is %s already in use? set nats.embedded.listen)", addr)
	}
	if !s.JetStreamEnabled() {
		s.Shutdown()
		return nil, fmt.Errorf("nats server: JetStream did not start (store %s)", o.StoreDir)
	}
	return s, nil
}

func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("not writable: %w", err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("not writable: %w", err)
	}
	name := f.Name()
	return errors.Join(f.Close(), os.Remove(name))
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", hp)
	}
	return host, port, nil
}

// serverLogger routes nats-server's log through zap. Its notices are info, its debug is
// debug; traces are off. onError is told every error (StoreSpace watches for write errors).
type serverLogger struct {
	l       *zap.SugaredLogger
	onError func(msg string)
}

func (s serverLogger) Noticef(f string, v ...any) { s.l.Infof(f, v...) }
func (s serverLogger) Warnf(f string, v ...any)   { s.l.Warnf(f, v...) }
func (s serverLogger) Fatalf(f string, v ...any)  { s.l.Errorf(f, v...) }
func (s serverLogger) Errorf(f string, v ...any) {
	msg := fmt.Sprintf(f, v...)
	s.l.Error(msg)
	if s.onError != nil {
		s.onError(msg)
	}
}
func (s serverLogger) Debugf(f string, v ...any) { s.l.Debugf(f, v...) }
func (s serverLogger) Tracef(f string, v ...any) {}

//nolint:gosec // only with nats.tls.insecure_skip_verify: true, which the user asked for.
var tlsConfigInsecure = tls.Config{InsecureSkipVerify: true}
