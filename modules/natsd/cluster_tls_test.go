package natsd

import (
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
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/internal/natstest"
)

// pki writes a CA and a certificate it signed for 127.0.0.1 (server and client use) into
// dir: ca.pem, cert.pem, key.pem.
func pki(t *testing.T, dir string) *config.TLS {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca " + dir},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	out := &config.TLS{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	for f, b := range map[string]*pem.Block{
		out.CA: {Type: "CERTIFICATE", Bytes: caDER}, out.Cert: {Type: "CERTIFICATE", Bytes: der},
		out.Key: {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(f, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// errLog keeps a server's error lines.
type errLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *errLog) Noticef(string, ...any) {}
func (l *errLog) Warnf(string, ...any)   {}
func (l *errLog) Debugf(string, ...any)  {}
func (l *errLog) Tracef(string, ...any)  {}
func (l *errLog) Fatalf(f string, v ...any) {
	l.Errorf(f, v...)
}

func (l *errLog) Errorf(f string, v ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(f, v...))
	l.mu.Unlock()
}

func (l *errLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

func (l *errLog) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == 0 {
		return ""
	}
	return l.lines[len(l.lines)-1]
}

func (l *errLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// clusterNode starts an embedded server of cfg's cluster (through serverOptions, as logcap
// run does), stopped at the end of the test.
func clusterNode(t *testing.T, cl config.Cluster, log *errLog) *server.Server {
	t.Helper()
	cfg := config.Default()
	cfg.Node = fmt.Sprintf("n%d", time.Now().UnixNano()%1e6)
	cfg.DataDir = t.TempDir()
	cfg.NATS.Embedded.Listen = "127.0.0.1:0"
	cfg.NATS.Embedded.Cluster = &cl
	o, err := serverOptions(cfg)
	if err != nil {
		t.Fatal(err)
	}
	o.JetStream = false // routes are what this test is about
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	if log != nil {
		s.SetLoggerV2(log, false, false, false)
	} else {
		s.SetLoggerV2(serverLogger{l: zap.NewNop().Sugar()}, false, false, false)
	}
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	return s
}

// Routes with nats.embedded.cluster.tls and user/password: two nodes with certificates of
// the cluster's CA and the password form a cluster; a node with the password but a
// certificate of another CA is refused, and so are one without TLS and one with a good
// certificate but no password.
func TestClusterRouteTLS(t *testing.T) {
	dir := t.TempDir()
	good, other := pki(t, filepath.Join(dir, "good")), pki(t, filepath.Join(dir, "other"))
	base := config.Cluster{Name: "logcap-tls", Listen: "127.0.0.1:0", User: "route", Password: "r0ute", TLS: good}
	alog, blog := &errLog{}, &errLog{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("a's errors:\n%s\nb's errors:\n%s", alog, blog)
		}
	})
	a := clusterNode(t, base, alog)
	route := fmt.Sprintf("nats-route://127.0.0.1:%d", a.ClusterAddr().Port)
	withRoute := base
	withRoute.Routes = []string{route}
	b := clusterNode(t, withRoute, blog)
	natstest.Eventually(t, 20*time.Second, func() error {
		if a.NumRoutes() == 0 || b.NumRoutes() == 0 {
			return fmt.Errorf("routes: a %d, b %d", a.NumRoutes(), b.NumRoutes())
		}
		return nil
	})

	for name, cl := range map[string]config.Cluster{
		"a certificate of another CA":       {Name: base.Name, Listen: base.Listen, Routes: []string{route}, User: "route", Password: "r0ute", TLS: other},
		"no TLS":                            {Name: base.Name, Listen: base.Listen, Routes: []string{route}, User: "route", Password: "r0ute"},
		"the CA's certificate, no password": {Name: base.Name, Listen: base.Listen, Routes: []string{route}, TLS: good},
	} {
		t.Run(name, func(t *testing.T) {
			log := &errLog{}
			before := alog.count() + blog.count()
			rogue := clusterNode(t, cl, log)
			// Joined is what the cluster's nodes say: the rogue itself counts the route it
			// dials from the server's INFO until that server refuses its CONNECT, a moment
			// later (caught once in 120 runs).
			joined := func() int { return routesFrom(t, rogue.ID(), a, b) }
			// Wait for the refusal (logged by the rogue or by the node it dials), then check
			// no node took the route, and that the rogue is left without one.
			natstest.Eventually(t, 20*time.Second, func() error {
				if joined() > 0 || log.count() > 0 || alog.count()+blog.count() > before {
					return nil
				}
				return fmt.Errorf("the rogue's route attempt is not answered yet")
			})
			if n := joined(); n > 0 {
				t.Fatalf("a rogue node with %s joined (%d routes to it)", name, n)
			}
			natstest.Eventually(t, 20*time.Second, func() error {
				if n := rogue.NumRoutes(); n > 0 {
					return fmt.Errorf("the rogue still has %d routes", n)
				}
				return nil
			})
			t.Logf("refused: rogue: %q; nodes: %q", log.last(), alog.last()+blog.last())
		})
	}
}

// routesFrom counts the routes of nodes whose remote is the server with id.
func routesFrom(t *testing.T, id string, nodes ...*server.Server) int {
	t.Helper()
	n := 0
	for _, s := range nodes {
		rz, err := s.Routez(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rz.Routes {
			if r.RemoteID == id {
				n++
			}
		}
	}
	return n
}
