package streams

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Headers a Docker chunk carries besides its position (HdrContainer … HdrLastTSCount): the
// container's static metadata, so that a consumer needs no Docker access to label what it
// reads, and the resume position of each of its streams after the chunk.
const (
	HdrContainerName  = "Logcap-Container-Name"
	HdrImage          = "Logcap-Image"
	HdrComposeProject = "Logcap-Compose-Project"
	HdrComposeService = "Logcap-Compose-Service"
	HdrLabelPrefix    = "Logcap-Label-" // + the label's key, for the keys of the source's `labels`
	// Both streams' positions after the chunk, `<unix ns>:<count>` (FormatStreamPos): Docker
	// orders its log per stream only, and `since` is inclusive, so a resume skips exactly
	// what each stream published.
	HdrPosStdout = "Logcap-Pos-Stdout"
	HdrPosStderr = "Logcap-Pos-Stderr"
)

// DockerMetaHeader is the metadata headers of a container's chunks: its name, image,
// Compose project and service, and the labels whose keys are in allow.
func DockerMetaHeader(name, image string, labels map[string]string, allow []string) nats.Header {
	h := nats.Header{}
	h.Set(HdrContainerName, name)
	if image != "" {
		h.Set(HdrImage, image)
	}
	if v := labels["com.docker.compose.project"]; v != "" {
		h.Set(HdrComposeProject, v)
	}
	if v := labels["com.docker.compose.service"]; v != "" {
		h.Set(HdrComposeService, v)
	}
	for _, k := range allow {
		if v, ok := labels[k]; ok {
			h[HdrLabelPrefix+k] = []string{v}
		}
	}
	return h
}

// FormatStreamPos is a stream's position as HdrPosStdout and HdrPosStderr carry it: the
// timestamp of its last record published (unix nanoseconds; 0: none) and how many records
// carrying exactly that timestamp were published.
func FormatStreamPos(ts time.Time, count int) string {
	if ts.IsZero() {
		return "0:0"
	}
	return strconv.FormatInt(ts.UnixNano(), 10) + ":" + strconv.Itoa(count)
}

// ParseStreamPos reads what FormatStreamPos wrote.
func ParseStreamPos(s string) (ts time.Time, count int, err error) {
	a, b, ok := strings.Cut(s, ":")
	ns, err1 := strconv.ParseInt(a, 10, 64)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 0 {
		return time.Time{}, 0, fmt.Errorf("bad stream position %q", s)
	}
	if ns == 0 {
		return time.Time{}, 0, nil
	}
	return time.Unix(0, ns).UTC(), n, nil
}
