package natsd_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/modules/natsd"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func baseConfig(t *testing.T) *config.Config {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Node = "t"
	return cfg
}

func run(t *testing.T, cfg *config.Config) (*natsd.Client, error) {
	t.Helper()
	var c *natsd.Client
	app := fxtest.New(t, fx.Supply(cfg, zap.NewNop()), natsd.Module, fx.Populate(&c), fx.NopLogger)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := app.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return c, nil
}

func TestEmbeddedInProcess(t *testing.T) {
	cfg := baseConfig(t)
	cfg.NATS.Embedded.Listen = "none"
	c, err := run(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if why := c.NotReady(); why != "" {
		t.Fatalf("not ready: %s", why)
	}
	if _, err := c.JS.Stream(context.Background(), "LOGS"); err != nil {
		t.Fatal(err)
	}
}

// rotatingAuth accepts user logcap with the password it holds now, and counts refusals.
type rotatingAuth struct {
	password atomic.Pointer[string]
	refused  atomic.Int64
}

func (a *rotatingAuth) Check(c server.ClientAuthentication) bool {
	if o := c.GetOpts(); o.Username == "logcap" && o.Password == *a.password.Load() {
		return true
	}
	a.refused.Add(1)
	return false
}

func TestExternalAuth(t *testing.T) {
	auth := &rotatingAuth{}
	pw := "s3cret"
	auth.password.Store(&pw)
	opts := natstest.Options(t.TempDir())
	opts.CustomClientAuthentication = auth
	s := natstest.RunServer(t, opts)

	t.Run("user and password", func(t *testing.T) {
		cfg := baseConfig(t)
		cfg.NATS.Embedded = nil
		cfg.NATS.URLs = []string{s.ClientURL()}
		cfg.NATS.User, cfg.NATS.Password = "logcap", "s3cret"
		c, err := run(t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if why := c.NotReady(); why != "" {
			t.Fatalf("not ready: %s", why)
		}
	})
	t.Run("wrong password, then rotated in", func(t *testing.T) {
		cfg := baseConfig(t)
		cfg.NATS.Embedded = nil
		cfg.NATS.URLs = []string{s.ClientURL()}
		cfg.NATS.User, cfg.NATS.Password = "logcap", "next"
		// logcap keeps retrying (credentials may be rotated in), and /readyz names the cause.
		before := auth.refused.Load()
		c, err := run(t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		natstest.Eventually(t, 20*time.Second, func() error {
			if why := c.NotReady(); !strings.Contains(why, "uthorization") {
				return fmt.Errorf("readiness %q does not name the authorization error", why)
			}
			// nats.go used to close the connection for good after the same refusal twice.
			if n := auth.refused.Load() - before; n < 3 {
				return fmt.Errorf("%d attempts refused", n)
			}
			return nil
		})
		next := "next"
		auth.password.Store(&next)
		natstest.Eventually(t, 20*time.Second, func() error {
			if why := c.NotReady(); why != "" {
				return fmt.Errorf("not ready after the password was rotated in: %s", why)
			}
			return nil
		})
	})
}

func TestTokenAuth(t *testing.T) {
	opts := natstest.Options(t.TempDir())
	opts.Authorization = "tok3n"
	s := natstest.RunServer(t, opts)
	cfg := baseConfig(t)
	cfg.NATS.Embedded = nil
	cfg.NATS.URLs = []string{s.ClientURL()}
	cfg.NATS.Token = "tok3n"
	c, err := run(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if why := c.NotReady(); why != "" {
		t.Fatalf("not ready: %s", why)
	}
}
