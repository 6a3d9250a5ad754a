// The ceilings of this machine, measured in the same run as logcap's rows.

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func catCeiling(input string, size int64) (row, error) {
	cmd := exec.Command("cat", input)
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return row{}, err
	}
	defer devnull.Close()
	cmd.Stdout = devnull
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return row{}, fmt.Errorf("cat: %w", err)
	}
	el := time.Since(t0)
	return row{name: "cat FILE > /dev/null", lines: *nLines, bytes: size, elapsed: el, cpu: childCPU(cmd),
		load: loadavg(), note: "ceiling (warm cache)"}, nil
}

func ddCeiling(dir string, size int64) (row, error) {
	out := filepath.Join(dir, "dd.out")
	defer os.Remove(out)
	cmd := exec.Command("dd", "if=/dev/zero", "of="+out, "bs=1M", fmt.Sprintf("count=%d", size>>20), "conv=fdatasync")
	t0 := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		return row{}, fmt.Errorf("dd: %w: %s", err, b)
	}
	el := time.Since(t0)
	n := (size >> 20) << 20
	return row{name: "dd write + fdatasync", lines: int(n / lineLen), bytes: n, elapsed: el, cpu: childCPU(cmd),
		load: loadavg(), note: "ceiling"}, nil
}

// publishCeiling publishes the input's bytes in 256 KiB messages of whole lines to an
// embedded JetStream (file store, R1) with async publish: no conditional header, no ordering
// wait, no reading: what the server can take.
func publishCeiling(dir, input string, size int64, always bool) (row, error) {
	store, err := os.MkdirTemp(dir, "js-")
	if err != nil {
		return row{}, err
	}
	defer os.RemoveAll(store)
	s, err := server.NewServer(&server.Options{JetStream: true, StoreDir: store, DontListen: true, NoSigs: true, SyncAlways: always, MaxPayload: 8 << 20})
	if err != nil {
		return row{}, err
	}
	s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(10 * time.Second) {
		return row{}, errors.New("embedded nats-server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		return row{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(32), jetstream.WithPublishAsyncTimeout(30*time.Second))
	if err != nil {
		return row{}, err
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "LOGS", Subjects: []string{"logs.>"}, Storage: jetstream.FileStorage, MaxMsgSize: 8 << 20}); err != nil {
		return row{}, err
	}
	data, err := os.ReadFile(input)
	if err != nil {
		return row{}, err
	}
	const chunk = (256 << 10) / lineLen * lineLen
	t0, cpu0 := time.Now(), selfCPU()
	for off := 0; off < len(data); off += chunk {
		if _, err := js.PublishAsync("logs.file.bench.x", data[off:min(off+chunk, len(data))]); err != nil {
			return row{}, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		return row{}, errors.New("publish: acks missing after 2m")
	}
	el, cpu := time.Since(t0), selfCPU()-cpu0
	st, err := js.Stream(ctx, "LOGS")
	if err != nil {
		return row{}, err
	}
	if got := st.CachedInfo().State; got.Bytes < uint64(size) {
		return row{}, fmt.Errorf("publish: stream holds %d bytes, want ≥ %d", got.Bytes, size)
	}
	return row{name: pubName(always), lines: *nLines, bytes: size, elapsed: el, cpu: cpu, load: loadavg(), note: "ceiling (server in the driver)"}, nil
}

func pubName(always bool) string {
	if always {
		return "raw JetStream publish, 256 KiB msgs, sync always"
	}
	return "raw JetStream publish, 256 KiB msgs"
}
