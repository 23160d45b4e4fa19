//! Dev-only helpers shared by the workspace's tests (a dev-dependency only;
//! never linked into a binary). See `docs/architecture.md`, "Tests".
//!
//! ```text
//!  a test ──► prerequisite(test, check_*()) ──► Some(value): run
//!                                          └──► None: "SKIP <test>: <why>" on stderr
//!                                               and appended to $RUDDER_SKIP_FILE
//!                                               (CI=true: panics instead)
//!  a golden test ──► assert_golden(path, got)   (REFRESH_GOLDEN=1 rewrites)
//! ```
//!
//! - [`prerequisite`]: the one skip rule. Outside `CI=true` a missing
//!   prerequisite (root, network-namespace tools, Envoy, iptables, a tool)
//!   skips the test visibly: `scripts/test.sh` sets `RUDDER_SKIP_FILE` and
//!   prints "test: N skipped" with the reasons at the end, since cargo hides
//!   a passing test's output. Under `CI=true` it fails the test instead.
//! - [`check_envoy`]: the Envoy lookup (`ENVOY_BIN`, else
//!   `/opt/rudder/bin/envoy`, else the repository's `.venv/bin/envoy`).
//! - [`assert_golden`]: compare with a golden file, or rewrite it under
//!   `REFRESH_GOLDEN=1`.
//! - [`ads_bootstrap`]: the bootstrap of a real Envoy pointed at an ADS
//!   server on loopback.
//! - `ca::CaServer` (feature `ca`): pilot's certificate service over TLS on
//!   loopback, with a fresh mesh root.
//! - `hostile` (feature `hostile`): property tests over hostile input with a
//!   fixed number of generated cases, counted and printed; strategies for
//!   mutated text and arbitrary JSON.
//! - `webdriver::Browser` (feature `webdriver`): a headless Chromium driven
//!   over WebDriver by a chromedriver the test starts and stops.
#![forbid(unsafe_code)]

#[cfg(feature = "ca")]
pub mod ca;
mod envoy;
mod golden;
#[cfg(feature = "hostile")]
pub mod hostile;
mod prereq;
#[cfg(feature = "webdriver")]
pub mod webdriver;

pub use envoy::ads_bootstrap;
pub use golden::{assert_golden, refresh_golden};
pub use prereq::{
    check_envoy, check_netns, check_root, check_tool, envoy_bin, in_ci, prerequisite, skip,
    workspace_root,
};
