#!/usr/bin/env bash
# Runs the OpenTelemetry demo: a Collector tails collector.log and sends it to logcap's otlp
# source; logcap also tails app.log; logcap's otlp sink sends both to a backend Collector,
# which writes them to data/otel-demo-out/logs.json. Needs `make build tools` (bin/logcap,
# bin/otelcol). Prints how many records of each arrived, then stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf data/otel-demo data/otel-demo-in data/otel-demo-out
mkdir -p data/otel-demo-in data/otel-demo-out
for i in $(seq 1 1000); do echo "collector line $i"; done > data/otel-demo-in/collector.log
for i in $(seq 1 1000); do echo "app line $i"; done > data/otel-demo-in/app.log
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
bin/otelcol --config examples/otel/backend-collector.yaml > data/otel-demo-out/backend.log 2>&1 & pids+=($!)
bin/logcap run -c examples/otel/logcap.yaml > data/otel-demo-out/logcap.log 2>&1 & pids+=($!)
until curl -fs http://127.0.0.1:6062/readyz >/dev/null; do sleep 0.2; done
bin/otelcol --config examples/otel/collector-to-logcap.yaml > data/otel-demo-out/collector.log 2>&1 & pids+=($!)
for _ in $(seq 1 150); do
  n=$(grep -o '"stringValue":"[a-z]* line' data/otel-demo-out/logs.json 2>/dev/null | sort | uniq -c | tr '\n' ' ' || true)
  case "$n" in *"1000 \"stringValue\":\"app line"*"1000 \"stringValue\":\"collector line"*) break ;; esac
  sleep 0.2
done
echo "records at the backend, by kind: ${n:-none}"
