package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/streams"
)

// tally counts deliveries of keyed lines.
type tally[K comparable] struct {
	seen map[K]int
	bad  int // lines that are not the soak's
}

func newTally[K comparable]() *tally[K] { return &tally[K]{seen: map[K]int{}} }

// against compares deliveries with the keys written: lost, duplicated (extra deliveries),
// unexpected (delivered, never written).
func (t *tally[K]) against(want map[K]bool) (delivered, lost, dups, unexpected int) {
	for k, n := range t.seen {
		delivered += n
		dups += n - 1
		if !want[k] {
			unexpected += n
		}
	}
	for k := range want {
		if t.seen[k] == 0 {
			lost++
		}
	}
	return
}

// archiveReader tails the file sink's output (JSON lines) and counts file lines by number.
type archiveReader struct {
	path string
	off  int64
	t    *tally[int64]
}

func (a *archiveReader) poll() error {
	f, err := os.Open(a.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(a.off, io.SeekStart); err != nil {
		return err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			return nil // a partial last line is read again at the next poll
		}
		if err != nil {
			return err
		}
		a.off += int64(len(line))
		var d doc
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		if err := dec.Decode(&d); err != nil {
			a.t.bad++
			continue
		}
		if n, ok := fileLineNumber(d.Fields); ok && d.Kind == "file" {
			a.t.seen[n]++
		} else {
			a.t.bad++
		}
	}
}

// readDockerLOGS counts every docker entry stored in LOGS.
func readDockerLOGS(ctx context.Context, url string, opts ...nats.Option) (*tally[string], error) {
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, "LOGS")
	if err != nil {
		return nil, fmt.Errorf("LOGS: %w", err)
	}
	// A consumer the soak deletes at once: an ordered consumer would linger on the server
	// (logcap's process, in embedded mode) and show up in the goroutine profile.
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{FilterSubject: "logs.docker.>", AckPolicy: jetstream.AckNonePolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("LOGS: consumer: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = stream.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	t := newTally[string]()
	for {
		batch, err := cons.FetchBytes(8<<20, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, fmt.Errorf("LOGS: fetch: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			c, err := streams.DecodeChunk(m.Subject(), m.Headers(), m.Data())
			if err != nil {
				return nil, fmt.Errorf("LOGS: %s: %w", m.Subject(), err)
			}
			c.EachEntry(func(_ int, e []byte, _ bool) {
				_, content, _ := bytes.Cut(streams.TrimEOL(e), []byte{' '})
				if key, ok := dockerKey(c.Source, string(content)); ok {
					t.seen[key]++
				} else {
					t.bad++
				}
			})
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("LOGS: fetch: %w", err)
		}
		if got == 0 {
			return t, nil
		}
	}
}

// checkDelivery waits (up to 3 minutes) until every line written arrived, then reports
// written, delivered, lost and duplicated per path; it returns the failures.
func (d *driver) checkDelivery(ctx context.Context) []string {
	wantFile := map[int64]bool{}
	for n := range d.files.written() {
		wantFile[n] = true
	}
	wantDocker := map[string]bool{}
	for name, streams := range d.docker.expected() {
		for stream, n := range streams {
			for seq := 1; seq <= n; seq++ {
				wantDocker[fmt.Sprintf("%s %s %d", name, stream, seq)] = true
			}
		}
	}
	archive := &archiveReader{path: filepath.Join(d.dir, "out", "archive.log"), t: newTally[int64]()}
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", d.natsPort)
	var natsOpts []nats.Option
	if d.nats == nil {
		// The embedded server: read as the read-only identity logcap generated in data_dir.
		o, err := natsd.UserOption(filepath.Join(d.dir, "data"), natsd.ReaderUser)
		if err != nil {
			return []string{err.Error()}
		}
		natsOpts = append(natsOpts, o)
	}
	var docker *tally[string]
	var httpFile *tally[int64]
	var httpDock *tally[string]
	var err error
	began := time.Now()
	deadline := began.Add(3 * time.Minute)
	for {
		if err = archive.poll(); err != nil {
			return []string{fmt.Sprintf("read the file sink's output: %v", err)}
		}
		if d.docker != nil {
			if docker, err = readDockerLOGS(ctx, natsURL, natsOpts...); err != nil {
				return []string{err.Error()}
			}
		} else {
			docker = newTally[string]()
		}
		httpFile, httpDock = d.sink.snapshot()
		complete := len(archive.t.seen) >= len(wantFile) && len(docker.seen) >= len(wantDocker) &&
			len(httpFile.seen) >= len(wantFile) && len(httpDock.seen) >= len(wantDocker)
		if complete || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(2 * time.Second)
	}
	logf("delivery checked %v after the churn stopped", time.Since(began).Round(time.Second))

	var failures []string
	fmt.Printf("\n%-34s %9s %10s %6s %11s %11s %4s\n", "path", "written", "delivered", "lost", "duplicated", "unexpected", "bad")
	row := func(name string, written, delivered, lost, dups, unexpected, bad int, exactlyOnce bool) {
		fmt.Printf("%-34s %9d %10d %6d %11d %11d %4d\n", name, written, delivered, lost, dups, unexpected, bad)
		if lost > 0 || unexpected > 0 || bad > 0 || (exactlyOnce && dups > 0) {
			failures = append(failures, fmt.Sprintf("%s: %d written, %d lost, %d duplicated, %d unexpected, %d unreadable", name, written, lost, dups, unexpected, bad))
		}
	}
	dl, l, du, u := archive.t.against(wantFile)
	row("file → json,set → file sink", len(wantFile), dl, l, du, u, archive.t.bad, true)
	if d.docker != nil {
		dl, l, du, u = docker.against(wantDocker)
		row("docker → LOGS", len(wantDocker), dl, l, du, u, docker.bad, true)
	}
	// The http sink is at-least-once by contract: duplicates are reported, not failed.
	dl, l, du, u = httpFile.against(wantFile)
	row("file → http sink (at-least-once)", len(wantFile), dl, l, du, u, httpFile.bad, false)
	if d.docker != nil {
		dl, l, du, u = httpDock.against(wantDocker)
		row("docker → http sink (at-least-once)", len(wantDocker), dl, l, du, u, httpDock.bad, false)
	}
	fmt.Println()
	return failures
}

// snapshot copies the http sink's tallies.
func (s *httpSink) snapshot() (*tally[int64], *tally[string]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, d := newTally[int64](), newTally[string]()
	for k, v := range s.file {
		f.seen[k] = v
	}
	for k, v := range s.dock {
		d.seen[k] = v
	}
	f.bad = s.bad
	return f, d
}
