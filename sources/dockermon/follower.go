package dockermon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/logcap/logcap/streams"
)

// StreamPos is where one stream of a container stands in LOGS: the timestamp of the last
// record published and how many records carrying exactly that timestamp were published.
// Counts are of Docker records (each 16 KiB part of a split line is one), so that a
// stream cut in the middle of a split line resumes at the right part.
type StreamPos struct {
	TS    time.Time
	Count int
}

// advance accounts for n records with timestamp ts published after p.
func (p *StreamPos) advance(ts time.Time, n int) {
	if ts.Equal(p.TS) {
		p.Count += n
		return
	}
	p.TS, p.Count = ts, n
}

func (p StreamPos) String() string { return streams.FormatStreamPos(p.TS, p.Count) }

func parseStreamPos(s string) (StreamPos, error) {
	ts, n, err := streams.ParseStreamPos(s)
	return StreamPos{TS: ts, Count: n}, err
}

// Position is a container's position, per stream. Docker stamps stdout and stderr in two
// goroutines and logs them in the order they take a lock, so its log is in timestamp order
// within a stream but not across streams (measured: dozens of lines apart under load). A
// single timestamp could not say exactly what was published; one per stream can.
type Position struct {
	Stdout, Stderr StreamPos
}

// unsetMargin: a stream that never published resumes this long before the other stream's
// position, to cover records stamped earlier but logged later than the other's.
const unsetMargin = time.Minute

func (p *Position) of(stream string) *StreamPos {
	if stream == Stderr {
		return &p.Stderr
	}
	return &p.Stdout
}

// IsZero: nothing published.
func (p Position) IsZero() bool { return p.Stdout.TS.IsZero() && p.Stderr.TS.IsZero() }

// since is the earliest timestamp a resume must ask Docker for.
func (p Position) since(tty bool) time.Time {
	a, b := p.Stdout.TS, p.Stderr.TS
	switch {
	case a.IsZero() && b.IsZero():
		return time.Time{}
	case tty:
		return a // one stream only
	case a.IsZero():
		return b.Add(-unsetMargin)
	case b.IsZero():
		return a.Add(-unsetMargin)
	case a.Before(b):
		return a
	}
	return b
}

// entry is one entry of a chunk in the making.
type entry struct {
	ts      time.Time
	records int
	n       int // bytes
	cont    bool
}

// chunker builds one container's chunks: one stream per chunk, entries in arrival order.
type chunker struct {
	stream    string
	data      []byte
	entries   []entry
	hasCont   bool
	firstTS   time.Time
	pos       Position // the position after this chunk's last entry
	committed Position // the position of what is stored in LOGS
}

func (c *chunker) empty() bool { return len(c.entries) == 0 }

// add appends "<raw ts> <content>" as an entry; a content that does not end in '\n' is
// closed with one unless it is a part that continues in the next entry.
func (c *chunker) add(stream string, ts time.Time, rawTS, content []byte, records int, cont bool) {
	if c.empty() {
		c.stream, c.firstTS = stream, ts
		c.pos = c.committed
	}
	start := len(c.data)
	c.data = append(c.data, rawTS...)
	c.data = append(c.data, ' ')
	c.data = append(c.data, content...)
	if !cont && (len(content) == 0 || content[len(content)-1] != '\n') {
		c.data = append(c.data, '\n')
	}
	c.entries = append(c.entries, entry{ts: ts, records: records, n: len(c.data) - start, cont: cont})
	c.hasCont = c.hasCont || cont
	c.pos.of(stream).advance(ts, records)
}

func (c *chunker) chunk(host, source, id string) *streams.Chunk {
	ch := &streams.Chunk{
		Kind: streams.KindDocker, Host: host, Source: source, Data: c.data, Lines: len(c.entries),
		ReadTime: time.Now(),
		Docker: &streams.DockerPos{ContainerID: id, Stream: c.stream, FirstTS: c.firstTS,
			LastTS: c.pos.of(c.stream).TS, LastTSCount: c.pos.of(c.stream).Count},
	}
	if c.hasCont {
		ch.Entries = make([]int, len(c.entries))
		for i, e := range c.entries {
			ch.Entries[i] = e.n
			if e.cont {
				ch.Continued = append(ch.Continued, i)
			}
		}
	}
	return ch
}

