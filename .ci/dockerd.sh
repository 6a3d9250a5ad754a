#!/usr/bin/env bash
# Makes a Docker engine reachable for the dockermon tests and prints the DOCKER_HOST to use.
# Idempotent: an engine that already answers (DOCKER_HOST, or the default socket) is used as
# it is; otherwise docker.io is installed if missing and a private dockerd is started in the
# background with flags that work on machines without iptables or overlayfs.
# Usage: export DOCKER_HOST=$(bash .ci/dockerd.sh)
set -euo pipefail

sock=/run/logcap-docker.sock
log=${LOGCAP_DOCKERD_LOG:-/tmp/logcap-dockerd.log}

answers() { timeout 10 docker -H "$1" info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1; then
	if [[ -n "${DOCKER_HOST:-}" ]] && answers "$DOCKER_HOST"; then echo "$DOCKER_HOST"; exit 0; fi
	if [[ -S /var/run/docker.sock ]] && answers unix:///var/run/docker.sock; then echo unix:///var/run/docker.sock; exit 0; fi
	if [[ -S $sock ]] && answers "unix://$sock"; then echo "unix://$sock"; exit 0; fi
fi

if ! command -v dockerd >/dev/null 2>&1; then
	echo "dockerd.sh: installing docker.io" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq docker.io >&2
fi

if [[ -f /run/logcap-dockerd.pid ]] && kill -0 "$(cat /run/logcap-dockerd.pid)" 2>/dev/null; then
	echo "dockerd.sh: dockerd $(cat /run/logcap-dockerd.pid) runs but does not answer yet" >&2
else
	rm -f /run/logcap-dockerd.pid
	echo "dockerd.sh: starting dockerd on unix://$sock (log: $log)" >&2
	nohup dockerd --host "unix://$sock" --data-root /var/lib/logcap-docker --exec-root /run/logcap-docker-exec \
		--pidfile /run/logcap-dockerd.pid --iptables=false --ip6tables=false --bridge=none \
		--storage-driver=vfs >"$log" 2>&1 </dev/null &
fi

for _ in $(seq 1 120); do
	if answers "unix://$sock"; then echo "unix://$sock"; exit 0; fi
	sleep 0.5
done
echo "dockerd.sh: dockerd did not answer on unix://$sock within 60s; last log lines:" >&2
tail -n 30 "$log" >&2 || true
exit 1
