package natsd

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"

	"github.com/logcap/logcap/config"
)

// The identities of the embedded server (nats.embedded.auth: generated, the default). Their
// passwords are generated into data_dir/auth/<user>.password (mode 0600) on first start.
const (
	// LogcapUser is logcap's own identity: the only one that may publish to logs.>, manage
	// streams and consumers. `logcap run` and `logcap replay` use it.
	LogcapUser = "logcap"
	// ReaderUser is the read-only identity for people and tools (the nats CLI): stream info,
	// message get, its own consumers; no publish, no purge, no delete, no update.
	ReaderUser = "reader"
)

// LogcapInboxPrefix is the inbox prefix of logcap's own connections to an embedded server
// with auth: the reader may subscribe to _INBOX.> only, so it can neither see logcap's
// replies nor learn their subjects (to point a push consumer of its own at them).
const LogcapInboxPrefix = "_INBOX_logcap"

// AuthDir is where the embedded server's generated passwords live.
func AuthDir(dataDir string) string { return filepath.Join(dataDir, "auth") }

// PasswordFile is the file holding user's password.
func PasswordFile(dataDir, user string) string {
	return filepath.Join(AuthDir(dataDir), user+".password")
}

// EmbeddedAuth reports whether cfg's embedded server requires credentials.
func EmbeddedAuth(cfg *config.Config) bool {
	return cfg.NATS.Embedded != nil && cfg.NATS.Embedded.Auth != config.AuthNone
}

// ReadPassword reads user's generated password from data_dir.
func ReadPassword(dataDir, user string) (string, error) {
	f := PasswordFile(dataDir, user)
	b, err := os.ReadFile(f)
	if err != nil {
		return "", fmt.Errorf("nats credentials %s: %w", f, err)
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", fmt.Errorf("nats credentials %s: empty (delete it and restart logcap run to generate a new one)", f)
	}
	return pw, nil
}

// UserOption is the nats.go option that authenticates as user on the embedded server whose
// data_dir is dataDir.
func UserOption(dataDir, user string) (nats.Option, error) {
	pw, err := ReadPassword(dataDir, user)
	if err != nil {
		return nil, err
	}
	return nats.UserInfo(user, pw), nil
}

// ClientAuthOptions are the options a client of cfg's NATS connects with as logcap's own
// identity: the generated credentials of an embedded server with auth, else nats.user,
// nats.creds… of an external one. `logcap replay` uses it.
func ClientAuthOptions(cfg *config.Config) ([]nats.Option, error) {
	if cfg.NATS.Embedded == nil {
		return authOptions(cfg.NATS)
	}
	if !EmbeddedAuth(cfg) {
		return nil, nil
	}
	o, err := UserOption(cfg.DataDir, LogcapUser)
	if err != nil {
		return nil, fmt.Errorf("%w (logcap run generates it on its first start)", err)
	}
	return []nats.Option{o, nats.CustomInboxPrefix(LogcapInboxPrefix)}, nil
}

// ensurePasswords returns the passwords of the embedded server's identities, generating
// the missing ones into data_dir/auth (directory 0700, files 0600).
func ensurePasswords(dataDir string) (map[string]string, error) {
	dir := AuthDir(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("nats credentials directory %s: %w", dir, err)
	}
	out := map[string]string{}
	for _, u := range []string{LogcapUser, ReaderUser} {
		pw, err := ReadPassword(dataDir, u)
		if errors.Is(err, fs.ErrNotExist) {
			pw, err = writePassword(dataDir, u)
		}
		if err != nil {
			return nil, err
		}
		out[u] = pw
	}
	return out, nil
}

// writePassword generates a password for user and writes it atomically (a crash leaves
// either no file or a whole one) with mode 0600.
func writePassword(dataDir, user string) (string, error) {
	final := PasswordFile(dataDir, user)
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("nats credentials %s: generate: %w", final, err)
	}
	pw := hex.EncodeToString(b)
	f, err := os.CreateTemp(filepath.Dir(final), "."+user+".password-*") // mode 0600
	if err != nil {
		return "", fmt.Errorf("nats credentials %s: %w", final, err)
	}
	tmp := f.Name()
	_, err = f.WriteString(pw + "\n")
	err = errors.Join(err, f.Chmod(0o600), f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("nats credentials %s: write: %w", final, err)
	}
	return pw, nil
}

