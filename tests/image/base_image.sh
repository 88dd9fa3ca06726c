#!/usr/bin/env bash
# A stand-in for python:3.11-slim-bookworm, made from Debian's packages where no container
# registry can be reached (docs/deployment.md): debootstrap's minimal bookworm with Python 3.11
# and venv, `python` on the PATH, and this machine's CA bundle (pip inside a build trusts
# what the machine trusts, a TLS-inspecting proxy included).
#   tests/image/base_image.sh [IMAGE] [MIRROR]
set -euo pipefail
image="${1:-localhost/syrinx-python:3.11-bookworm}"
mirror="${2:-http://deb.debian.org/debian}"
root="$(mktemp -d /var/tmp/syrinx-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror"
ln -sf python3 "$root/usr/bin/python"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
container="$(buildah from scratch)"
buildah copy --quiet "$container" "$root" /
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "$container"
buildah commit --quiet --rm "$container" "$image" > /dev/null
probe="$(buildah from --quiet "$image")"
echo "$image: $(buildah run --isolation chroot "$probe" -- python --version 2>&1)"
buildah rm "$probe" > /dev/null
