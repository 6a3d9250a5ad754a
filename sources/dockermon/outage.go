package dockermon

// While NATS does not answer, a container's resume position (its subject's last message) is
// unknown. The follower then holds the container's log stream open from its start, so a
// container that exits and is removed during the outage keeps its lines (#20).

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/moby/moby/client"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/logcap/logcap/streams"
)

// heldLog is a container's log stream opened before its position was known.
type heldLog struct {
	body io.ReadCloser
	tty  bool
}

// resumeOrHold resumes from the subject's last message. While NATS does not answer it
// first opens the container's log from its start (or hint): a container that exits and is
// removed during the outage takes its json-file log with it, and only a stream already
// open still reads it. What the subject already holds is skipped once NATS answers.
func (f *follower) resumeOrHold(ctx context.Context) (*heldLog, error) {
	m := f.m
	last, err := streams.LastMsg(ctx, m.js, m.cfg.Stream, f.subject)
	if err == nil {
		return nil, f.resumeFrom(last)
	}
	var held *heldLog
	insp, ierr := m.cli.ContainerInspect(ctx, f.t.ID, client.ContainerInspectOptions{})
	if ierr == nil {
		tty := insp.Container.Config != nil && insp.Container.Config.Tty
		from := Position{}
		if f.hint != nil {
			from = *f.hint
		}
		f.attached = time.Now()
		if body, lerr := m.cli.ContainerLogs(ctx, f.t.ID, f.logsOptions(from, tty, true)); lerr == nil {
			held = &heldLog{body: body, tty: tty}
			f.log.Info("NATS does not answer: container log held open until it does", zap.Error(err))
		}
	}
	if err := f.resume(ctx); err != nil {
		if held != nil {
			held.body.Close()
		}
		return nil, err
	}
	return held, nil
}

// lastMsg reads the subject's last message, waiting for NATS while it is unreachable: a
// container that starts (or whose stream fails) during a NATS outage must be followed once
// NATS is back, not given up — a short-lived one would never be discovered again
// (TestFollowWaitsForNATS). Only a stop ends the wait.
func (f *follower) lastMsg(ctx context.Context) (*jetstream.RawStreamMsg, error) {
	var last *jetstream.RawStreamMsg
	err := streams.UntilNATS(ctx, f.m.js.Conn(), streamRetry, func() (err error) {
		last, err = streams.LastMsg(ctx, f.m.js, f.m.cfg.Stream, f.subject)
		return err
	}, func(err error) {
		f.log.Warn("reading the resume position failed; retrying until NATS answers", zap.Error(err))
	})
	if err != nil {
		return nil, fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
	}
	return last, nil
}