func (c *chunker) reset() {
	c.data, c.entries, c.hasCont = c.data[:0], c.entries[:0], false
}

// follower reads one container's log stream and publishes it.
type follower struct {
	m   *Monitor
	t   Target
	log *zap.Logger

	subject string
	pub     *streams.Publisher
	ch      chunker
	extra   nats.Header

	// The parts of a split line read so far, per stream: the other stream's records may
	// come between them (Docker copies the two streams in two goroutines).
	joinOut, joinErr join

	records  int // records taken (not skipped), for logs
	hint     *Position
	skip     Position // what a resumed stream skips: published already
	attached time.Time
}

// Follow reads container t's logs from where its subject in LOGS ends (or, for a container
// the subject has not seen, from its first line) and publishes them until the stream ends
// because the container stopped, or ctx is done. hint, when not nil, is the position to
// resume from if the subject holds nothing of this container (a rename).
func (m *Monitor) Follow(ctx context.Context, t Target, hint *Position) (Position, error) {
	f := &follower{m: m, t: t, log: m.log.With(zap.String("container", t.Name), zap.String("id", short(t.ID)))}
	f.subject = streams.SourceSubject(streams.KindDocker, m.cfg.Host, t.Name)
	f.hint = hint
	held, err := f.resumeOrHold(ctx)
	if err != nil {
		return Position{}, err
	}
	f.extra = m.metaHeaders(t)

	backoff := streamRetry.New()
	for attempt := 0; ; {
		if held != nil {
			// opened while NATS was away: read it now that the position is known
			err = f.read(ctx, held.body, held.tty)
			held.body.Close()
			held = nil
		} else {
			var stopped bool
			if stopped, err = f.attach(ctx, attempt); stopped {
				return f.ch.committed, err
			}
			attempt++
		}
		if ctx.Err() != nil {
			return f.ch.committed, ctx.Err()
		}
		if err != nil {
			f.log.Warn("log stream failed; attaching again", zap.Error(err))
			if errors.Is(err, streams.ErrFenced) {
				return f.ch.committed, err
			}
			// A publish whose outcome is unknown may have stored a chunk: the position is
			// what LOGS holds, never what we believe.
			if rerr := f.resume(ctx); rerr != nil {
				return f.ch.committed, rerr
			}
		} else if time.Since(f.attached) > time.Second {
			backoff.Reset()
		}
		// An EOF comes both when the container stops and when the daemon shuts down:
		// inspect at the top of the loop tells which. Parts of a line not yet complete are
		// read again from the position (stream resets the joins).
		// Back off after an error, and after a stream that ended at once for a container
		// that runs (a daemon answering EOF in a loop must not make us spin).
		if err != nil || time.Since(f.attached) < time.Second {
			if !backoff.Wait(ctx) {
				return f.ch.committed, ctx.Err()
			}
		}
	}
}

// attach reads the container's log from the position once: following it while the
// container runs, or to its end if it stopped. stopped reports that following is over
// (the container stopped and was read to its end, or is gone), with err the outcome.
func (f *follower) attach(ctx context.Context, attempt int) (stopped bool, err error) {
	m, t := f.m, f.t
	if attempt > 0 {
		m.metrics.Reconnects.WithLabelValues(m.cfg.Source, "logs").Inc()
	}
	insp, err := m.cli.ContainerInspect(ctx, t.ID, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return true, nil // removed: its logs are gone with it
	}
	if err != nil {
		return true, fmt.Errorf("container %s: inspect: %w", t.Name, err)
	}
	running := insp.Container.State != nil && insp.Container.State.Running
	tty := insp.Container.Config != nil && insp.Container.Config.Tty
	if attempt == 0 || running {
		return false, f.stream(ctx, tty, true)
	}
	// The stream ended because the container stopped. A follow stream can end before the
	// last lines when the container exits (seen with dockerd 20.10 under load): read once
	// more, without follow, from the position to the end.
	before := f.records
	if err := f.stream(ctx, tty, false); err != nil {
		return false, err
	}
	if n := f.records - before; n > 0 {
		f.log.Info("lines read after the follow stream ended", zap.Int("records", n))
	}
	return true, f.flushJoinFinal(ctx)
}

