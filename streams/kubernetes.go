package streams

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/logcap/logcap/event"
)

// KindKubernetes is the subject kind of container logs read from a Kubernetes node's CRI
// log files (`type: kubernetes`): logs.kubernetes.<host>.<namespace>/<pod>/<container>/<restart>/<pod uid>.
const KindKubernetes = "kubernetes"

// Headers of a Kubernetes chunk besides the file position (Logcap-Dev … Logcap-End): the
// pod's identity, taken from the log file's path, so a consumer needs no API server to
// label what it reads.
const (
	HdrK8sNamespace = "Logcap-K8s-Namespace"
	HdrK8sPod       = "Logcap-K8s-Pod"
	HdrK8sPodUID    = "Logcap-K8s-Pod-Uid"
	HdrK8sContainer = "Logcap-K8s-Container"
	HdrK8sRestart   = "Logcap-K8s-Restart" // the container's restart count: its log file N.log
)

// PodRef is a container log file's identity: <pods_dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log.
type PodRef struct {
	Namespace, Pod, UID, Container string
	Restart                        string // the restart count N of N.log
	// File is the file's name when it is not N.log (a rotated file first seen rotated,
	// N.log.<time>[.gz]): it keeps that file's subject apart from N.log's.
	File string
}

// Source is the subject's source token: namespace, pod and container first (readable),
// then what tells apart two lives of the same name (restart count, pod uid).
func (r PodRef) Source() string {
	s := r.Namespace + "/" + r.Pod + "/" + r.Container + "/" + r.Restart + "/" + r.UID
	if r.File != "" {
		s += "/" + r.File
	}
	return s
}

// Header is the identity headers of the chunks of r.
func (r PodRef) Header() nats.Header {
	h := nats.Header{}
	h.Set(HdrK8sNamespace, r.Namespace)
	h.Set(HdrK8sPod, r.Pod)
	h.Set(HdrK8sPodUID, r.UID)
	h.Set(HdrK8sContainer, r.Container)
	h.Set(HdrK8sRestart, r.Restart)
	return h
}

// podRefFromHeader reads what Header wrote; ok=false when the chunk has no identity.
func podRefFromHeader(h nats.Header) (PodRef, bool) {
	r := PodRef{Namespace: h.Get(HdrK8sNamespace), Pod: h.Get(HdrK8sPod), UID: h.Get(HdrK8sPodUID),
		Container: h.Get(HdrK8sContainer), Restart: h.Get(HdrK8sRestart)}
	return r, r.Namespace != "" || r.Pod != "" || r.Container != ""
}

// podFields is the identity as an entry's fields ("kubernetes": {namespace, pod, pod_uid,
// container, restart}), its values boxed once per chunk: a new map per entry (steps change
// fields in place), but no allocation per value.
type podFields [5]any

func (r *PodRef) boxed() *podFields {
	if r == nil {
		return nil
	}
	return &podFields{r.Namespace, r.Pod, r.UID, r.Container, r.Restart}
}

func (b *podFields) fields() map[string]any {
	if b == nil {
		return nil
	}
	return map[string]any{"kubernetes": map[string]any{
		"namespace": b[0], "pod": b[1], "pod_uid": b[2], "container": b[3], "restart": b[4],
	}}
}

// CRILine is one line of a CRI container log file:
// `<RFC3339Nano> <stdout|stderr> <P|F>[:<more tags>] <message>`.
type CRILine struct {
	Time    time.Time
	TS      []byte // the timestamp as written (aliases the line)
	Stream  string // "stdout" or "stderr"
	Partial bool   // tag P: the line goes on in the stream's next line
	Msg     []byte // aliases the line
}

// Stream names in CRI log lines.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// ParseCRILine parses one CRI log line, without its '\n': CutCRILine, and the timestamp.
// It never panics on input.
func ParseCRILine(line []byte) (CRILine, error) {
	l, err := CutCRILine(line)
	if err != nil {
		return l, err
	}
	if l.Time, err = parseDockerTS(l.TS); err != nil {
		return l, fmt.Errorf("cri line: %w", err)
	}
	return l, nil
}

// CutCRILine splits one CRI log line (without its '\n') into its fields, checking the
// timestamp's shape but not parsing it (Time stays zero): the monitor's framing needs no
// more. The runtime writes the message after exactly one space; an empty message may lack
// that space.
func CutCRILine(line []byte) (CRILine, error) {
	var l CRILine
	sp := bytes.IndexByte(line[:min(len(line), 41)], ' ')
	if sp < 20 || line[4] != '-' || line[10] != 'T' {
		return l, fmt.Errorf("cri line %.40q: no RFC 3339 timestamp", line)
	}
	l.TS = line[:sp]
	rest := line[sp+1:]
	switch {
	case bytes.HasPrefix(rest, []byte("stdout ")):
		l.Stream, rest = StreamStdout, rest[len("stdout "):]
	case bytes.HasPrefix(rest, []byte("stderr ")):
		l.Stream, rest = StreamStderr, rest[len("stderr "):]
	default:
		return l, fmt.Errorf("cri line %.60q: stream is not stdout or stderr", line)
	}
	tag := rest
	if i := bytes.IndexByte(rest, ' '); i >= 0 {
		tag, l.Msg = rest[:i], rest[i+1:]
	} else {
		l.Msg = rest[len(rest):]
	}
	if i := bytes.IndexByte(tag, ':'); i >= 0 {
		tag = tag[:i] // more tags may follow the first, which is P or F
	}
	switch string(tag) {
	case "F":
	case "P":
		l.Partial = true
	default:
		return l, fmt.Errorf("cri line %.60q: tag %.10q is not P or F", line, tag)
	}
	return l, nil
}

