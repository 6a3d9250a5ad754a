package natsd

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

const (
	// spaceInterval is how often the store's free space is looked at while nothing publishes.
	spaceInterval = time.Second
	// spaceRecheck bounds how stale the look a publish is let through on may be: at 240 MB/s
	// a look 50 ms old has missed ~12 MB, well inside the reserve.
	spaceRecheck = 50 * time.Millisecond
	// restartFree is the least free space JetStream is restarted with after a write failed,
	// whatever the reserve: a block of every stream, so that it does not fail again at once.
	restartFree = 32 << 20
)

// StoreSpace keeps the embedded server's store from running out of disk. nats-server's file
// store makes a write error sticky: after one "no space left on device" every later write of
// that stream fails until JetStream restarts, so a full disk used to stall capture for good
// while /readyz said ready. StoreSpace holds the sources' publishes (a streams.Gate) while
// the free space of data_dir is below the reserve, says so in /readyz and the log, and, if a
// write failed anyway (something else filled the disk faster than it looked), restarts
// JetStream once the space is back, which recovers the streams from disk (restart nil: a
// clustered server, whose JetStream is not restarted in place; /readyz asks for a restart).
type StoreSpace struct {
	dir     string
	reserve uint64
	log     *zap.Logger
	restart func() error

	mu       sync.Mutex
	lookedAt time.Time
	free     uint64
	writeErr string        // the store's critical write error, until JetStream restarted
	held     chan struct{} // open while publishes are held; nil when not

	mFree, mHeld prometheus.Gauge
	mRestarts    prometheus.Counter
}

func newStoreSpace(dir string, reserve uint64, restart func() error, reg prometheus.Registerer, log *zap.Logger) (*StoreSpace, error) {
	s := &StoreSpace{dir: dir, reserve: reserve, restart: restart, log: log,
		mFree: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logcap_store_free_bytes",
			Help: "Free space of the file system of the embedded server's store (data_dir/jetstream)."}),
		mHeld: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logcap_store_space_held",
			Help: "1 while the sources are held back because the store's disk is (nearly) full."}),
		mRestarts: prometheus.NewCounter(prometheus.CounterOpts{Name: "logcap_store_jetstream_restarts_total",
			Help: "JetStream restarts after a store write failed (disk full) and space came back."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{s.mFree, s.mHeld, s.mRestarts} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("store space metrics: %w", err)
			}
		}
	}
	return s, nil
}

// restartJetStream restarts the embedded server's JetStream with its current configuration:
// the streams are recovered from disk by new stores, without the old ones' sticky error.
// storeDir is the server's option (data_dir): EnableJetStream appends "jetstream" to it,
// which the running configuration already ends in.
func restartJetStream(srv *server.Server, storeDir string) error {
	cfg := srv.JetStreamConfig()
	if cfg == nil {
		return fmt.Errorf("JetStream is not running")
	}
	cfg.StoreDir = storeDir
	if err := srv.ShutdownJetStream(); err != nil {
		return err
	}
	return srv.EnableJetStream(cfg)
}

// Wait lets a publish through, or holds it while the store's disk is below the reserve or a
// store write failed.
func (s *StoreSpace) Wait(ctx context.Context) error {
	for {
		s.mu.Lock()
		stale := time.Since(s.lookedAt) >= spaceRecheck
		s.mu.Unlock()
		if stale {
			s.look()
		}
		s.mu.Lock()
		held := s.held
		s.mu.Unlock()
		if held == nil {
			return nil
		}
		select {
		case <-held:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// NotReady says why the store cannot take writes ("" when it can), for /readyz.
func (s *StoreSpace) NotReady() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.writeErr != "" && s.restart == nil:
		return fmt.Sprintf("store %s: a write failed (%s): restart logcap once space is freed (a clustered JetStream is not restarted in place)", s.dir, s.writeErr)
	case s.writeErr != "":
		return fmt.Sprintf("store %s: a write failed (%s): capture is held until %s are free, then JetStream restarts", s.dir, s.writeErr, mib(max(s.reserve, restartFree)))
	case s.held != nil:
		return fmt.Sprintf("store %s: %s free, below the reserve of %s: capture is held until space is freed", s.dir, mib(s.free), mib(s.reserve))
	}
	return ""
}

// Run looks at the free space every spaceInterval until ctx is done.
func (s *StoreSpace) Run(ctx context.Context) error {
	s.look()
	t := time.NewTicker(spaceInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.look()
		}
	}
}

// look reads the free space, restarts JetStream after a write error once there is room, and
// holds or releases the publishes.
func (s *StoreSpace) look() {
	var st unix.Statfs_t
	err := unix.Statfs(s.dir, &st)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookedAt = time.Now()
	if err != nil {
		s.log.Warn("store space: statfs failed", zap.String("dir", s.dir), zap.Error(err))
		return
	}
	s.free = st.Bavail * uint64(st.Bsize)
	s.mFree.Set(float64(s.free))
	low := s.free < s.reserve
	if s.writeErr != "" && s.restart != nil && s.free >= max(s.reserve, restartFree) {
		s.log.Info("store space: space is back after a store write failed; restarting JetStream", zap.String("dir", s.dir), zap.String("free", mib(s.free)))
		if err := s.restart(); err != nil {
			s.log.Error("store space: JetStream restart failed; retrying", zap.Error(err))
			return
		}
		s.mRestarts.Inc()
		s.writeErr = ""
	}
	switch hold := low || s.writeErr != ""; {
	case hold && s.held == nil:
		s.held = make(chan struct{})
		s.mHeld.Set(1)
		s.log.Warn("store space: data_dir is (nearly) full; holding capture until space is freed (files and Docker logs wait)",
			zap.String("dir", s.dir), zap.String("free", mib(s.free)), zap.String("reserve", mib(s.reserve)))
	case !hold && s.held != nil:
		close(s.held)
		s.held = nil
		s.mHeld.Set(0)
		s.log.Info("store space: space is back; capture resumes", zap.String("dir", s.dir), zap.String("free", mib(s.free)))
	}
}

// serverError is told every error nats-server logs; a file store's critical write error
// (sticky until JetStream restarts) holds capture.
func (s *StoreSpace) serverError(msg string) {
	if !strings.Contains(msg, "Critical write error") {
		return
	}
	// Called from inside the store: only note it here; Wait and Run look (and restart).
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeErr = msg
	if s.held == nil {
		s.held = make(chan struct{})
		s.mHeld.Set(1)
	}
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// diskSize is the size of the file system that holds dir.
func diskSize(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Blocks) * int64(st.Bsize), nil
}