// serverUsers are the embedded server's users: logcap with every permission, the reader
// read-only. Passwords are kept bcrypt-hashed in memory (the minimum cost: they are random
// 192-bit secrets, and each client connection pays the comparison).
func serverUsers(cfg *config.Config) ([]*server.User, error) {
	pws, err := ensurePasswords(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	hash := func(u string) (string, error) {
		h, err := bcrypt.GenerateFromPassword([]byte(pws[u]), bcrypt.MinCost)
		if err != nil {
			return "", fmt.Errorf("nats credentials %s: hash: %w", PasswordFile(cfg.DataDir, u), err)
		}
		return string(h), nil
	}
	lh, err := hash(LogcapUser)
	if err != nil {
		return nil, err
	}
	rh, err := hash(ReaderUser)
	if err != nil {
		return nil, err
	}
	return []*server.User{
		{Username: LogcapUser, Password: lh},
		{Username: ReaderUser, Password: rh, Permissions: readerPermissions(cfg)},
	}, nil
}

// readerPermissions is what the read-only identity may do: the JetStream API calls that read
// (account and stream info, stream names and lists, message get and direct get), and the
// consumer calls of its own consumers (create, info, next, delete, ack, flow control: what
// `nats sub --stream`, `nats stream get` and ordered consumers use). It may not publish
// anywhere else (logs.>, _INBOX.> replies it could forge), nor purge, delete or update a
// stream, nor create, update, delete, pull from or ack for logcap's own durable consumers (a
// sink's or processor's: it would make them skip lines); it may read their info (pending).
// It may subscribe to _INBOX.> only (its own replies and deliveries: nats.go's and the nats
// CLI's default inbox prefix): a core subscription on logs.> would be the interest a push
// consumer of its own on another stream needs to deliver into logs.>, where LOGS stores it,
// and one on $JS.API.> or logcap's inboxes would show it subjects to aim deliveries at.
func readerPermissions(cfg *config.Config) *server.Permissions {
	allow := []string{
		"$JS.API.INFO",
		"$JS.API.STREAM.NAMES",
		"$JS.API.STREAM.LIST",
		"$JS.API.STREAM.INFO.*",
		"$JS.API.STREAM.MSG.GET.*",
		"$JS.API.DIRECT.GET.>",
		"$JS.API.CONSUMER.NAMES.*",
		"$JS.API.CONSUMER.LIST.*",
		"$JS.API.CONSUMER.INFO.*.*",
		"$JS.API.CONSUMER.CREATE.*.*",   // create with a name (the only way nats.go creates)
		"$JS.API.CONSUMER.CREATE.*.*.>", // … with its filter subject
		"$JS.API.CONSUMER.DELETE.*.*",
		"$JS.API.CONSUMER.MSG.NEXT.*.*",
		"$JS.ACK.>",
		"$JS.FC.>",
	}
	var deny []string
	seen := map[string]bool{}
	durable := func(name string) {
		if name == "" || seen[name] {
			return
		}
		seen[name] = true
		deny = append(deny,
			"$JS.API.CONSUMER.CREATE.*."+name,
			"$JS.API.CONSUMER.CREATE.*."+name+".>", // create with a filter subject
			"$JS.API.CONSUMER.DELETE.*."+name,
			"$JS.API.CONSUMER.MSG.NEXT.*."+name,
			"$JS.ACK.*."+name+".>",
			"$JS.ACK.*.*.*."+name+".>", // the v2 ack subject: domain, account hash, stream
		)
	}
	for _, s := range cfg.Sinks {
		durable(s.Name)
	}
	for _, p := range cfg.Processors {
		durable(p.Name)
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: allow, Deny: deny},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
	}
}
