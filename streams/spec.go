package streams

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/config"
)

// Spec is what logcap wants a stream to be.
type Spec struct {
	Name            string
	Subjects        []string
	MaxAge          time.Duration
	MaxBytes        int64
	MaxMsgSize      int32
	Replicas        int
	DuplicateWindow time.Duration
	Storage         string // "file" or "memory"
	Discard         string // "old" or "new"
}

// SpecFrom is the spec of a configured stream (`streams.logs`, `streams.deadletter`, and
// the limits a processor's derived stream takes from LOGS) with its subjects.
func SpecFrom(c config.StreamSpec, subjects []string) Spec {
	return Spec{
		Name: c.Name, Subjects: subjects, MaxAge: c.MaxAge.D(), MaxBytes: int64(c.MaxBytes),
		MaxMsgSize: int32(c.MaxMsgSize), Replicas: c.Replicas, DuplicateWindow: c.DuplicateWindow.D(),
		Storage: c.Storage, Discard: c.Discard,
	}
}

// DerivedSpec is the derived stream of processor pc: named pc.Stream (default upper-case
// name), subjects <lower(name)>.> plus <route>.> for each route step's target, with the
// limits of the LOGS stream.
func DerivedSpec(cfg *config.Config, pc config.Processor) (Spec, error) {
	routes, err := pc.Routes()
	if err != nil {
		return Spec{}, err
	}
	subjects := []string{strings.ToLower(pc.Name) + ".>"}
	for _, r := range routes {
		subjects = append(subjects, r+".>")
	}
	name := pc.Stream
	if name == "" {
		name = strings.ToUpper(pc.Name)
	}
	logs := cfg.Streams.Logs
	logs.Name = name
	return SpecFrom(logs, subjects), nil
}

// Defaults of a processor's durable consumer.
const (
	DefaultAckWait         = 30 * time.Second
	ProcessorMaxAckPending = 10000
)

// ProcessorConsumer is the durable consumer of processor pc on its input's stream: the
// pipeline creates it, and a rebuild (`logcap replay --rebuild`) creates it again from the
// start of the input.
func ProcessorConsumer(pc config.Processor, stream string) ConsumerSpec {
	ackWait := pc.AckWait.D()
	if ackWait <= 0 {
		ackWait = DefaultAckWait
	}
	return ConsumerSpec{
		Stream: stream, Durable: pc.Name, Filters: []string{pc.Input}, AckWait: ackWait,
		// The pipeline dead-letters by itself; a JetStream max_deliver would stop delivering
		// a message silently.
		MaxDeliver: -1, MaxAckPending: ProcessorMaxAckPending,
	}
}

// Config turns the spec into a JetStream stream config.
func (s Spec) Config() jetstream.StreamConfig {
	c := jetstream.StreamConfig{
		Name:              s.Name,
		Subjects:          s.Subjects,
		MaxAge:            s.MaxAge,
		MaxBytes:          s.MaxBytes,
		MaxMsgSize:        s.MaxMsgSize,
		Replicas:          s.Replicas,
		Duplicates:        s.DuplicateWindow,
		Storage:           jetstream.FileStorage,
		Discard:           jetstream.DiscardOld,
		Retention:         jetstream.LimitsPolicy,
		MaxMsgs:           -1,
		MaxMsgsPerSubject: -1,
	}
	if s.Storage == "memory" {
		c.Storage = jetstream.MemoryStorage
	}
	if s.Discard == "new" {
		c.Discard = jetstream.DiscardNew
	}
	return c
}

// Provision creates the stream, or updates it in place when the change is one JetStream
// allows. A change it does not allow is an error naming the field, never a silent recreate:
// recreating would delete every captured log.
func Provision(ctx context.Context, js jetstream.JetStream, spec Spec) (jetstream.Stream, error) {
	want := spec.Config()
	s, err := js.Stream(ctx, spec.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, want)
		if err != nil {
			return nil, fmt.Errorf("create stream %s: %w", spec.Name, err)
		}
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", spec.Name, err)
	}
	have := s.CachedInfo().Config
	if msg := incompatible(have, want); msg != "" {
		return nil, &IncompatibleError{Stream: spec.Name, Msg: msg}
	}
	if !changed(have, want) {
		return s, nil
	}
	s, err = js.UpdateStream(ctx, merge(have, want))
	if err != nil {
		return nil, fmt.Errorf("update stream %s: %w", spec.Name, err)
	}
	return s, nil
}

// IncompatibleError says an existing stream differs from the config in a way JetStream
// cannot change in place. Retrying cannot fix it; the user must.
type IncompatibleError struct {
	Stream, Msg string
}

func (e *IncompatibleError) Error() string {
	return fmt.Sprintf("stream %s: %s: cannot be changed in place (delete the stream, or set provision: false to use it as it is)", e.Stream, e.Msg)
}

// Check verifies that a stream someone else manages exists and takes the subjects logcap
// will publish to.
func Check(ctx context.Context, js jetstream.JetStream, spec Spec) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, spec.Name)
	if err != nil {
		return nil, fmt.Errorf("stream %s (provision: false): %w", spec.Name, err)
	}
	for _, subj := range spec.Subjects {
		if !covers(s.CachedInfo().Config.Subjects, subj) {
			return nil, fmt.Errorf("stream %s (provision: false): subjects %v do not take %s", spec.Name, s.CachedInfo().Config.Subjects, subj)
		}
	}
	return s, nil
}

func incompatible(have, want jetstream.StreamConfig) string {
	switch {
	case have.Storage != want.Storage:
		return fmt.Sprintf("storage is %s, config wants %s", have.Storage, want.Storage)
	case have.Retention != want.Retention:
		return fmt.Sprintf("retention is %s, logcap needs %s", have.Retention, want.Retention)
	}
	for _, subj := range want.Subjects {
		if !covers(have.Subjects, subj) {
			return fmt.Sprintf("subjects are %v, logcap needs %s", have.Subjects, subj)
		}
	}
	return ""
}

func changed(have, want jetstream.StreamConfig) bool {
	return have.MaxAge != want.MaxAge || have.MaxBytes != want.MaxBytes || have.MaxMsgSize != want.MaxMsgSize ||
		have.Replicas != want.Replicas || have.Duplicates != want.Duplicates || have.Discard != want.Discard
}

// merge applies the fields logcap manages onto the existing config, keeping the rest (a user
// may have added subjects, placement, mirrors...).
func merge(have, want jetstream.StreamConfig) jetstream.StreamConfig {
	have.MaxAge, have.MaxBytes, have.MaxMsgSize = want.MaxAge, want.MaxBytes, want.MaxMsgSize
	have.Replicas, have.Duplicates, have.Discard = want.Replicas, want.Duplicates, want.Discard
	return have
}

// covers reports whether one of the filters matches every subject that subj matches.
func covers(filters []string, subj string) bool {
	for _, f := range filters {
		if subsetOf(subj, f) {
			return true
		}
	}
	return false
}

func subsetOf(subj, filter string) bool {
	st, ft := strings.Split(subj, "."), strings.Split(filter, ".")
	for i, f := range ft {
		if f == ">" {
			return len(st) > i
		}
		if i >= len(st) {
			return false
		}
		if f != "*" && f != st[i] {
			return false
		}
		if f == "*" && st[i] == ">" {
			return false
		}
	}
	return len(st) == len(ft)
}
