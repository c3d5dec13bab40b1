#!/usr/bin/env bash
# Build a Debian 12 + Python 3.11 base image locally with debootstrap (for machines that reach deb.debian.org but
# no container registry). Usage: deploy/base-image.sh [IMAGE]; does nothing when IMAGE already exists.
set -euo pipefail
image="${1:-localhost/debian-python311:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
if podman image exists "$image"; then echo "base-image: $image exists"; exit 0; fi
command -v debootstrap >/dev/null || { echo "base-image: debootstrap is not installed" >&2; exit 1; }
root="$(mktemp -d /var/tmp/debian-python311.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "base-image: debootstrap bookworm into $root (a few minutes)"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates bookworm "$root" "$mirror"
# Leave out what only an installer needs: apt's package lists and downloaded .debs.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$image"
echo "base-image: built $image"
