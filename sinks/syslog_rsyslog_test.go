package sinks

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

// rsyslogd is a running rsyslogd with a plain TCP and a TLS listener; each writes the parsed
// fields of every message it receives, one per line, to tcp.log and tls.log in dir.
type rsyslogd struct {
	dir              string
	tcpAddr, tlsAddr string
	caFile           string
}

func startRsyslogd(t *testing.T) *rsyslogd {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		if os.Getenv("LOGCAP_REQUIRE_RSYSLOG") == "1" {
			t.Fatalf("rsyslogd not in PATH and LOGCAP_REQUIRE_RSYSLOG=1: %v", err)
		}
		t.Skip("SKIPPING rsyslog integration test: rsyslogd not in PATH " +
			"(apt-get install rsyslog rsyslog-gnutls; set LOGCAP_REQUIRE_RSYSLOG=1 to make this a failure)")
	}
	// The TLS listener needs rsyslog's gnutls driver (Debian: rsyslog-gnutls); without it
	// rsyslogd starts but never listens on the TLS port.
	if gtls, _ := filepath.Glob("/usr/lib/*/rsyslog/lmnsd_gtls.so"); len(gtls) == 0 {
		if os.Getenv("LOGCAP_REQUIRE_RSYSLOG") == "1" {
			t.Fatal("rsyslog's TLS driver lmnsd_gtls.so is missing and LOGCAP_REQUIRE_RSYSLOG=1: apt-get install rsyslog-gnutls")
		}
		t.Skip("SKIPPING rsyslog integration test: lmnsd_gtls.so missing (apt-get install rsyslog-gnutls)")
	}
	dir := t.TempDir()
	writeTestPKI(t, dir)
	freePort := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	}
	vals := map[string]string{"Dir": dir, "TCPPort": freePort(), "TLSPort": freePort()}
	tmpl := template.Must(template.ParseFiles(filepath.Join("testdata", "rsyslog.conf.tmpl")))
	var conf bytes.Buffer
	if err := tmpl.Execute(&conf, vals); err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, conf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer // written by exec's copying goroutine while the test reads it
	ctx, stop := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = &out, &out
	// Stopping is SIGTERM, then SIGKILL if rsyslogd has not exited within WaitDelay.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		stop()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop()
		err := cmd.Wait()
		if t.Failed() {
			t.Logf("rsyslogd exited (%v), output:\n%s", err, out.String())
		}
	})

	r := &rsyslogd{dir: dir, caFile: filepath.Join(dir, "ca.pem"),
		tcpAddr: "127.0.0.1:" + vals["TCPPort"], tlsAddr: "127.0.0.1:" + vals["TLSPort"]}
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range []string{r.tcpAddr, r.tlsAddr} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				_ = c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rsyslogd never listened on %s: %s", addr, out.String())
			}
			time.Sleep(20 * time.Millisecond) // polling the port
		}
	}
	return r
}

// writeTestPKI writes ca.pem and a server cert.pem/key.pem for 127.0.0.1 signed by it.
func writeTestPKI(t *testing.T, dir string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "logcap test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]*pem.Block{
		"ca.pem":   {Type: "CERTIFICATE", Bytes: caDER},
		"cert.pem": {Type: "CERTIFICATE", Bytes: der},
		"key.pem":  {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// waitLines polls file until it holds n lines.
func waitLines(t *testing.T, file string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(file)
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(b) > 0 && len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d lines after 30s", file, len(lines), n)
		}
		time.Sleep(20 * time.Millisecond) // polling rsyslog's output
	}
}

func rsyslogRecs(prefix string, n int) []Record {
	levels := []string{"info", "error", "warning", "debug"}
	out := make([]Record, n)
	for i := range out {
		out[i] = Record{Entry: event.Entry{
			Time: time.Now(), Host: "web-1", Kind: "docker", Source: "nginx-" + prefix,
			Stream:  []string{"stdout", `st"d]e\rr`}[i%2],
			Message: fmt.Sprintf("%s %05d  with  spaces, ünïcödé ✓ and [brackets]", prefix, i),
			Fields:  map[string]any{"level": levels[i%4]},
		}, Stream: "LOGS", Seq: uint64(i + 1)}
	}
	return out
}

// checkRsyslogLines compares rsyslog's view of each message with what was sent.
func checkRsyslogLines(t *testing.T, lines []string, recs []Record, facility int) {
	t.Helper()
	if len(lines) != len(recs) {
		t.Fatalf("rsyslog wrote %d lines, want %d", len(lines), len(recs))
	}
	for i, r := range recs {
		sd := `[logcap@32473 kind="docker" stream="stdout"]`
		if i%2 == 1 {
			sd = `[logcap@32473 kind="docker" stream="st\"d\]e\\rr"]`
		}
		want := strings.Join([]string{r.Host, r.Source, sd, strconv.Itoa(facility),
			strconv.Itoa(syslogSeverity(r.Fields)), r.Message}, "|")
		if lines[i] != want {
			t.Fatalf("line %d:\n got %s\nwant %s", i, lines[i], want)
		}
	}
}

func TestSyslogRsyslog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts rsyslogd")
	}
	rs := startRsyslogd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("tcp", func(t *testing.T) {
		fac := SyslogFacility(16)
		s := newSyslogSink(t, SyslogOptions{Address: rs.tcpAddr, Facility: &fac})
		recs := rsyslogRecs("tcp", 5000)
		for i := 0; i < len(recs); i += 500 {
			if err := s.Write(ctx, recs[i:i+500]); err != nil {
				t.Fatal(err)
			}
		}
		checkRsyslogLines(t, waitLines(t, filepath.Join(rs.dir, "tcp.log"), len(recs)), recs, 16)
	})
	t.Run("tls", func(t *testing.T) {
		s := newSyslogSink(t, SyslogOptions{Address: rs.tlsAddr, Mode: "tls", TLS: &config.TLS{CA: rs.caFile}})
		if err := s.Check(ctx); err != nil {
			t.Fatal(err)
		}
		recs := rsyslogRecs("tls", 1000)
		for i := 0; i < len(recs); i += 250 {
			if err := s.Write(ctx, recs[i:i+250]); err != nil {
				t.Fatal(err)
			}
		}
		checkRsyslogLines(t, waitLines(t, filepath.Join(rs.dir, "tls.log"), len(recs)), recs, 1)
	})
	t.Run("tls unknown CA", func(t *testing.T) {
		s := newSyslogSink(t, SyslogOptions{Address: rs.tlsAddr, Mode: "tls"})
		if err := s.Write(ctx, rsyslogRecs("x", 1)); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("write to a server with an unknown CA: %v", err)
		}
	})
	t.Run("rfc3164 over tcp", func(t *testing.T) {
		// After the tcp subtest's 5,000 lines, on a new connection.
		s := newSyslogSink(t, SyslogOptions{Address: rs.tcpAddr, Format: "rfc3164"})
		recs := rsyslogRecs("bsd", 10)
		for i := range recs {
			recs[i].Entry.Stream = ""
		}
		if err := s.Write(ctx, recs); err != nil {
			t.Fatal(err)
		}
		lines := waitLines(t, filepath.Join(rs.dir, "tcp.log"), 5010)[5000:]
		for i, r := range recs {
			// 3164 has no structured data; rsyslog keeps the space after "TAG:" in %msg%.
			want := fmt.Sprintf("web-1|%s|-|1|%d| %s", r.Source, syslogSeverity(r.Fields), r.Message)
			if lines[i] != want {
				t.Fatalf("line %d:\n got %s\nwant %s", i, lines[i], want)
			}
		}
	})
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
