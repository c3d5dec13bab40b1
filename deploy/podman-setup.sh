#!/usr/bin/env bash
# Configure podman for this kind of machine (root, cgroup setup where crun fails, no bridge networking):
# runc as the runtime, no default ulimits. Idempotent; refuses to edit a containers.conf it did not write.
set -euo pipefail
conf=/etc/containers/containers.conf
marker="# written by deploy/podman-setup.sh"
command -v podman >/dev/null || { echo "podman-setup: podman is not installed" >&2; exit 1; }
command -v runc >/dev/null || { echo "podman-setup: runc is not installed (apt-get install runc)" >&2; exit 1; }
if [ -f "$conf" ] && ! grep -qF "$marker" "$conf"; then
  grep -q '^runtime *= *"runc"' "$conf" && exit 0
  echo "podman-setup: $conf exists and does not set runtime = \"runc\"; add it by hand" >&2
  exit 1
fi
mkdir -p "$(dirname "$conf")"
cat > "$conf" <<CONF
$marker
[containers]
default_ulimits = []

[engine]
runtime = "runc"
CONF
echo "podman-setup: wrote $conf"
