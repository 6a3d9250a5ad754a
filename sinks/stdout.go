package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/logcap/logcap/config"
)

func init() {
	Register("stdout", func(name string, opts config.Options) (Sink, error) {
		var o StdoutOptions
		if err := opts.Decode(&o, config.PipelineKeys...); err != nil {
			return nil, fmt.Errorf("stdout sink %s: %w", name, err)
		}
		s, err := NewStdout(o, os.Stdout)
		if err != nil {
			return nil, fmt.Errorf("stdout sink %s: %w", name, err)
		}
		return s, nil
	})
}

// StdoutOptions is the `type: stdout` mapping.
type StdoutOptions struct {
	// Format is "raw" (default: the entry's original bytes, or its message, one per line)
	// or "json" (one event.Entry JSON document per line).
	Format string `yaml:"format"`
}

// StdoutSink writes each record as one line to a writer (os.Stdout in production).
type StdoutSink struct {
	w      io.Writer
	format string
	buf    []byte
}

var (
	_ Sink         = (*StdoutSink)(nil)
	_ FieldsReader = (*StdoutSink)(nil)
)

// NewStdout validates o and returns a sink writing to w.
func NewStdout(o StdoutOptions, w io.Writer) (*StdoutSink, error) {
	format, err := lineFormat(o.Format, "raw")
	if err != nil {
		return nil, err
	}
	return &StdoutSink{w: w, format: format}, nil
}

// Write writes the whole batch with one Write call, so lines of concurrent writers sharing the
// terminal do not interleave within a batch as long as the writer keeps single writes whole.
func (s *StdoutSink) Write(ctx context.Context, batch []Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	buf := s.buf[:0]
	for i := range batch {
		var err error
		if buf, err = appendLine(buf, &batch[i], s.format); err != nil {
			return Permanent(fmt.Errorf("stdout: record %s: %w", batch[i].ID(), err))
		}
	}
	s.buf = buf[:0]
	if len(buf) == 0 {
		return nil
	}
	if _, err := s.w.Write(buf); err != nil {
		return fmt.Errorf("stdout: write: %w", err)
	}
	return nil
}

// ReadsFields: only the json format writes the fields.
func (s *StdoutSink) ReadsFields() bool { return s.format != "raw" }

// Check always succeeds: there is nothing to probe on a standard stream.
func (s *StdoutSink) Check(context.Context) error { return nil }

// Close does not close the writer: the process's stdout is not the sink's to close.
func (s *StdoutSink) Close() error { return nil }

// lineFormat validates a `format:` value of the line-oriented sinks.
func lineFormat(v, def string) (string, error) {
	switch v {
	case "":
		return def, nil
	case "raw", "json":
		return v, nil
	}
	return "", fmt.Errorf("format: %q is not one of raw, json", v)
}

// appendLine appends r as one line in format raw or json. A raw entry that spans lines
// (multiline) keeps its inner newlines: the line is the entry, not a physical line.
func appendLine(buf []byte, r *Record, format string) ([]byte, error) {
	if format == "json" {
		// Unescaped <, > and &: these lines are read by people and log tools, not browsers.
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(&r.Entry); err != nil {
			return buf, err
		}
		return append(buf, b.Bytes()...), nil // Encode ends the line
	}
	if r.Raw != nil {
		buf = append(buf, r.Raw...)
	} else {
		buf = append(buf, r.Message...)
	}
	if r.Continued { // the next record holds the rest of the line
		return buf, nil
	}
	return append(buf, '\n'), nil
}