// resume sets the position and the publisher from the last message on the subject: the
// stream is the position. A last message of another container (an earlier one with this
// name) means this one is read from its start — or from hint, its position under the name
// it had before a rename.
func (f *follower) resume(ctx context.Context) error {
	last, err := f.lastMsg(ctx)
	if err != nil {
		return fmt.Errorf("container %s: %w", f.t.Name, err)
	}
	return f.resumeFrom(last)
}

// resumeFrom sets the position and the publisher from last, the subject's last message.
func (f *follower) resumeFrom(last *jetstream.RawStreamMsg) error {
	m := f.m
	var lastSeq uint64
	f.ch.committed = Position{}
	if last != nil {
		lastSeq = last.Sequence
		c, err := streams.DecodeChunk(last.Subject, last.Header, last.Data)
		if err != nil {
			return fmt.Errorf("container %s: resume position: %w", f.t.Name, err)
		}
		if c.Docker != nil && c.Docker.ContainerID == f.t.ID {
			f.ch.committed = Position{}
			*f.ch.committed.of(c.Docker.Stream) = StreamPos{TS: c.Docker.LastTS, Count: c.Docker.LastTSCount}
			for k, dst := range map[string]*StreamPos{streams.HdrPosStdout: &f.ch.committed.Stdout, streams.HdrPosStderr: &f.ch.committed.Stderr} {
				if v := last.Header.Get(k); v != "" {
					if *dst, err = parseStreamPos(v); err != nil {
						return fmt.Errorf("container %s: resume position: header %s: %w", f.t.Name, k, err)
					}
				}
			}
			f.hint = nil
		}
	}
	if f.ch.committed.IsZero() && f.hint != nil {
		f.ch.committed = *f.hint
	}
	f.ch.reset()
	f.pub = streams.NewPublisher(m.js, m.cfg.Stream, f.subject, lastSeq)
	f.pub.Gate = m.cfg.Gate
	f.pub.OnRetry = func(attempt int, err error) {
		f.log.Warn("publish retry", zap.Int("attempt", attempt), zap.Error(err))
	}
	return nil
}

// stream runs one ContainerLogs call from the committed position to its end.
// A join in progress is dropped first: its parts are read again from the position.
func (f *follower) stream(ctx context.Context, tty, follow bool) error {
	f.attached = time.Now()
	body, err := f.m.cli.ContainerLogs(ctx, f.t.ID, f.logsOptions(f.ch.committed, tty, follow))
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	// The client closes the body when ctx is done, which unblocks a Read on a daemon that
	// hangs; Close here covers every other way out.
	defer body.Close()
	return f.read(ctx, body, tty)
}

// logsOptions asks for the log from pos on (since is inclusive: read skips what pos covers).
func (f *follower) logsOptions(pos Position, tty, follow bool) client.ContainerLogsOptions {
	opts := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: follow}
	if since := pos.since(tty); !since.IsZero() {
		opts.Since = fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond())
	}
	return opts
}

// read publishes what body holds past the committed position, to its end.
func (f *follower) read(ctx context.Context, body io.Reader, tty bool) error {
	m := f.m
	f.joinOut.reset()
	f.joinErr.reset()
	f.skip = f.ch.committed
	d := NewDecoder(body, tty, 256<<10)
	for {
		if d.Buffered() == 0 && !f.ch.empty() {
			// Nothing more is at hand: publish now rather than wait (a lone line goes out at
			// once; under load the next read brings many lines, and the chunk grows).
			if err := f.publish(ctx); err != nil {
				return err
			}
		}
		r, err := d.Next()
		if err == io.EOF {
			return f.publishIfAny(ctx)
		}
		if err != nil {
			if perr := f.publishIfAny(ctx); perr != nil {
				return perr
			}
			if errors.Is(err, ErrTruncated) || errors.Is(err, ErrBroken) || ctx.Err() != nil {
				return err
			}
			// A corrupt record: log it and go on with the next one.
			f.log.Warn("bad log record skipped", zap.Error(err))
			continue
		}
		// Per stream, Docker's timestamps do not go back: a record at or before that
		// stream's position was published (since is inclusive; the parts of a split line
		// share their timestamp, hence the count).
		if sp := f.skip.of(r.Stream); !sp.TS.IsZero() {
			if r.TS.Before(sp.TS) || r.TS.Equal(sp.TS) && sp.Count > 0 {
				if r.TS.Equal(sp.TS) {
					sp.Count--
				}
				m.metrics.Skipped.WithLabelValues(m.cfg.Source).Inc()
				continue
			}
			sp.TS = time.Time{} // past the position
		}
		f.records++
		if err := f.record(ctx, r); err != nil {
			return err
		}
	}
}

