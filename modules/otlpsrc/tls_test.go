package otlpsrc

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/logcap/logcap/otlp"
)

type certs struct{ dir string }

// writePair writes a certificate signed by parent (self-signed when nil) and its key.
func (c certs) writePair(t *testing.T, name string, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(file, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(c.dir, file), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(name+".pem", "CERTIFICATE", der)
	write(name+"-key.pem", "EC PRIVATE KEY", kb)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func (c certs) path(name string) string { return filepath.Join(c.dir, name) }

// With tls.client_ca the source takes requests only from senders whose certificate the CA
// signed: a client without one fails the handshake, one with one is answered 200.
func TestModuleMutualTLS(t *testing.T) {
	c := certs{dir: t.TempDir()}
	now := time.Now()
	ca, caKey := c.writePair(t, "ca", &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, nil, nil)
	c.writePair(t, "server", &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "logcap"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, caKey)
	c.writePair(t, "client", &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "collector"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, caKey)

	addr := freeAddr(t)
	app, _ := newAppWith(t, map[string]any{"listen": addr,
		"tls": map[string]any{"cert": c.path("server.pem"), "key": c.path("server-key.pem"), "client_ca": c.path("ca.pem")}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = app.Stop(ctx) }()

	roots := x509.NewCertPool()
	roots.AddCert(ca)
	post := func(certs []tls.Certificate) (int, error) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}
		defer tr.CloseIdleConnections()
		body := otlp.AppendProto(nil, &otlp.Logs{Resources: []otlp.ResourceLogs{{Scopes: []otlp.ScopeLogs{{Records: []otlp.Record{{Body: "x"}}}}}}})
		resp, err := (&http.Client{Transport: tr}).Post("https://"+addr+"/v1/logs", "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := post(nil); err == nil {
		t.Fatalf("a client without a certificate was answered %d", code)
	}
	pair, err := tls.LoadX509KeyPair(c.path("client.pem"), c.path("client-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if code, err := post([]tls.Certificate{pair}); err != nil || code != 200 {
		t.Fatalf("a client with a certificate: %d, %v", code, err)
	}
}
