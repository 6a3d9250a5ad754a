package sinks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/logcap/logcap/config"
)

func init() {
	Register("syslog", func(name string, opts config.Options) (Sink, error) {
		var o SyslogOptions
		if err := opts.Decode(&o, config.PipelineKeys...); err != nil {
			return nil, fmt.Errorf("syslog sink %s: %w", name, err)
		}
		s, err := NewSyslog(o)
		if err != nil {
			return nil, fmt.Errorf("syslog sink %s: %w", name, err)
		}
		return s, nil
	})
}

// SyslogOptions is the `type: syslog` mapping.
type SyslogOptions struct {
	Address  string          `yaml:"address"`  // host:port
	Mode     string          `yaml:"mode"`     // tcp (default), tls or udp
	TLS      *config.TLS     `yaml:"tls"`      // mode tls: ca, cert, key, insecure_skip_verify
	Format   string          `yaml:"format"`   // rfc5424 (default) or rfc3164
	Facility *SyslogFacility `yaml:"facility"` // name or number; default user (1)
	MaxSize  config.Size     `yaml:"max_size"` // mode udp: datagrams are cut to this; default 2048
	// Timeout bounds dialing and each Write when the caller's context has no earlier deadline.
	Timeout config.Duration `yaml:"timeout"`
}

// SyslogSink sends each record as one syslog message over one persistent connection,
// redialled after an error.
type SyslogSink struct {
	addr     string
	mode     string
	tlsOpts  *config.TLS
	tlsConf  *tls.Config // built on first dial: the factory reads no files
	format   string
	facility int
	maxSize  int
	timeout  time.Duration
	now      func() time.Time

	conn     net.Conn
	buf, msg []byte
}

var _ Sink = (*SyslogSink)(nil)

// NewSyslog validates o. It neither dials nor reads the TLS files.
func NewSyslog(o SyslogOptions) (*SyslogSink, error) {
	s := &SyslogSink{addr: o.Address, mode: o.Mode, format: o.Format, facility: 1,
		maxSize: int(o.MaxSize), timeout: o.Timeout.D(), now: time.Now}
	if o.Address == "" {
		return nil, errors.New("address: required")
	}
	if _, _, err := net.SplitHostPort(o.Address); err != nil {
		return nil, fmt.Errorf("address: %w", err)
	}
	switch s.mode {
	case "":
		s.mode = "tcp"
	case "tcp", "udp", "tls":
	default:
		return nil, fmt.Errorf("mode: %q is not one of tcp, tls, udp", o.Mode)
	}
	if o.TLS != nil {
		if s.mode != "tls" {
			return nil, fmt.Errorf("tls: given with mode %s (want mode: tls)", s.mode)
		}
		if (o.TLS.Cert == "") != (o.TLS.Key == "") {
			return nil, errors.New("tls: cert and key go together")
		}
	}
	s.tlsOpts = o.TLS
	switch s.format {
	case "":
		s.format = "rfc5424"
	case "rfc5424", "rfc3164":
	default:
		return nil, fmt.Errorf("format: %q is not one of rfc5424, rfc3164", o.Format)
	}
	if o.Facility != nil {
		s.facility = int(*o.Facility)
	}
	if s.maxSize == 0 {
		s.maxSize = 2048
	}
	if s.maxSize < 480 {
		// RFC 5426 requires receivers to take 480 octets; less cannot carry a header and a message.
		return nil, fmt.Errorf("max_size: %d is below 480", s.maxSize)
	}
	if s.timeout == 0 {
		s.timeout = 10 * time.Second
	}
	return s, nil
}

func (s *SyslogSink) tlsConfig() (*tls.Config, error) {
	if s.tlsConf != nil {
		return s.tlsConf, nil
	}
	host, _, _ := net.SplitHostPort(s.addr)
	c := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if o := s.tlsOpts; o != nil {
		c.InsecureSkipVerify = o.InsecureSkipVerify
		if o.CA != "" {
			pem, err := os.ReadFile(o.CA)
			if err != nil {
				return nil, fmt.Errorf("tls.ca: %w", err)
			}
			c.RootCAs = x509.NewCertPool()
			if !c.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tls.ca: no PEM certificate in %s", o.CA)
			}
		}
		if o.Cert != "" {
			cert, err := tls.LoadX509KeyPair(o.Cert, o.Key)
			if err != nil {
				return nil, fmt.Errorf("tls.cert: %w", err)
			}
			c.Certificates = []tls.Certificate{cert}
		}
	}
	s.tlsConf = c
	return c, nil
}

