#!/usr/bin/env bash
# Rebuilds third_party/nats-server from a published nats-server module and applies logcap's
# patch (third_party/nats-server/PATCH.md). Usage, from the repository root:
#   third_party/update-nats-server.sh v2.15.2     # re-creates the tree: git diff must be empty
#   third_party/update-nats-server.sh v2.16.0     # an upgrade: then read PATCH.md, "Upgrading"
set -euo pipefail
version=${1:?usage: $0 VERSION (e.g. v2.15.2)}
dst=third_party/nats-server
patch=$dst/cache-expire.patch
keep=$(mktemp -d)
trap 'rm -rf "$keep"' EXIT
cp "$dst/PATCH.md" "$patch" "$keep/"
src=$(go mod download -json "github.com/nats-io/nats-server/v2@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$src" ] || { echo "cannot download nats-server $version" >&2; exit 1; }
rm -rf "$dst"
mkdir -p "$dst"
cp "$src/go.mod" "$src/go.sum" "$src/LICENSE" "$dst/"
# The packages logcap builds (go list -deps ./... | grep nats-server), without tests, test data
# and the build-ignored generator.
(cd "$src" && find server conf logger internal/ldap -name '*.go' ! -name '*_test.go' \
	! -path '*/testdata/*' ! -path 'server/configs/*' ! -name errors_gen.go) |
	while read -r f; do mkdir -p "$dst/$(dirname "$f")"; cp "$src/$f" "$dst/$f"; done
chmod -R u+w "$dst"
cp "$keep/PATCH.md" "$keep/cache-expire.patch" "$dst/"
(cd "$dst" && patch -p1 --no-backup-if-mismatch < cache-expire.patch)
go mod edit -require "github.com/nats-io/nats-server/v2@$version"
sed -i "s/^NATS_SERVER_VERSION := .*/NATS_SERVER_VERSION := $version/" Makefile
go build ./... && echo "third_party/nats-server is nats-server $version with the cache-expire patch"
