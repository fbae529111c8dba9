#!/usr/bin/env bash
# System packages the local stack and the worker need and PyPI cannot provide: Prometheus (the
# sandbox's metric servers) and the OpenSSH client (ssh-keygen: the worker verifies SSH-signed
# requests with it, the sandbox makes its people's keys with it). Debian packages.
# Idempotent; skips quietly what is already there; never fails the build where apt is absent.
set -euo pipefail
missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
if [ "${#missing[@]}" = "0" ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: ${missing[*]} not installed and apt-get is not usable here; metric-gate and identity tests need them" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
