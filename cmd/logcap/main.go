// Command logcap captures logs from files and Docker containers into NATS JetStream.
// This file is flag wiring only: what runs is assembled in modules/app.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/spf13/cobra"
	"go.uber.org/multierr"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/modules/app"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:           "logcap",
		Short:         "Capture logs from files and Docker containers into NATS JetStream",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(runCmd(), checkCmd(), versionCmd())
	root.AddCommand(replayCmd())
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "logcap:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitUsage // cobra's own errors: unknown command or flag
}

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, &exitError{exitUsage, err}
	}
	return cfg, nil
}

func runCmd() *cobra.Command {
	var path, level string
	cmd := &cobra.Command{
		Use:   "run [-c FILE]",
		Short: "Run logcap (without -c: the built-in default, embedded NATS, data in ./data, no sources)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			if err := app.Validate(cfg); err != nil { // every error, as check prints them, before anything starts
				return &exitError{exitUsage, err}
			}
			if level != "" {
				cfg.Log.Level = level
			}
			log, err := app.NewLogger(cfg.Log.Level, cfg.Log.Format)
			if err != nil {
				return &exitError{exitUsage, err}
			}
			defer func() { _ = log.Sync() }()
			return serve(cfg, log, level)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "configuration file (YAML)")
	cmd.Flags().StringVar(&level, "log-level", "", "log level: debug, info, warn, error (overrides log.level)")
	return cmd
}

// serve runs logcap until SIGINT or SIGTERM, then stops it within shutdown_timeout. A
// second signal kills the process at once. SIGHUP reloads the configuration file: see
// reload.
func serve(cfg *config.Config, log *zap.Logger, level string) error {
	logLoaded(cfg, log)
	// Two channels: a burst of SIGHUPs coalesces into one reload, and never crowds out the
	// SIGTERM that follows it.
	stop, hup := make(chan os.Signal, 1), make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(stop)
	defer signal.Stop(hup) // until the process ends: a SIGHUP while stopping is ignored

	rt := app.NewRuntime(cfg, log)
	startCtx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := rt.Start(startCtx); err != nil {
		return &exitError{exitFailure, err}
	}
	log.Info("logcap running", zap.String("node", cfg.Node), zap.String("version", version))

	var reason string
	var failed error
	for reason == "" {
		select {
		case sig := <-stop:
			reason = sig.String()
		case sd := <-rt.Wait():
			reason = fmt.Sprintf("shutdown requested (exit code %d)", sd.ExitCode)
		case <-hup:
			if failed = reload(rt, cfg.File, level, log); failed != nil {
				reason = "reload failed: " + failed.Error()
			}
		}
	}
	// From now on SIGINT/SIGTERM have their default action: a second one ends the process.
	signal.Reset(os.Interrupt, syscall.SIGTERM)
	return stopRuntime(rt, cfg.ShutdownTimeout.D(), reason, failed, log)
}

func logLoaded(cfg *config.Config, log *zap.Logger) {
	if cfg.File == "" {
		log.Info("no -c given: running the built-in default configuration",
			zap.String("nats", cfg.NATS.Embedded.Listen), zap.String("data_dir", cfg.DataDir),
			zap.String("admin", cfg.Admin.Listen), zap.Int("sources", 0))
	} else {
		log.Info("configuration loaded", zap.String("file", cfg.File))
	}
	for _, w := range app.Warnings(cfg) {
		log.Warn(w)
	}
}

// stopRuntime stops logcap within timeout; failed is a reload failure that ended it (exit 1).
func stopRuntime(rt *app.Runtime, timeout time.Duration, reason string, failed error, log *zap.Logger) error {
	log.Info("stopping", zap.String("reason", reason), zap.Duration("shutdown_timeout", timeout))
	began := time.Now()
	stopCtx, cancelStop := context.WithTimeout(context.Background(), timeout)
	defer cancelStop()
	if err := rt.Stop(stopCtx); err != nil {
		return &exitError{exitFailure, fmt.Errorf("stop after %v: %w", time.Since(began).Round(time.Millisecond), multierr.Combine(failed, err))}
	}
	log.Info("stopped", zap.Duration("took", time.Since(began)))
	if failed != nil {
		return &exitError{exitFailure, failed}
	}
	return nil
}

func checkCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "check -c FILE",
		Short: "Validate a configuration and print it as logcap understands it (secrets masked)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return &exitError{exitUsage, errors.New("check: -c FILE is required")}
			}
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			if err := app.Validate(cfg); err != nil {
				return &exitError{exitUsage, err}
			}
			for _, w := range app.Warnings(cfg) {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
			}
			out, err := cfg.Redacted()
			if err != nil {
				return &exitError{exitFailure, err}
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "configuration file (YAML)")
	return cmd
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print logcap's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			rev := ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						rev = " " + s.Value
					}
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "logcap %s%s (%s, nats-server %s)\n", version, rev, runtime.Version(), server.VERSION)
		},
	}
}
