#!/usr/bin/env bash
# Rudder's first command: a real sidecar mesh on this machine, no cluster.
#
# Installs what it needs (scripts/setup.sh: iptables, iproute2, Envoy at
# /opt/rudder/bin/envoy), builds rudder, pilot, agent and proxy-init, then runs
# bookinfo (samples/bookinfo) with the 99/1 canary (reviews v1 → v3) active:
# every pod a network namespace with its app, proxy-init's iptables rules and
# an agent-supervised Envoy, configured by pilot. It prints the split it
# measured from the unmeshed sleep pod, then reaches productpage from this host
# through the ingress gateway (Istio's bookinfo-gateway.yaml, the same 99/1
# rule behind it: what `curl http://<ingress>/productpage` answers, and the
# split that way), and exits leaving nothing behind. Extra arguments go to
# `rudder mesh up` (e.g. --keep to leave the mesh running, -n 5000).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: the local mesh needs root (network namespaces, a bridge, iptables): run sudo scripts/demo.sh" >&2
  exit 1
fi
bash scripts/setup.sh
echo "demo: building rudder, pilot, agent and proxy-init (release; the first build takes a few minutes)"
cargo build --release --quiet --bin rudder --bin pilot --bin agent --bin proxy-init
target=${CARGO_TARGET_DIR:-$here/target}
case "$target" in /*) ;; *) target="$here/$target" ;; esac
export ENVOY_BIN=${ENVOY_BIN:-/opt/rudder/bin/envoy}
exec "$target/release/rudder" mesh up samples/bookinfo \
  --rules samples/bookinfo/rules/reviews-99-1-virtual-service.yaml "$@"
