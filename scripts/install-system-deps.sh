#!/usr/bin/env bash
# System packages the local stack needs and PyPI cannot provide: Prometheus (Debian package).
# Idempotent; skips quietly what is already there; never fails the build where apt is absent.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: prometheus is not installed and apt-get is not usable here; metric-gate tests will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
