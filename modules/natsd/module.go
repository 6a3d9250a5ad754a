package natsd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/modules/lifecycle"
	"github.com/logcap/logcap/retry"
	"github.com/logcap/logcap/streams"
)

// Module provides the *Client. Its stop hook runs last (fx stops in reverse), after every
// consumer and publisher stopped: drain the connection, then shut the embedded server down.
var Module = fx.Module("natsd", fx.Provide(New))

// New starts the embedded server (if configured), connects, and provisions the streams.
func New(p Params) (*Client, error) {
	cfg, log := p.Cfg, p.Log.Named("natsd")
	n := &natsd{cfg: cfg, log: log, group: lifecycle.New("natsd", log)}
	n.client = NewClient(nil, nil)
	if e := cfg.NATS.Embedded; e != nil {
		var restart func() error
		if e.Cluster == nil {
			restart = func() error { return restartJetStream(n.srv, cfg.DataDir) }
		}
		space, err := newStoreSpace(cfg.DataDir, uint64(e.StoreReserve), restart, p.Reg, log.Named("space"))
		if err != nil {
			return nil, err
		}
		n.client.Space = space
	}
	p.LC.Append(fx.Hook{OnStart: n.start, OnStop: n.stop})
	n.client.LogsStream = cfg.Streams.Logs.Name
	n.client.DeadLetterStream = cfg.Streams.DeadLetter.Name
	return n.client, nil
}

// Params are New's dependencies; without a Registerer (tests) the metrics are not registered.
type Params struct {
	fx.In
	LC  fx.Lifecycle
	Cfg *config.Config
	Reg prometheus.Registerer `optional:"true"`
	Log *zap.Logger
}

type natsd struct {
	cfg    *config.Config
	log    *zap.Logger
	group  *lifecycle.Group
	srv    *server.Server
	client *Client
	closed chan struct{}
	// lastConnErr is the last connect failure logged, so a long outage logs once.
	lastConnErr atomicString
	// wasConnected: a stop that finds the connection lost must say so (nothing could be
	// flushed); one that never connected (e.g. wrong credentials) has nothing to flush.
	wasConnected atomic.Bool
}

func (n *natsd) start(ctx context.Context) error {
	var opts []nats.Option
	urls := n.cfg.NATS.URLs
	if n.cfg.NATS.Embedded != nil {
		var err error
		if urls, opts, err = n.startEmbedded(); err != nil {
			return err
		}
	} else {
		auth, err := authOptions(n.cfg.NATS)
		if err != nil {
			return err
		}
		opts = append(opts, auth...)
	}
	n.closed = make(chan struct{})
	opts = append(opts, n.connOptions()...)
	// Before Connect: its handlers may already report why a first attempt failed.
	n.client.setNotReady(fmt.Sprintf("nats: not connected to %v yet", urls))
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		n.shutdownServer()
		return fmt.Errorf("nats connect %v: %w", urls, err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(30*time.Second))
	if err != nil {
		nc.Close()
		n.shutdownServer()
		return fmt.Errorf("jetstream: %w", err)
	}
	n.client.Conn, n.client.JS = nc, js
	return n.provisionAtStart(ctx, urls)
}

