#!/usr/bin/env bash
# System packages the local stack and the worker need and PyPI cannot provide: Prometheus (the
# sandbox's metric servers), PostgreSQL (the database of the sandbox's Unleash servers; Node and
# unleash-server come from PyPI and npm, see sandbox/unleash.py) and the OpenSSH client (ssh-keygen:
# the worker verifies SSH-signed requests with it, the sandbox makes its people's keys with it).
# Debian packages.
# Idempotent; skips quietly what is already there; never fails the build where apt is absent.
set -euo pipefail
missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
# Debian keeps the server programs off PATH, in /usr/lib/postgresql/<major>/bin.
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || command -v postgres >/dev/null 2>&1 \
  || missing+=(postgresql)
if [ "${#missing[@]}" = "0" ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: ${missing[*]} not installed and apt-get is not usable here; metric-gate, identity and feature-flag tests need them" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
