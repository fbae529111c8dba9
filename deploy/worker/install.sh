#!/bin/sh
# Installs the worker into a new virtual environment VENV: ringmaster (no sandbox, no dev tools) and
# its locked runtime dependencies, with the s3 extra for an S3 audit archive, hashes checked. The
# Dockerfile's install step, and run as it is by tests/deploy/test_dockerfile.py in a clean
# directory (the image is never built where no Docker engine runs).
# Usage: sh install.sh VENV, from a directory holding what the Dockerfile copies; needs uv on PATH
# (or $UV) and $PYTHON (default python3). UV_NO_CACHE=1 (the Dockerfile) keeps no cache.
set -eu
venv="${1:?usage: install.sh VENV}"
uv="${UV:-uv}"
requirements="$(mktemp)"
trap 'rm -f "$requirements"' EXIT
"$uv" export --quiet --frozen --no-default-groups --extra s3 --no-emit-project -o "$requirements"
"$uv" venv --quiet --python "${PYTHON:-python3}" "$venv"
"$uv" pip install --quiet --python "$venv/bin/python" --require-hashes -r "$requirements"
"$uv" pip install --quiet --python "$venv/bin/python" --no-deps .
