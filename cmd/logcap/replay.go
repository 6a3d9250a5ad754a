package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/replay"
	"github.com/logcap/logcap/sinks"
)

type replayFlags struct {
	config, stream, subject string
	since, startSeq, until  string
	to, file                string
	stdout, follow          bool
	rebuild                 string
}

func replayCmd() *cobra.Command {
	var f replayFlags
	cmd := &cobra.Command{
		Use:   "replay -c FILE (--to SINK | --stdout | --file PATH) [--stream S] [--subject F] [--since T | --start-seq N] [--until T] [--follow]",
		Short: "Read a stored range of a stream again, into a sink of the config, stdout or a file",
		Long: `replay reads a stream (default LOGS) through an ephemeral ordered consumer, from the
start point (--start-seq, --since, or the stream's first message) to the stream's last
sequence at the time replay starts (or the last message stored before --until), and writes
it to the destination. --follow keeps reading new messages until SIGINT or SIGTERM.
replay connects as a client to the NATS that logcap run serves (nats.urls, else
nats.embedded.listen); it never starts a server of its own.

--stdout and --file write the payloads exactly as stored: a file's original bytes, docker
logs --timestamps lines; for a processor's stream, one JSON entry per line (NDJSON). --to SINK writes records
through the sink named SINK in the config (its type and options; not its input).

--rebuild PROCESSOR empties the processor's derived stream and resets its durable consumer
to the start of its input; the processor in the running logcap derives the stream again,
and replay shows its progress until it is done. It takes no other flag but -c.

TIME is RFC 3339 (2026-11-27T13:00:00Z) or a duration back from now (90m, 2h).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.rebuild != "" {
				return runRebuild(cmd, f)
			}
			return runReplay(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.config, "config", "c", "", "configuration file (YAML) of the logcap whose streams to read")
	fl.StringVar(&f.stream, "stream", "LOGS", "stream to read")
	fl.StringVar(&f.subject, "subject", "", "subject filter, e.g. 'logs.file.>' or 'logs.docker.*.nginx' (default: all)")
	fl.StringVar(&f.since, "since", "", "start at the first message stored at or after TIME")
	fl.StringVar(&f.startSeq, "start-seq", "", "start at stream sequence N")
	fl.StringVar(&f.until, "until", "", "stop before the first message stored after TIME (default: the stream's last sequence at start)")
	fl.StringVar(&f.to, "to", "", "write through the sink named SINK in the config")
	fl.BoolVar(&f.stdout, "stdout", false, "write the raw payloads to stdout")
	fl.StringVar(&f.file, "file", "", "write the raw payloads to PATH (created or truncated)")
	fl.BoolVar(&f.follow, "follow", false, "keep reading new messages until SIGINT or SIGTERM")
	fl.StringVar(&f.rebuild, "rebuild", "", "re-derive the stream of processor PROCESSOR from its input (purge + consumer reset), and wait until done")
	return cmd
}

func usageErr(format string, a ...any) error {
	return &exitError{exitUsage, fmt.Errorf("replay: "+format, a...)}
}

// parseWhen reads an RFC 3339 time or a duration back from now.
func parseWhen(flag, v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usageErr("--%s %q: want an RFC 3339 time (2026-11-27T13:00:00Z) or a duration back from now (90m)", flag, v)
}

// replaySpec checks the flags' combinations and values.
func replaySpec(f replayFlags, now time.Time) (replay.Spec, error) {
	spec := replay.Spec{Stream: f.stream, Subject: f.subject, Follow: f.follow}
	if f.config == "" {
		return spec, usageErr("-c FILE is required")
	}
	if f.rebuild != "" {
		if f.to != "" || f.stdout || f.file != "" || f.since != "" || f.startSeq != "" || f.until != "" || f.follow || f.subject != "" || f.stream != "LOGS" {
			return spec, usageErr("--rebuild PROCESSOR takes no other flag but -c: it re-derives the processor's whole stream")
		}
		return spec, nil
	}
	dests := 0
	for _, set := range []bool{f.to != "", f.stdout, f.file != ""} {
		if set {
			dests++
		}
	}
	if dests != 1 {
		return spec, usageErr("choose exactly one destination: --to SINK, --stdout or --file PATH")
	}
	if f.stream == "" {
		return spec, usageErr("--stream must not be empty")
	}
	if f.since != "" && f.startSeq != "" {
		return spec, usageErr("--since and --start-seq are exclusive: give one start point")
	}
	if f.until != "" && f.follow {
		return spec, usageErr("--until and --follow are exclusive: --follow runs until SIGINT")
	}
	var err error
	if f.startSeq != "" {
		if spec.StartSeq, err = strconv.ParseUint(f.startSeq, 10, 64); err != nil || spec.StartSeq == 0 {
			return spec, usageErr("--start-seq %q: want a stream sequence, 1 or more", f.startSeq)
		}
	}
	if f.since != "" {
		if spec.Since, err = parseWhen("since", f.since, now); err != nil {
			return spec, err
		}
	}
	if f.until != "" {
		if spec.Until, err = parseWhen("until", f.until, now); err != nil {
			return spec, err
		}
		if !spec.Since.IsZero() && spec.Until.Before(spec.Since) {
			return spec, usageErr("--until %s is before --since %s", spec.Until.Format(time.RFC3339Nano), spec.Since.Format(time.RFC3339Nano))
		}
	}
	return spec, nil
}

// replaySink builds the sink named name from the config.
func replaySink(cfg *config.Config, name string) (sinks.Sink, config.Backoff, config.Batch, error) {
	var names []string
	for i, c := range cfg.Sinks {
		if c.Name == name {
			s, err := sinks.New(c.Type, c.Name, c.Options)
			if err != nil {
				return nil, c.Backoff, c.Batch, usageErr("--to %s: %w", name, cfg.WrapOptionsError(fmt.Sprintf("sinks[%d]", i), err))
			}
			return s, c.Backoff, c.Batch, nil
		}
		names = append(names, c.Name)
	}
	slices.Sort(names)
	return nil, config.Backoff{}, config.Batch{}, usageErr("--to %s: the config has no sink of that name (it has: %v)", name, names)
}

func runReplay(cmd *cobra.Command, f replayFlags) (err error) {
	spec, err := replaySpec(f, time.Now())
	if err != nil {
		return err
	}
	cfg, err := loadConfig(f.config)
	if err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	if _, err := natsURLs(cfg); err != nil {
		return usageErr("%w", err)
	}

	var out replay.Output
	var finish func() error
	switch {
	case f.stdout:
		out = replay.NewRawOutput(cmd.OutOrStdout())
	case f.file != "":
		fh, err := os.OpenFile(f.file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return usageErr("--file: %w", err)
		}
		out = replay.NewRawOutput(fh)
		finish = func() error {
			// The file is the result: make it durable, and say so if it is not.
			if err := fh.Sync(); err != nil {
				fh.Close()
				return fmt.Errorf("replay: %s: fsync: %w", f.file, err)
			}
			return fh.Close()
		}
	default:
		s, backoff, batch, err := replaySink(cfg, f.to)
		if err != nil {
			return err
		}
		finish = s.Close
		out = &replay.SinkOutput{Sink: s, Name: f.to, MaxEntries: batch.MaxEntries, MaxBytes: int(batch.MaxBytes), BackoffBase: backoff.Initial.D(), BackoffMax: backoff.Max.D(), OnRetry: func(attempt int, err error, wait time.Duration) {
			fmt.Fprintf(stderr, "logcap: replay: sink %s: attempt %d failed, retrying in %v: %v\n", f.to, attempt, wait.Round(time.Millisecond), err)
		}}
	}
	defer func() {
		if finish != nil {
			if ferr := finish(); ferr != nil && err == nil {
				err = &exitError{exitFailure, ferr}
			}
		}
	}()

	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	conn, closeConn, err := dialReplay(cfg, spec.Follow)
	if err != nil {
		return err
	}
	defer closeConn()

	prog := progressFor(stderr)
	if _, err := replay.Run(ctx, conn.JS, spec, out, prog); err != nil {
		if errors.Is(err, replay.ErrStreamNotFound) {
			return &exitError{exitFailure, fmt.Errorf("replay: stream %s not found (nats stream ls lists them)", spec.Stream)}
		}
		return &exitError{exitFailure, fmt.Errorf("replay: %w", err)}
	}
	return nil
}

func runRebuild(cmd *cobra.Command, f replayFlags) error {
	if _, err := replaySpec(f, time.Now()); err != nil {
		return err
	}
	cfg, err := loadConfig(f.config)
	if err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	if !slices.ContainsFunc(cfg.Processors, func(p config.Processor) bool { return p.Name == f.rebuild }) {
		var names []string
		for _, p := range cfg.Processors {
			names = append(names, p.Name)
		}
		return usageErr("--rebuild %s: the config has no processor of that name (it has: %v)", f.rebuild, names)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	conn, closeConn, err := dialReplay(cfg, true)
	if err != nil {
		return err
	}
	defer closeConn()
	prog := progressFor(stderr)
	opts := replay.RebuildOptions{OnIdle: func(consumer, stream string) {
		fmt.Fprintf(stderr, "logcap: replay: no processor pulls from consumer %s on %s: is logcap run running with this config? (waiting; Ctrl-C stops waiting, the rebuild stays armed)\n", consumer, stream)
	}}
	if _, err := replay.Rebuild(ctx, conn.JS, cfg, f.rebuild, opts, prog); err != nil {
		return &exitError{exitFailure, fmt.Errorf("replay: %w", err)}
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// dialReplay connects as a client to the NATS `logcap run` serves; the returned func closes
// the connection, bounded.
func dialReplay(cfg *config.Config, follow bool) (*natsConn, func(), error) {
	conn, err := dialNATS(cfg, follow)
	if err != nil {
		return nil, nil, &exitError{exitFailure, fmt.Errorf("replay: %w", err)}
	}
	return conn, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(ctx)
	}, nil
}

// progressFor is a progress bar on a terminal, a one-line summary otherwise.
func progressFor(w io.Writer) replay.Progress {
	if isTerminal(w) {
		return replay.NewBar(w)
	}
	return replay.Summary{W: w}
}
