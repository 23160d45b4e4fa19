//! Prerequisite checks for tests that need root, namespaces or Envoy.
//!
//! The rule (ARCHITECTURE.md, Tests): a missing prerequisite skips the test
//! with a message, except under `CI=true`, where it fails it.

use std::path::{Path, PathBuf};

use crate::envoy::envoy_bin;

/// Tools the harness runs.
const TOOLS: [&str; 5] = ["ip", "nsenter", "unshare", "setpriv", "mount"];

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// Ok if we are root and the tools the harness drives are installed.
pub fn check_root() -> Result<(), String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("needs root (network namespaces, bridges, setns)".into());
    }
    let missing: Vec<&str> = TOOLS.iter().copied().filter(|t| !on_path(t)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing tools on PATH: {} (apt-get install iproute2 util-linux)",
            missing.join(", ")
        ));
    }
    Ok(())
}

/// The Envoy binary, if present and executable.
pub fn check_envoy() -> Result<PathBuf, String> {
    let bin = envoy_bin();
    if is_executable(&bin) {
        Ok(bin)
    } else {
        Err(format!(
            "Envoy not found at {} (set ENVOY_BIN or run scripts/setup.sh)",
            bin.display()
        ))
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether `CI=true` is set (missing prerequisites then fail tests).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Turns a prerequisite check into "run" (`Some`) or "skip" (`None`, with a
/// message on stderr); under `CI=true` a failed check panics instead.
///
/// ```
/// # use rudder_harness::prereq::{check_root, prerequisite};
/// fn my_test() {
///     let Some(()) = prerequisite("my_test", check_root()) else { return };
///     // ... uses namespaces
/// }
/// ```
pub fn prerequisite<T>(test: &str, check: Result<T, String>) -> Option<T> {
    match check {
        Ok(v) => Some(v),
        Err(why) if in_ci() => panic!("{test}: prerequisite missing under CI=true: {why}"),
        Err(why) => {
            eprintln!("SKIP {test}: {why}");
            None
        }
    }
}