// join is a line being joined from Docker's parts.
type join struct {
	stream  string
	buf     []byte
	ts      time.Time
	raw     []byte
	records int
}

func (j *join) reset() { j.buf, j.records = j.buf[:0], 0 }

func (f *follower) joinOf(stream string) *join {
	if stream == Stderr {
		return &f.joinErr
	}
	return &f.joinOut
}

// record takes one Docker record: joins split parts, and adds complete lines (or parts
// that cannot be joined) to the chunk.
func (f *follower) record(ctx context.Context, r Record) error {
	if r.TS.Before(f.attached) && !r.Partial {
		f.m.metrics.CatchUp.WithLabelValues(f.m.cfg.Source).Inc()
	}
	j := f.joinOf(r.Stream)
	if j.records == 0 && !r.Partial {
		return f.emit(ctx, r.Stream, r.TS, r.RawTS, r.Line, 1, false)
	}
	if j.records > 0 && len(j.buf)+len(r.Line) > int(f.m.cfg.MaxLineBytes) {
		if err := f.emit(ctx, j.stream, j.ts, j.raw, j.buf, j.records, true); err != nil {
			return err
		}
		j.reset()
	}
	if j.records == 0 {
		j.stream, j.ts, j.raw = r.Stream, r.TS, append(j.raw[:0], r.RawTS...)
	}
	j.buf = append(j.buf, r.Line...)
	j.records++
	if r.Partial {
		return nil
	}
	if j.records > 1 {
		f.m.metrics.Joined.WithLabelValues(f.m.cfg.Source).Inc()
	}
	err := f.emit(ctx, j.stream, j.ts, j.raw, j.buf, j.records, false)
	j.reset()
	return err
}

// flushJoinFinal publishes the last bytes a stopped container wrote without a '\n'.
func (f *follower) flushJoinFinal(ctx context.Context) error {
	for _, j := range []*join{&f.joinOut, &f.joinErr} {
		if j.records == 0 {
			continue
		}
		err := f.emit(ctx, j.stream, j.ts, j.raw, j.buf, j.records, false)
		j.reset()
		if err != nil {
			return err
		}
	}
	return f.publishIfAny(ctx)
}

func (f *follower) emit(ctx context.Context, stream string, ts time.Time, raw, content []byte, records int, cont bool) error {
	if !f.ch.empty() && (f.ch.stream != stream || len(f.ch.data)+len(raw)+len(content)+2 > int(f.m.cfg.MaxChunkBytes)) {
		if err := f.publish(ctx); err != nil {
			return err
		}
	}
	f.ch.add(stream, ts, raw, content, records, cont)
	return nil
}

func (f *follower) publishIfAny(ctx context.Context) error {
	if f.ch.empty() {
		return nil
	}
	return f.publish(ctx)
}

func (f *follower) publish(ctx context.Context) error {
	c := f.ch.chunk(f.m.cfg.Host, f.t.Name, f.t.ID)
	msg := c.Msg()
	for k, v := range f.extra {
		msg.Header[k] = v
	}
	msg.Header.Set(streams.HdrPosStdout, f.ch.pos.Stdout.String())
	msg.Header.Set(streams.HdrPosStderr, f.ch.pos.Stderr.String())
	if _, err := f.pub.Publish(ctx, msg); err != nil {
		return fmt.Errorf("container %s: %w", f.t.Name, err)
	}
	m := f.m
	m.metrics.Chunks.WithLabelValues(m.cfg.Source).Inc()
	m.metrics.Lines.WithLabelValues(m.cfg.Source, f.t.Name).Add(float64(c.Lines))
	m.metrics.Bytes.WithLabelValues(m.cfg.Source, f.t.Name).Add(float64(len(c.Data)))
	f.ch.committed = f.ch.pos
	f.ch.reset()
	return nil
}

func (m *Monitor) metaHeaders(t Target) nats.Header {
	return streams.DockerMetaHeader(t.Name, t.Image, t.Labels, m.cfg.Labels)
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// name normalises a container name from the API ("/web" → "web").
func name(n string) string { return strings.TrimPrefix(n, "/") }
