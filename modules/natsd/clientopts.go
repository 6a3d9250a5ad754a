package natsd

import (
	"github.com/nats-io/nats.go"

	"github.com/logcap/logcap/config"
)

// AuthOptions are the credential and TLS options `logcap run` connects to an external NATS
// (nats.urls) with, for other commands that connect as plain clients (`logcap replay`).
func AuthOptions(c config.NATS) ([]nats.Option, error) { return authOptions(c) }
