package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Validate checks the configuration as a whole, after ApplyDefaults. It returns an Errors
// listing every problem. Type-specific keys of sources, sinks and steps are checked by their
// types (see Errorf and WrapOptionsError for reporting those with lines).
func (c *Config) Validate() error {
	v := &validator{c: c}
	v.top()
	v.nats()
	v.streams()
	v.components()
	v.listen("admin.listen", c.Admin.Listen, true)
	return v.errs.err()
}

type validator struct {
	c    *Config
	errs Errors
}

func (v *validator) errorf(path, format string, args ...any) {
	v.errs = append(v.errs, v.c.Errorf(path, format, args...))
}

func (v *validator) top() {
	c := v.c
	if err := natsToken(c.Node); err != nil {
		v.errorf("node", "%v", err)
	}
	if c.DataDir == "" {
		v.errorf("data_dir", "required")
	}
	if c.ShutdownTimeout <= 0 {
		v.errorf("shutdown_timeout", "must be greater than 0")
	}
	if l := c.MemoryLimit; l != nil && *l != 0 && *l < MinMemoryLimit {
		v.errorf("memory_limit", "%s is below the minimum of 32MiB (0: no limit)", *l)
	}
	v.oneOf("log.level", c.Log.Level, false, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, true, "json", "console")
}

func (v *validator) oneOf(path, val string, emptyOK bool, allowed ...string) {
	if val == "" && emptyOK {
		return
	}
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	if val == "" {
		v.errorf(path, "required (one of %s)", strings.Join(allowed, ", "))
		return
	}
	v.errorf(path, "%q is not one of %s", val, strings.Join(allowed, ", "))
}

func (v *validator) nats() {
	n := v.c.NATS
	if n.Embedded != nil && len(n.URLs) > 0 {
		v.errorf("nats.urls", "cannot be used with nats.embedded (choose one)")
	}
	for i, u := range n.URLs {
		v.url(fmt.Sprintf("nats.urls[%d]", i), u, "nats", "tls", "ws", "wss")
	}
	if n.Password != "" && n.User == "" {
		v.errorf("nats.password", "requires nats.user")
	}
	var auth []string
	for _, a := range []struct{ key, val string }{
		{"user", n.User}, {"token", n.Token}, {"nkey_seed", n.NKeySeed}, {"creds", n.Creds},
	} {
		if a.val != "" {
			auth = append(auth, a.key)
		}
	}
	if len(auth) > 1 {
		v.errorf("nats."+auth[1], "cannot be combined with nats.%s (use one of user, token, nkey_seed, creds)", auth[0])
	}
	if t := n.TLS; t != nil && (t.Cert == "") != (t.Key == "") {
		v.errorf("nats.tls", "cert and key must be given together")
	}
	if n.ConnectTimeout <= 0 {
		v.errorf("nats.connect_timeout", "must be greater than 0")
	}
	e := n.Embedded
	if e == nil {
		return
	}
	v.listen("nats.embedded.listen", e.Listen, true)
	if e.SyncInterval != "always" {
		if d, err := time.ParseDuration(e.SyncInterval); err != nil || d <= 0 {
			v.errorf("nats.embedded.sync_interval", "invalid %q (want a duration such as 2m, or \"always\")", e.SyncInterval)
		}
	}
	if e.MaxPayload <= 0 {
		v.errorf("nats.embedded.max_payload", "must be greater than 0")
	}
	if e.StoreReserve < 0 {
		v.errorf("nats.embedded.store_reserve", "must be greater than 0")
	}
	if e.CacheExpire < 0 {
		v.errorf("nats.embedded.cache_expire", "must be greater than 0")
	}
	switch e.Auth {
	case AuthGenerated:
	case AuthNone:
		if e.Listen != "none" && !loopback(e.Listen) {
			v.errorf("nats.embedded.auth", "none with listen %s, an address other hosts can reach: anyone could publish into logs.>, purge and delete the streams (listen on 127.0.0.1, or keep auth: generated)", e.Listen)
		}
	default:
		v.errorf("nats.embedded.auth", "%q is not one of generated, none", e.Auth)
	}
	if cl := e.Cluster; cl != nil {
		if cl.Name == "" {
			v.errorf("nats.embedded.cluster.name", "required")
		} else if err := natsToken(cl.Name); err != nil {
			v.errorf("nats.embedded.cluster.name", "%v", err)
		}
		if cl.Listen == "" {
			v.errorf("nats.embedded.cluster.listen", "required")
		} else {
			v.listen("nats.embedded.cluster.listen", cl.Listen, false)
		}
		for i, r := range cl.Routes {
			v.url(fmt.Sprintf("nats.embedded.cluster.routes[%d]", i), r, "nats-route", "nats", "tls")
		}
		if (cl.User == "") != (cl.Password == "") {
			v.errorf("nats.embedded.cluster.user", "user and password must be given together")
		}
		if t := cl.TLS; t != nil {
			if t.Cert == "" || t.Key == "" {
				v.errorf("nats.embedded.cluster.tls", "cert and key are required (a node both accepts and dials routes)")
			}
		}
	}
}

