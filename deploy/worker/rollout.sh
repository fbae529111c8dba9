#!/usr/bin/env bash
# Roll ringmaster's worker forward with Worker Versioning: each build runs as its own Deployment beside
# the others, Temporal routes by build, and an old build goes once no release is pinned to it.
#
#   deploy/worker/rollout.sh render BUILD_ID IMAGE   # print the build's manifests (kubectl kustomize)
#   deploy/worker/rollout.sh deploy BUILD_ID IMAGE   # apply them, wait for the pods, make BUILD_ID current
#   deploy/worker/rollout.sh retire                  # delete every other build's Deployment that is drained
#
# BUILD_ID is <package version>-<commit> (what `ringmaster worker` derives itself; e.g. 0.2.0-1a2b3c4d5e6f).
# Run `ringmaster replay` against the production Temporal with the new code before `deploy` (the CI
# pipelines in deploy/ci do): with auto-upgrade, every running release moves to the new build at its
# next workflow task. `ringmaster`, `kubectl` and the Temporal connection (TEMPORAL_ADDRESS, ...) come
# from the environment; RINGMASTER_DEPLOYMENT_NAME must match the manifests (default ringmaster).
# Exit codes: 0 done; 2 bad arguments; otherwise the failing command's (`ringmaster deployment current`
# keeps failing while no worker of the build polls: `deploy` retries it for CURRENT_TIMEOUT seconds).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
namespace="${NAMESPACE:-ringmaster}"
label="ringmaster.dev/build-id"
current_timeout="${CURRENT_TIMEOUT:-300}"

usage() { sed -n '5,7p' "$0" | sed 's/^# *//' >&2; exit 2; }

# A build id as a DNS label for the Deployment's name: lower case, [a-z0-9-], at most 40 characters.
suffix() { printf '%s' "$1" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9-' '-' | cut -c1-40 | sed 's/-*$//'; }

render() {
  local build="$1" image="$2" overlay
  [[ "$build" =~ ^[A-Za-z0-9_.+-]+$ ]] || { echo "error: BUILD_ID $build: use letters, digits, _ . + -" >&2; exit 2; }
  overlay="$(mktemp -d "$here/.render.XXXXXX")"   # beside version/, which kustomize reads relatively
  trap 'rm -rf "$overlay"' RETURN
  cat > "$overlay/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: ["../version"]
nameSuffix: "-$(suffix "$build")"
labels:
  - pairs: {$label: "$build"}
    includeSelectors: true
images:
  - {name: ghcr.io/example/ringmaster, newName: "${image%:*}", newTag: "${image##*:}"}
patches:
  - target: {kind: Deployment, name: ringmaster-worker}
    patch: |-
      - op: replace
        path: /spec/template/spec/containers/0/env/$(env_index)
        value: {name: RINGMASTER_BUILD_ID, value: "$build"}
YAML
  kubectl kustomize "$overlay"
}

# The position of RINGMASTER_BUILD_ID in the container's env (the JSON patch replaces it by index).
env_index() {
  grep -E '^ +- \{name: ' "$here/version/worker.yaml" | grep -n 'RINGMASTER_BUILD_ID' | cut -d: -f1 | awk '{print $1 - 1}'
}

deploy() {
  local build="$1" image="$2" waited=0
  kubectl apply -k "$here"
  render "$build" "$image" | kubectl apply -f -
  kubectl -n "$namespace" rollout status "deployment/ringmaster-worker-$(suffix "$build")" --timeout=10m
  until ringmaster deployment current "$build"; do
    (( waited += 5 )); (( waited < current_timeout )) || exit 1
    sleep 5   # Temporal refuses a version until one of its workers has polled
  done
}

retire() {
  local current build
  current="$(kubectl -n "$namespace" get deploy -l "$label" -o jsonpath='{range .items[*]}{.metadata.labels.ringmaster\.dev/build-id}{"\n"}{end}')"
  for build in $current; do
    if ringmaster deployment drained "$build"; then
      kubectl -n "$namespace" delete deploy -l "$label=$build"
    fi
  done
}

case "${1:-}" in
  render) [[ $# -eq 3 ]] || usage; render "$2" "$3" ;;
  deploy) [[ $# -eq 3 ]] || usage; deploy "$2" "$3" ;;
  retire) [[ $# -eq 1 ]] || usage; retire ;;
  *) usage ;;
esac
