package sinks

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// connAlive reports whether the peer has not closed conn, without blocking: a syslog server
// never sends, so a non-blocking peek finding EOF (or an error) means the connection is gone.
func connAlive(conn net.Conn) bool {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := true
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case errors.Is(rerr, syscall.EAGAIN), errors.Is(rerr, syscall.EINTR):
		case rerr != nil, n == 0:
			alive = false
		}
		return true // never wait for readability
	})
	return err == nil && alive
}
