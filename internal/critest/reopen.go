package critest

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
)

// ReopenContainerLog asks the runtime at socket to reopen a container's log file, as the
// kubelet does after renaming it (its log rotation); crictl has no command for it. One
// unary gRPC call over HTTP/2 without TLS, with the standard library: the request message
// is `ReopenContainerLogRequest{container_id = 1}` in protobuf, hand-encoded. (k8s.io/cri-api
// with google.golang.org/grpc would add ~25 modules to go.sum for this one call.)
func ReopenContainerLog(ctx context.Context, socket, containerID string) error {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	defer tr.CloseIdleConnections()
	msg := append([]byte{0x0a}, binary.AppendUvarint(nil, uint64(len(containerID)))...)
	msg = append(msg, containerID...)
	frame := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg))) // not compressed, length
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://localhost/runtime.v1.RuntimeService/ReopenContainerLog", bytes.NewReader(append(frame, msg...)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("reopen container log %s: %w", containerID, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("reopen container log %s: %w", containerID, err)
	}
	status := resp.Trailer.Get("Grpc-Status")
	if status == "" {
		status = resp.Header.Get("Grpc-Status") // a trailers-only answer
	}
	if resp.StatusCode != http.StatusOK || status != "0" {
		return fmt.Errorf("reopen container log %s: http %d, grpc-status %q: %s", containerID, resp.StatusCode, status,
			resp.Trailer.Get("Grpc-Message")+resp.Header.Get("Grpc-Message"))
	}
	return nil
}