func (s *SyslogSink) dial(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	d := &net.Dialer{KeepAlive: 30 * time.Second}
	var (
		conn net.Conn
		err  error
	)
	switch s.mode {
	case "tls":
		var c *tls.Config
		if c, err = s.tlsConfig(); err != nil {
			return fmt.Errorf("syslog %s: %w", s.addr, err)
		}
		conn, err = (&tls.Dialer{NetDialer: d, Config: c}).DialContext(ctx, "tcp", s.addr)
	default:
		conn, err = d.DialContext(ctx, s.mode, s.addr)
	}
	if err != nil {
		return fmt.Errorf("syslog %s: dial %s: %w", s.addr, s.mode, err)
	}
	s.conn = conn
	return nil
}

func (s *SyslogSink) closeConn() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
}

// ensureConn dials if there is no connection, and redials one the server closed. Syslog over
// TCP has no acknowledgement: a batch written into a connection the server already closed
// would vanish in the kernel, so the liveness probe before each batch matters.
func (s *SyslogSink) ensureConn(ctx context.Context) error {
	if s.conn != nil && s.mode != "udp" && !connAlive(s.conn) {
		s.closeConn()
	}
	if s.conn == nil {
		return s.dial(ctx)
	}
	return nil
}

// Write sends every record of the batch, in order. On any error the connection is closed
// (a frame may be half written) and the error is transient: the whole batch is sent again,
// so records before the failure may arrive twice.
func (s *SyslogSink) Write(ctx context.Context, batch []Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(batch) == 0 {
		return nil
	}
	if err := s.ensureConn(ctx); err != nil {
		return err
	}
	conn := s.conn
	deadline := s.now().Add(s.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetWriteDeadline(deadline); err != nil {
		s.closeConn()
		return fmt.Errorf("syslog %s: %w", s.addr, err)
	}
	// Cancellation interrupts a blocked write by moving the deadline into the past.
	// goroutine:ok: the callback returns at once; stop() below ends the registration.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetWriteDeadline(time.Unix(1, 0)) })
	err := s.send(conn, batch)
	if !stop() || err != nil {
		// Cancelled, or failed: the stream may hold half a frame, and the deadline is spoilt.
		s.closeConn()
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("syslog %s: write: %w", s.addr, cerr)
		}
		// The write deadline taken from ctx can fire a moment before ctx's own timer.
		if d, ok := ctx.Deadline(); ok && err != nil && !s.now().Before(d) {
			return fmt.Errorf("syslog %s: write: %w", s.addr, context.DeadlineExceeded)
		}
	}
	if err != nil {
		return fmt.Errorf("syslog %s: write: %w", s.addr, err)
	}
	return nil
}

func (s *SyslogSink) send(conn net.Conn, batch []Record) error {
	buf := s.buf[:0]
	defer func() { s.buf = buf[:0] }()
	for i := range batch {
		s.msg = s.format1(s.msg[:0], &batch[i])
		if s.mode == "udp" {
			msg := s.msg
			if len(msg) > s.maxSize {
				msg = msg[:s.maxSize]
			}
			if _, err := conn.Write(msg); err != nil {
				return err
			}
			continue
		}
		buf = appendOctetCounted(buf, s.msg)
		// Flush in pieces so a large batch does not hold it all in memory at once.
		if len(buf) >= 256<<10 {
			if _, err := conn.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	if len(buf) > 0 {
		if _, err := conn.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

func (s *SyslogSink) format1(buf []byte, r *Record) []byte {
	if s.format == "rfc3164" {
		return appendRFC3164(buf, r, s.facility, s.now())
	}
	return appendRFC5424(buf, r, s.facility)
}

// Check connects if not connected, and reconnects if the server closed the connection.
func (s *SyslogSink) Check(ctx context.Context) error {
	return s.ensureConn(ctx)
}

// Close closes the connection.
func (s *SyslogSink) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	if err != nil {
		return fmt.Errorf("syslog %s: close: %w", s.addr, err)
	}
	return nil
}