// startEmbedded starts the embedded server and returns where to connect to it and the
// connection options it needs (in process, credentials). It warns about an embedded NATS
// or cluster without authentication.
func (n *natsd) startEmbedded() ([]string, []nats.Option, error) {
	var opts []nats.Option
	so, err := serverOptions(n.cfg)
	if err != nil {
		return nil, nil, err
	}
	if n.srv, err = startServer(so, n.log, n.client.Space.serverError); err != nil {
		return nil, nil, err
	}
	if err := n.group.Go("natsd: store space", n.client.Space.Run); err != nil {
		n.shutdownServer()
		return nil, nil, err
	}
	if so.DontListen {
		opts = append(opts, nats.InProcessServer(n.srv))
	}
	urls := []string{n.srv.ClientURL()}
	n.log.Info("embedded nats-server started", zap.String("listen", n.cfg.NATS.Embedded.Listen), zap.String("store", so.StoreDir))
	if EmbeddedAuth(n.cfg) {
		o, err := UserOption(n.cfg.DataDir, LogcapUser)
		if err != nil {
			n.shutdownServer()
			return nil, nil, err
		}
		opts = append(opts, o, nats.CustomInboxPrefix(LogcapInboxPrefix))
		n.log.Info("embedded nats-server requires credentials",
			zap.String("logcap", PasswordFile(n.cfg.DataDir, LogcapUser)),
			zap.String("read-only user "+ReaderUser, PasswordFile(n.cfg.DataDir, ReaderUser)))
	} else {
		n.log.Warn("!!! nats.embedded.auth is none: the embedded NATS takes any client without credentials; " +
			"any local user can publish forged lines into logs.>, stop a file's capture, purge and delete the streams")
	}
	if c := n.cfg.NATS.Embedded.Cluster; c != nil && c.User == "" {
		n.log.Warn("!!! nats.embedded.cluster has no user and password: any host that reaches " + c.Listen +
			" can join the cluster as a route and read and write every stream; set nats.embedded.cluster.user, password (and tls)")
	}
	return urls, opts, nil
}

// connOptions are the connection's options: reconnect for ever, and handlers that keep
// /readyz and the log saying why logcap is not connected.
func (n *natsd) connOptions() []nats.Option {
	return []nats.Option{
		nats.Name("logcap " + n.cfg.Node),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true), // an external NATS down at start: keep trying, /readyz says why
		nats.CustomReconnectDelay(reconnectDelay),
		nats.Timeout(n.cfg.NATS.ConnectTimeout.D()),
		nats.ReconnectBufSize(-1), // publishes fail fast while disconnected; publishers retry with the same id
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			n.log.Warn("nats disconnected", zap.Error(err))
		}),
		// Credentials may be rotated in while logcap waits: without this, nats.go closes the
		// connection for good after the same authorization error twice, and logcap would
		// never connect again.
		nats.IgnoreAuthErrorAbort(),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) { n.connectFailed(err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			n.wasConnected.Store(true)
			n.lastConnErr.Store("")
			n.log.Info("nats reconnected", zap.String("url", nc.ConnectedUrlRedacted()))
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			n.wasConnected.Store(true)
			n.log.Info("nats connected", zap.String("url", nc.ConnectedUrlRedacted()))
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(n.closed) }),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			if sub == nil && !nc.IsConnected() {
				// A connect attempt the server refused (authorization): nats.go reports it
				// here, not to the reconnect handler.
				n.connectFailed(err)
				return
			}
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			n.log.Warn("nats async error", zap.String("subject", subj), zap.Error(err))
		}),
	}
}

// provisionAtStart provisions the streams once if connected (bounded) and, if that did not
// work yet, keeps trying in the background; an existing incompatible stream fails the
// start at once.
func (n *natsd) provisionAtStart(ctx context.Context, urls []string) error {
	if n.client.Conn.IsConnected() {
		// Bounded: a cluster without a JetStream leader yet does not answer at all.
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := n.provision(pctx)
		cancel()
		var incompatible *streams.IncompatibleError
		if errors.As(err, &incompatible) {
			// An existing stream logcap must not touch: the user must see it at once.
			n.stop(ctx)
			return err
		}
		if err == nil {
			n.client.MarkReady()
			return nil
		}
		// E.g. a cluster still electing its JetStream leader, or not enough peers yet for
		// replicas: 3 while the other nodes start. Keep trying; /readyz says why.
		n.client.setNotReady(err.Error())
		n.log.Warn("provisioning streams failed; retrying in the background", zap.Error(err))
	} else {
		n.log.Warn("nats not reachable at start; retrying in the background", zap.Strings("urls", urls))
	}
	return n.group.Go("natsd: provision streams", n.provisionLoop)
}