// loopback says whether listen address hp accepts connections from this host only.
func loopback(hp string) bool {
	host, _, err := net.SplitHostPort(hp)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (v *validator) url(path, s string, schemes ...string) {
	u, err := url.Parse(s)
	if err != nil {
		v.errorf(path, "invalid URL %q", s)
		return
	}
	ok := false
	for _, sc := range schemes {
		ok = ok || u.Scheme == sc
	}
	if !ok {
		v.errorf(path, "invalid URL %q (want scheme %s://)", s, strings.Join(schemes, ":// or "))
		return
	}
	if u.Hostname() == "" {
		v.errorf(path, "invalid URL %q: no host", s)
		return
	}
	if p := u.Port(); p != "" {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			v.errorf(path, "invalid URL %q: bad port", s)
		}
	}
}

// listen checks a host:port listen address; "none" disables the listener where allowed.
func (v *validator) listen(path, s string, noneOK bool) {
	if s == "none" && noneOK {
		return
	}
	want := "host:port"
	if noneOK {
		want += ` or "none"`
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		v.errorf(path, "invalid address %q (want %s)", s, want)
		return
	}
	if strings.ContainsAny(host, " \t/") {
		v.errorf(path, "invalid address %q: bad host", s)
		return
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.errorf(path, "invalid address %q: port must be a number from 0 to 65535", s)
	}
}

func (v *validator) streams() {
	s := v.c.Streams
	v.stream("streams.logs", s.Logs)
	v.stream("streams.deadletter", s.DeadLetter)
	if s.Logs.Name == s.DeadLetter.Name {
		v.errorf("streams.deadletter.name", "%q is also the logs stream's name", s.DeadLetter.Name)
	}
}

func (v *validator) stream(path string, s StreamSpec) {
	if err := streamName(s.Name); err != nil {
		v.errorf(path+".name", "%v", err)
	}
	if s.Replicas < 1 || s.Replicas > 5 {
		v.errorf(path+".replicas", "%d is out of range (1 to 5)", s.Replicas)
	}
	v.oneOf(path+".storage", s.Storage, false, "file", "memory")
	v.oneOf(path+".discard", s.Discard, false, "old", "new")
	if path == "streams.logs" {
		v.oneOf(path+".when_full", s.WhenFull, false, "block", "drop_oldest")
	} else if s.WhenFull != "" {
		v.errorf(path+".when_full", "only streams.logs has a when_full policy (the sources can wait; a dead letter cannot)")
	}
	if s.MaxMsgSize > s.MaxBytes {
		v.errorf(path+".max_msg_size", "%s is larger than max_bytes (%s)", s.MaxMsgSize, s.MaxBytes)
	}
}

