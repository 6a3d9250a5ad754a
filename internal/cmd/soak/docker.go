package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/logcap/logcap/internal/dockertest"
)

// dockerChurn starts one loggen container every second and stops (SIGKILL) the one started
// the second before, so each runs about a second and its log stream ends while it writes.
// What each container wrote is read back from Docker after it stopped (the ground truth);
// containers are removed 15 s after they stopped, once logcap had time for its final read.
type dockerChurn struct {
	cli    *client.Client
	host   string
	image  string
	prefix string

	mu         sync.Mutex
	containers []*ctr
}

type ctr struct {
	name, id  string
	stoppedAt time.Time
	truth     map[string]int // stream → lines Docker holds (numbered 1..n)
	removed   bool
}

// newDockerChurn returns nil when no engine answers, unless required.
func newDockerChurn(ctx context.Context, dir string, require bool) (*dockerChurn, error) {
	cli, err := client.New(client.FromEnv)
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true})
		cancel()
		if err != nil {
			cli.Close()
		}
	}
	if err != nil {
		if require {
			return nil, fmt.Errorf("docker engine at DOCKER_HOST=%q: %w (start one: export DOCKER_HOST=$(bash .ci/dockerd.sh))", os.Getenv("DOCKER_HOST"), err)
		}
		return nil, nil
	}
	image, err := dockertest.BuildImage(cli)
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("build %s: %w", dockertest.ImageName, err)
	}
	return &dockerChurn{cli: cli, host: cli.DaemonHost(), image: image, prefix: fmt.Sprintf("soak%d", os.Getpid())}, nil
}

func (c *dockerChurn) count() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.containers)
}

func (c *dockerChurn) run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var running *ctr
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if running != nil {
			if err := c.stop(ctx, running); err != nil {
				return err
			}
		}
		var err error
		if running, err = c.start(ctx); err != nil {
			return err
		}
		if err := c.reap(ctx, 15*time.Second); err != nil {
			return err
		}
	}
}

func (c *dockerChurn) start(ctx context.Context) (*ctr, error) {
	c.mu.Lock()
	k := len(c.containers)
	c.mu.Unlock()
	x := &ctr{name: fmt.Sprintf("%s-%05d", c.prefix, k)}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := c.cli.ContainerCreate(cctx, client.ContainerCreateOptions{
		Name: x.name,
		Config: &container.Config{Image: c.image, Labels: map[string]string{"logcap.soak": c.prefix},
			Cmd: []string{"-n", "0", "-rate", "40", "-stderr-every", "4", "-prefix", "soak"}},
		HostConfig: &container.HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", x.name, err)
	}
	x.id = res.ID
	c.mu.Lock()
	c.containers = append(c.containers, x)
	c.mu.Unlock()
	if _, err := c.cli.ContainerStart(cctx, x.id, client.ContainerStartOptions{}); err != nil {
		return nil, fmt.Errorf("start container %s: %w", x.name, err)
	}
	return x, nil
}

// stop kills the container (loggen as PID 1 ignores SIGTERM) and reads what Docker kept.
func (c *dockerChurn) stop(ctx context.Context, x *ctr) error {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	zero := 0
	if _, err := c.cli.ContainerStop(cctx, x.id, client.ContainerStopOptions{Timeout: &zero}); err != nil {
		return fmt.Errorf("stop container %s: %w", x.name, err)
	}
	truth, err := c.readTruth(cctx, x)
	if err != nil {
		return err
	}
	c.mu.Lock()
	x.stoppedAt, x.truth = time.Now(), truth
	c.mu.Unlock()
	return nil
}

func (c *dockerChurn) readTruth(ctx context.Context, x *ctr) (map[string]int, error) {
	rc, err := c.cli.ContainerLogs(ctx, x.id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return nil, fmt.Errorf("logs of %s: %w", x.name, err)
	}
	defer rc.Close()
	var out, errb bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errb, rc); err != nil {
		return nil, fmt.Errorf("logs of %s: %w", x.name, err)
	}
	truth := map[string]int{}
	for stream, b := range map[string][]byte{"stdout": out.Bytes(), "stderr": errb.Bytes()} {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[1] != stream {
				return nil, fmt.Errorf("container %s: unexpected %s line %q", x.name, stream, sc.Text())
			}
			seq, err := strconv.Atoi(f[2])
			if err != nil || seq != truth[stream]+1 {
				return nil, fmt.Errorf("container %s: Docker's own %s log is not 1..n: %q after %d", x.name, stream, sc.Text(), truth[stream])
			}
			truth[stream] = seq
		}
	}
	return truth, nil
}

// reap removes the containers stopped more than grace ago.
func (c *dockerChurn) reap(ctx context.Context, grace time.Duration) error {
	c.mu.Lock()
	var old []*ctr
	for _, x := range c.containers {
		if !x.removed && !x.stoppedAt.IsZero() && time.Since(x.stoppedAt) > grace {
			x.removed = true
			old = append(old, x)
		}
	}
	c.mu.Unlock()
	for _, x := range old {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		_, err := c.cli.ContainerRemove(cctx, x.id, client.ContainerRemoveOptions{Force: true})
		cancel()
		if err != nil {
			return fmt.Errorf("remove container %s: %w", x.name, err)
		}
	}
	return nil
}

// finish stops what still runs, so that every container has its ground truth.
func (c *dockerChurn) finish(ctx context.Context) error {
	c.mu.Lock()
	var left []*ctr
	for _, x := range c.containers {
		if x.truth == nil {
			left = append(left, x)
		}
	}
	c.mu.Unlock()
	for _, x := range left {
		if err := c.stop(ctx, x); err != nil {
			return err
		}
	}
	return nil
}

// expected returns container name → stream → lines.
func (c *dockerChurn) expected() map[string]map[string]int {
	out := map[string]map[string]int{}
	if c == nil {
		return out
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range c.containers {
		out[x.name] = x.truth
	}
	return out
}

func (c *dockerChurn) cleanup() {
	if c == nil {
		return
	}
	c.mu.Lock()
	cs := append([]*ctr(nil), c.containers...)
	c.mu.Unlock()
	for _, x := range cs {
		if x.removed || x.id == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, _ = c.cli.ContainerRemove(ctx, x.id, client.ContainerRemoveOptions{Force: true})
		cancel()
	}
	c.cli.Close()
}

// dockerKey names one loggen line: "<container> <stream> <seq>", from a message
// "soak <stream> <seq>".
func dockerKey(container, message string) (string, bool) {
	f := strings.Fields(message)
	if len(f) != 3 || f[0] != "soak" {
		return "", false
	}
	if _, err := strconv.Atoi(f[2]); err != nil {
		return "", false
	}
	return container + " " + f[1] + " " + f[2], true
}