// connectFailed records why a connect attempt failed: /readyz shows it, and each distinct
// reason is logged once (a NATS down for an hour is one line, not thousands).
func (n *natsd) connectFailed(err error) {
	why := err.Error()
	if !strings.HasPrefix(why, "nats: ") {
		why = "nats: " + why
	}
	if why != n.lastConnErr.Swap(why) {
		n.log.Warn("nats connect attempt failed; retrying", zap.Error(err))
	}
	if !n.client.isReady() {
		n.client.setNotReady(why)
	}
}

// provisionLoop waits for the connection and provisions, retrying with backoff.
func (n *natsd) provisionLoop(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		if n.client.Conn.IsConnected() {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := n.provision(pctx)
			cancel()
			if err == nil {
				n.client.MarkReady()
				return nil
			}
			n.client.setNotReady(err.Error())
			n.log.Warn("provisioning streams failed; retrying", zap.Error(err))
		}
		if !retry.Sleep(ctx, reconnectDelay(attempt)) {
			return nil
		}
	}
}

func (n *natsd) provision(ctx context.Context) error {
	for _, spec := range []struct {
		cfg      config.StreamSpec
		subjects []string
	}{
		{n.cfg.Streams.Logs, []string{streams.LogsPrefix + ".>"}},
		{n.cfg.Streams.DeadLetter, []string{streams.DeadLetterPrefix + ".>"}},
	} {
		s := streams.SpecFrom(spec.cfg, spec.subjects)
		var err error
		if *spec.cfg.Provision {
			_, err = streams.Provision(ctx, n.client.JS, s)
		} else {
			_, err = streams.Check(ctx, n.client.JS, s)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// stop drains the connection (flushing what publishers sent, waiting for the client's
// goroutines to end), then shuts the embedded server down; bounded by ctx.
func (n *natsd) stop(ctx context.Context) error {
	errs := []error{n.group.Stop(ctx)}
	if nc := n.client.Conn; nc != nil {
		if n.wasConnected.Load() && !nc.IsConnected() && !nc.IsClosed() {
			// NATS went away and did not come back: the last publishes and acks are
			// unconfirmed (the streams and consumers redeliver or dedup them next run).
			why := n.lastConnErr.Load()
			if why == "" {
				why = nc.Status().String()
			}
			errs = append(errs, fmt.Errorf("natsd: stop: NATS %s unreachable (%s): pending publishes and acks could not be flushed",
				strings.Join(n.urls(), ","), why))
		}
		if err := nc.Drain(); err != nil {
			nc.Close() // never connected, or already closing: close at once
		}
		select {
		case <-n.closed:
		case <-ctx.Done():
			nc.Close()
			errs = append(errs, fmt.Errorf("natsd: drain: %w", ctx.Err()))
			<-n.closed // Close runs the closed handler before it returns its goroutines
		}
	}
	n.shutdownServer()
	return errors.Join(errs...)
}

func (n *natsd) urls() []string {
	if n.srv != nil {
		return []string{n.srv.ClientURL()}
	}
	return n.cfg.NATS.URLs
}

func (n *natsd) shutdownServer() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

// reconnectDelay backs off from 100ms to 5s with jitter, so many agents do not stampede a
// recovering cluster.
func reconnectDelay(attempts int) time.Duration { return reconnectPolicy.Delay(attempts) }

var reconnectPolicy = retry.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: retry.Equal}

func authOptions(c config.NATS) ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.NKeySeed != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeySeed)
		if err != nil {
			return nil, fmt.Errorf("nats.nkey_seed %s: %w", c.NKeySeed, err)
		}
		opts = append(opts, o)
	case c.Creds != "":
		opts = append(opts, nats.UserCredentials(c.Creds))
	}
	if t := c.TLS; t != nil {
		if t.CA != "" {
			opts = append(opts, nats.RootCAs(t.CA))
		}
		if t.Cert != "" || t.Key != "" {
			opts = append(opts, nats.ClientCert(t.Cert, t.Key))
		}
		if t.InsecureSkipVerify {
			opts = append(opts, nats.Secure(&tlsConfigInsecure))
		}
	}
	return opts, nil
}
