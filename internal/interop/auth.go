package interop

import (
	"net/url"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/logcap/logcap/modules/natsd"
)

// The helpers tests use to connect to the embedded server of a `logcap run` whose data_dir
// is dataDir: it requires the credentials it generated there (nats.embedded.auth: generated).

// UserOption authenticates a nats.go connection as user (natsd.LogcapUser or
// natsd.ReaderUser); it fails the test when the password file cannot be read.
func UserOption(t testing.TB, dataDir, user string) nats.Option {
	t.Helper()
	o, err := natsd.UserOption(dataDir, user)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// UserURL returns serverURL with user's credentials in it, for the nats CLI's --server (and
// nats.Connect).
func UserURL(t testing.TB, serverURL, dataDir, user string) string {
	t.Helper()
	pw, err := natsd.ReadPassword(dataDir, user)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		t.Fatalf("server URL %q: %v", serverURL, err)
	}
	u.User = url.UserPassword(user, pw)
	return u.String()
}
