#!/usr/bin/env bash
# `make run`: a demo log writer plus logcap on the example config (with the local Docker
# engine's containers when one answers). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-examples/logcap.yaml}
if [[ $config == examples/logcap.yaml ]] && command -v docker >/dev/null && timeout 3 docker info >/dev/null 2>&1; then
  config=examples/logcap-docker.yaml
fi
mkdir -p data/demo
(
  i=0
  while sleep 1; do
    i=$((i + 1))
    level=info; (( i % 5 == 0 )) && level=warn
    printf '{"time":"%s","level":"%s","msg":"demo request %d served","user":"alice","password":"hunter2"}\n' \
      "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" "$level" "$i" >> data/demo/app.log
  done
) &
writer=$!
trap 'kill $writer 2>/dev/null || true' EXIT
echo "logcap: running with $config (demo log: data/demo/app.log; Ctrl-C to stop)" >&2
bin/logcap run -c "$config"
