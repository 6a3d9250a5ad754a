package streams

import (
	"bytes"
	"fmt"
	"time"
)

// DockerTSLen is the length of Docker's fixed-width RFC 3339 timestamp in UTC
// (`2006-01-02T15:04:05.000000000Z`), the prefix of every record with timestamps=1.
const DockerTSLen = len("2006-01-02T15:04:05.000000000Z")

// CutDockerTimestamp splits a record as Docker writes it with timestamps=1 and as `docker
// logs --timestamps` prints it (`<RFC3339Nano> <rest>`): the timestamp, its bytes as
// written, and what follows the space. It is the one parser of that prefix: the Docker
// frame decoder and the decoding of a Docker chunk's entries both use it.
func CutDockerTimestamp(p []byte) (ts time.Time, raw, rest []byte, err error) {
	sp := -1
	if len(p) > DockerTSLen && p[DockerTSLen] == ' ' {
		sp = DockerTSLen
	} else {
		sp = bytes.IndexByte(p[:min(len(p), 64)], ' ')
	}
	if sp <= 0 {
		return time.Time{}, nil, nil, fmt.Errorf("no timestamp at record start %.40q", p)
	}
	if ts, err = parseDockerTS(p[:sp]); err != nil {
		return time.Time{}, nil, nil, err
	}
	return ts, p[:sp], p[sp+1:], nil
}

// parseDockerTS parses a timestamp as Docker writes it.
func parseDockerTS(head []byte) (time.Time, error) {
	// The shortest RFC 3339 timestamp is 20 bytes (2006-01-02T15:04:05Z); the longest
	// Docker writes is 35 (nanoseconds and a numeric zone).
	if len(head) < 20 || len(head) > 40 || head[4] != '-' || head[10] != 'T' {
		return time.Time{}, fmt.Errorf("timestamp %.40q: not RFC 3339", head)
	}
	ts, err := time.Parse(time.RFC3339Nano, string(head))
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %.40q: %w", head, err)
	}
	return ts, nil
}

// ParseDockerLine splits a line as `docker logs --timestamps` prints it
// (`2026-11-27T13:18:38.123456789Z message`) into its timestamp and message. One trailing
// "\n" (or "\r\n", which TTY containers write) is not part of the message. ok=false when the
// line does not start with an RFC 3339 timestamp followed by a space or the end of the line;
// msg is then nil and the caller keeps the line whole.
func ParseDockerLine(line []byte) (ts time.Time, msg []byte, ok bool) {
	if bytes.IndexByte(line, ' ') < 0 {
		// A timestamp alone: an empty line.
		ts, err := parseDockerTS(bytes.TrimSuffix(bytes.TrimSuffix(line, []byte{'\n'}), []byte{'\r'}))
		if err != nil {
			return time.Time{}, nil, false
		}
		return ts, line[len(line):], true
	}
	ts, _, msg, err := CutDockerTimestamp(line)
	if err != nil {
		return time.Time{}, nil, false
	}
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
		if n := len(msg); n > 0 && msg[n-1] == '\r' {
			msg = msg[:n-1]
		}
	}
	return ts, msg, true
}
