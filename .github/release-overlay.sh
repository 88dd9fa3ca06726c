#!/usr/bin/env bash
# Writes a kustomization that pins release images by digest, for the CI/CD workflows.
#   release-overlay.sh DIR STABLE_IMAGE               the cpu overlay (stable only: promotion)
#   release-overlay.sh DIR STABLE_IMAGE CANARY_IMAGE  the canary overlay, each Deployment its own image
# A kustomize `images:` entry can't tell the two Deployments apart (both run image `syrinx`),
# so each gets a patch of its own container image.
set -euo pipefail
dir=$1 stable=$2 canary=${3:-}
mkdir -p "$dir"
base=$(realpath --relative-to="$dir" "$(dirname "$0")/../k8s/overlays")
image_patch() {
  printf '  - target:\n      kind: Deployment\n      name: %s\n    patch: |-\n' "$1"
  printf '      - op: replace\n        path: /spec/template/spec/containers/0/image\n        value: %s\n' "$2"
}
{
  printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n'
  if [ -n "$canary" ]; then printf '  - %s/canary\n' "$base"; else printf '  - %s/cpu\n' "$base"; fi
  printf 'patches:\n'
  image_patch syrinx "$stable"
  if [ -n "$canary" ]; then image_patch syrinx-canary "$canary"; fi
} > "$dir/kustomization.yaml"