func (v *validator) components() {
	c := v.c
	sources := map[string]int{}
	for i, s := range c.Sources {
		p := fmt.Sprintf("sources[%d]", i)
		switch {
		case s.Name == "":
			v.errorf(p+".name", "required")
		case sources[s.Name] > 0:
			v.errorf(p+".name", "%q is also the name of sources[%d]", s.Name, sources[s.Name]-1)
		default:
			sources[s.Name] = i + 1
		}
		if s.Type == "" {
			v.errorf(p+".type", "required (one of file, docker, kubernetes, otlp)")
		} else {
			v.oneOf(p+".type", s.Type, false, "file", "docker", "kubernetes", "otlp")
		}
	}

	// Processors and sinks both become durable consumers on the same streams, so their names
	// share one namespace.
	durables := map[string]string{}
	streams := map[string]string{c.Streams.Logs.Name: "streams.logs", c.Streams.DeadLetter.Name: "streams.deadletter"}
	for i, p := range c.Processors {
		path := fmt.Sprintf("processors[%d]", i)
		nameOK := v.durable(path, p.Name, durables)
		if p.Name == "logs" {
			v.errorf(path+".name", `"logs" is reserved (the logs stream has subjects logs.>)`)
		}
		v.filter(path+".input", p.Input)
		// A bad name already says why the stream named after it is bad.
		if p.Stream != "" && nameOK {
			if err := streamName(p.Stream); err != nil {
				v.errorf(path+".stream", "%v", err)
			} else if other, dup := streams[p.Stream]; dup {
				v.errorf(path+".stream", "%q is also the stream of %s", p.Stream, other)
			} else {
				streams[p.Stream] = path
			}
		}
		if len(p.Steps) == 0 {
			v.errorf(path+".steps", "at least one step is required")
		}
		for j, st := range p.Steps {
			if _, _, err := st.Step(); err != nil {
				v.errorf(fmt.Sprintf("%s.steps[%d]", path, j), "%v", err)
			}
		}
		if p.MaxDeliver < 0 {
			v.errorf(path+".max_deliver", "must be 0 (the default) or more")
		}
		if p.Workers < 0 || p.Workers > MaxProcWorkers {
			v.errorf(path+".workers", "%d: want 0 (the default) to %d", p.Workers, MaxProcWorkers)
		}
		v.oneOf(path+".output_format", p.OutputFormat, true, OutputLinesJSON, OutputNDJSON)
	}
	for i, s := range c.Sinks {
		path := fmt.Sprintf("sinks[%d]", i)
		v.durable(path, s.Name, durables)
		if s.Type == "" {
			v.errorf(path+".type", "required")
		}
		v.filter(path+".input", s.Input)
		if s.Batch.MaxEntries < 0 {
			v.errorf(path+".batch.max_entries", "must be 0 (the default) or more")
		}
		if s.MaxDeliver < 0 {
			v.errorf(path+".max_deliver", "must be 0 (the default) or more")
		}
		if c := s.Request.Concurrency; c < 0 || c > MaxConcurrency {
			v.errorf(path+".request.concurrency", "%d: want 0 (the sink's default) to %d", c, MaxConcurrency)
		}
		if b := s.Backoff; b.Initial > 0 && b.Max > 0 && b.Initial > b.Max {
			v.errorf(path+".backoff.max", "%v is less than initial (%v)", b.Max, b.Initial)
		}
	}
}

// durable checks a processor's or sink's name, which becomes its durable consumer name.
func (v *validator) durable(path, name string, seen map[string]string) (ok bool) {
	if name == "" {
		v.errorf(path+".name", "required")
		return false
	}
	for _, r := range name {
		if !(r == '-' || r == '_' || r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r))) {
			v.errorf(path+".name", "%q: only letters, digits, - and _ are allowed (it names a durable consumer)", name)
			return false
		}
	}
	if other, dup := seen[name]; dup {
		v.errorf(path+".name", "%q is also the name of %s", name, other)
		return true
	}
	seen[name] = path
	return true
}

func (v *validator) filter(path, f string) {
	if f == "" {
		v.errorf(path, "required (a subject filter such as logs.>)")
		return
	}
	if err := subjectFilter(f); err != nil {
		v.errorf(path, "%v", err)
	}
}

// subjectFilter checks a NATS subject filter: non-empty tokens, * and > only as whole tokens,
// > only last.
func subjectFilter(f string) error {
	if !utf8.ValidString(f) {
		return fmt.Errorf("invalid subject filter %q: not UTF-8", f)
	}
	toks := strings.Split(f, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return fmt.Errorf("invalid subject filter %q: empty token", f)
		case strings.IndexFunc(t, unicode.IsSpace) >= 0:
			return fmt.Errorf("invalid subject filter %q: white space", f)
		case t == ">" && i != len(toks)-1:
			return fmt.Errorf("invalid subject filter %q: > must be the last token", f)
		case t != ">" && t != "*" && strings.ContainsAny(t, "*>"):
			return fmt.Errorf("invalid subject filter %q: * and > must be whole tokens", f)
		}
	}
	return nil
}

// natsToken checks a string used as one subject token (the node name).
func natsToken(s string) error {
	if s == "" {
		return fmt.Errorf("required")
	}
	if !utf8.ValidString(s) || strings.ContainsAny(s, ".*>") || strings.IndexFunc(s, unicode.IsSpace) >= 0 {
		return fmt.Errorf("%q is not a valid NATS subject token (no ., *, > or white space)", s)
	}
	return nil
}

// streamName checks a JetStream stream name (it is also a file name in the store).
func streamName(s string) error {
	if s == "" {
		return fmt.Errorf("required")
	}
	if len(s) > 255 || !utf8.ValidString(s) || strings.ContainsAny(s, ".*>/\\") || strings.IndexFunc(s, unicode.IsSpace) >= 0 {
		return fmt.Errorf("%q is not a valid stream name (no ., *, >, /, \\ or white space)", s)
	}
	return nil
}