// ParseTimestamp parses a CRI line's (or a Docker record's) RFC 3339 timestamp.
func ParseTimestamp(b []byte) (time.Time, error) { return parseDockerTS(b) }

// AppendCRILine appends an entry as a Kubernetes chunk carries it: a CRI line whose message
// is the whole entry (tag F) or a part that continues in the next entry (tag P), then '\n'.
func AppendCRILine(dst, ts []byte, stream string, partial bool, msg []byte) []byte {
	dst = append(dst, ts...)
	dst = append(dst, ' ')
	dst = append(dst, stream...)
	if partial {
		dst = append(dst, " P "...)
	} else {
		dst = append(dst, " F "...)
	}
	dst = append(dst, msg...)
	return append(dst, '\n')
}

// k8sEntries decodes a Kubernetes chunk: one CRI line per entry, its '\n' the only
// terminator (a '\r' before it is the message's). A P line continues in its stream's next
// line, in this chunk or a later one: the parts of one stream join into one entry (at the
// place of its first part) whatever the other stream wrote between them. A line that is
// not CRI (kept as the runtime wrote it) is an entry of its own at the chunk's read time;
// if marked continued (a line longer than a chunk), it joins the next such line.
func (c *Chunk) k8sEntries(wantRaw bool) ([]event.Entry, [][]byte) {
	n := max(min(c.Lines, len(c.Data)), 1)
	out := make([]event.Entry, 0, n)
	var raws [][]byte
	if wantRaw {
		raws = make([][]byte, 0, n)
	}
	ids := c.K8s.boxed()
	open := [3]int{-1, -1, -1} // the entry each stream (stdout, stderr, not CRI) is joining into
	var msg, raw [3][]byte
	c.EachEntry(func(_ int, b []byte, continued bool) {
		part := bytes.TrimSuffix(b, []byte{'\n'})
		e := event.Entry{Host: c.Host, Kind: c.Kind, Source: c.Source, Time: c.ReadTime, Fields: ids.fields()}
		slot, body := 2, part
		if l, err := ParseCRILine(part); err == nil {
			e.Time, e.Stream, body, continued = l.Time, l.Stream, l.Msg, l.Partial
			slot = 0
			if l.Stream == StreamStderr {
				slot = 1
			}
		}
		k := open[slot]
		if k < 0 {
			if !continued {
				out = append(out, e)
				out[len(out)-1].Message = string(body)
				if wantRaw {
					raws = append(raws, part)
				}
				return
			}
			k = len(out)
			out, open[slot] = append(out, e), k
			msg[slot], raw[slot] = msg[slot][:0], raw[slot][:0]
			if wantRaw {
				raws = append(raws, nil)
			}
		}
		msg[slot] = append(msg[slot], body...)
		if wantRaw {
			raw[slot] = append(raw[slot], part...)
		}
		if !continued {
			c.closeK8s(out, raws, k, msg[slot], raw[slot], false)
			open[slot] = -1
		}
	})
	for slot, k := range open {
		if k >= 0 {
			c.closeK8s(out, raws, k, msg[slot], raw[slot], true) // goes on in a later chunk
		}
	}
	return out, raws
}

// closeK8s completes entry k of out from the parts joined so far.
func (c *Chunk) closeK8s(out []event.Entry, raws [][]byte, k int, msg, raw []byte, continued bool) {
	out[k].Message, out[k].Continued = string(msg), continued
	if raws != nil {
		raws[k] = append([]byte(nil), raw...)
	}
}

// restartOf reads a file name N.log (file "") or N.log.<suffix> (file: the name).
func restartOf(name string) (restart, file string) {
	n, suffix, _ := strings.Cut(name, ".log")
	if _, err := strconv.ParseUint(n, 10, 32); err != nil {
		return "", name
	}
	if suffix != "" {
		file = name
	}
	return n, file
}

// PodRefOf reads a log file's identity from its path below the pods directory,
// `<namespace>_<pod>_<uid>/<container>/<file>`; ok=false for any other shape.
func PodRefOf(rel string) (PodRef, bool) {
	dir, rest, ok1 := bytes.Cut([]byte(rel), []byte{'/'})
	ctr, file, ok2 := bytes.Cut(rest, []byte{'/'})
	if !ok1 || !ok2 || len(ctr) == 0 || len(file) == 0 || bytes.IndexByte(file, '/') >= 0 {
		return PodRef{}, false
	}
	parts := bytes.Split(dir, []byte{'_'})
	if len(parts) != 3 || len(parts[0]) == 0 || len(parts[1]) == 0 || len(parts[2]) == 0 {
		return PodRef{}, false // Kubernetes names and uids never hold '_'
	}
	r := PodRef{Namespace: string(parts[0]), Pod: string(parts[1]), UID: string(parts[2]), Container: string(ctr)}
	r.Restart, r.File = restartOf(string(file))
	return r, true
}
