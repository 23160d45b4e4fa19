#!/usr/bin/env bash
# The whole test suite: installs what it needs (scripts/setup.sh), then runs every
# test of the workspace. End-to-end tests need root (network namespaces, iptables);
# under CI=true a missing prerequisite fails them instead of skipping.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/setup.sh
export ENVOY_BIN=${ENVOY_BIN:-/opt/rudder/bin/envoy}
export PATH="$here/.venv/bin:$PATH"
# Skips made visible: every skipped test appends "SKIP <test>: <why>" to this
# file (rudder-test-support), and the summary below prints them, also when a
# step fails (the trap keeps the exit status). Under CI=true nothing skips:
# a missing prerequisite fails its test.
RUDDER_SKIP_FILE=$(mktemp "${TMPDIR:-/tmp}/rudder-skips.XXXXXX")
export RUDDER_SKIP_FILE
# The property tests over hostile input report how many generated cases each
# tried (rudder-test-support's `hostile`); the summary prints them.
RUDDER_HOSTILE_FILE=$(mktemp "${TMPDIR:-/tmp}/rudder-hostile.XXXXXX")
export RUDDER_HOSTILE_FILE
skip_summary() {
  local status=$?
  local n
  echo "test: hostile input, generated cases per property:"
  sort "$RUDDER_HOSTILE_FILE" | sed 's/^hostile: /  /'
  rm -f "$RUDDER_HOSTILE_FILE"
  n=$(sort -u "$RUDDER_SKIP_FILE" | grep -c . || true)
  echo "test: $n skipped"
  sort -u "$RUDDER_SKIP_FILE" | sed 's/^/  /'
  rm -f "$RUDDER_SKIP_FILE"
  exit "$status"
}
trap skip_summary EXIT
# Style gate first: unformatted code or a clippy warning fails the run.
echo "test: cargo fmt --check"
cargo fmt --all -- --check
echo "test: cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --bins --locked
# --no-fail-fast: one failing test binary must not hide the others' results.
cargo test --workspace --locked --no-fail-fast -- --test-threads=2
