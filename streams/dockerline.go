package streams

import (
	"bytes"
	"time"
)

// ParseDockerLine splits a line as `docker logs --timestamps` prints it
// (`2026-11-27T13:18:38.123456789Z message`) into its timestamp and message. One trailing
// "\n" (or "\r\n", which TTY containers write) is not part of the message. ok=false when the
// line does not start with an RFC 3339 timestamp followed by a space or the end of the line;
// msg is then nil and the caller keeps the line whole.
func ParseDockerLine(line []byte) (ts time.Time, msg []byte, ok bool) {
	sp := bytes.IndexByte(line, ' ')
	head := line
	if sp >= 0 {
		head = line[:sp]
		msg = line[sp+1:]
	} else {
		head = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte{'\n'}), []byte{'\r'})
		msg = line[len(line):]
	}
	// The shortest RFC 3339 timestamp is 20 bytes (2006-01-02T15:04:05Z); the longest
	// Docker writes is 35 (nanoseconds and a numeric zone).
	if len(head) < 20 || len(head) > 40 || head[4] != '-' || head[10] != 'T' {
		return time.Time{}, nil, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(head))
	if err != nil {
		return time.Time{}, nil, false
	}
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
		if n := len(msg); n > 0 && msg[n-1] == '\r' {
			msg = msg[:n-1]
		}
	}
	return t, msg, true
}
