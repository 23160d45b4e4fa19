//! Prerequisite checks and the one skip rule.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use rudder_model::well_known::INSTALLED_ENVOY_BIN;

/// Tools the namespace harness runs.
const NETNS_TOOLS: [&str; 5] = ["ip", "nsenter", "unshare", "setpriv", "mount"];

/// Whether `CI=true` is set (a missing prerequisite then fails the test).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The workspace root (this crate lives in `<root>/test-support`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support sits in the workspace root")
        .to_path_buf()
}

/// Turns a prerequisite check into "run" (`Some`) or "skip" (`None`, see
/// [`skip`]); under `CI=true` a failed check panics with the reason.
///
/// ```no_run
/// # use rudder_test_support::{check_root, prerequisite};
/// fn my_test() {
///     let Some(()) = prerequisite("my_test", check_root()) else { return };
///     // ... uses namespaces
/// }
/// ```
pub fn prerequisite<T>(test: &str, check: Result<T, String>) -> Option<T> {
    match check {
        Ok(v) => Some(v),
        Err(why) => {
            skip(test, &why);
            None
        }
    }
}

/// Records that `test` cannot run because of `why`: under `CI=true` panics;
/// otherwise prints `SKIP <test>: <why>` on stderr and appends the same line
/// to the file `RUDDER_SKIP_FILE` names (if set), for `scripts/test.sh` to
/// count. The caller then returns early.
pub fn skip(test: &str, why: &str) {
    let why = why.replace('\n', " ");
    if in_ci() {
        panic!("{test}: prerequisite missing under CI=true: {why}");
    }
    let line = format!("SKIP {test}: {why}");
    eprintln!("{line}");
    if let Some(file) = std::env::var_os("RUDDER_SKIP_FILE").filter(|f| !f.is_empty()) {
        // One short O_APPEND write per line: parallel tests do not interleave.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            eprintln!(
                "cannot record the skip in {}: {e}",
                Path::new(&file).display()
            );
        }
    }
}

/// Ok if the effective user is root.
pub fn check_root() -> Result<(), String> {
    if nix::unistd::Uid::effective().is_root() {
        Ok(())
    } else {
        Err("needs root".into())
    }
}

/// Ok if we are root and the tools the namespace harness drives are installed.
pub fn check_netns() -> Result<(), String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("needs root (network namespaces, bridges, setns)".into());
    }
    let missing: Vec<&str> = NETNS_TOOLS
        .iter()
        .copied()
        .filter(|t| find_on_path(t).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing tools on PATH: {} (apt-get install iproute2 util-linux)",
            missing.join(", ")
        ));
    }
    Ok(())
}

/// Ok if `tool` is on PATH; `hint` says how to install it.
pub fn check_tool(tool: &str, hint: &str) -> Result<PathBuf, String> {
    find_on_path(tool).ok_or_else(|| format!("{tool} not found on PATH ({hint})"))
}

fn find_on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The Envoy binary: `ENVOY_BIN` if set (it must exist), else
/// [`INSTALLED_ENVOY_BIN`], else the repository's `.venv/bin/envoy` (a Python
/// launcher: fine for `--mode validate` as root, not runnable as UID 1337).
pub fn check_envoy() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("ENVOY_BIN").filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        return if is_executable(&bin) {
            Ok(bin)
        } else {
            Err(format!(
                "ENVOY_BIN={} is not an executable file",
                bin.display()
            ))
        };
    }
    let venv = workspace_root().join(".venv/bin/envoy");
    [PathBuf::from(INSTALLED_ENVOY_BIN), venv.clone()]
        .into_iter()
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            format!(
                "Envoy not found at {INSTALLED_ENVOY_BIN} nor {} (set ENVOY_BIN or run scripts/setup.sh)",
                venv.display()
            )
        })
}

/// `prerequisite(test, check_envoy())`: the Envoy binary, or `None` (skip).
pub fn envoy_bin(test: &str) -> Option<PathBuf> {
    prerequisite(test, check_envoy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_present_prerequisite_runs() {
        assert_eq!(prerequisite("t", Ok::<_, String>(7)), Some(7));
    }

    #[test]
    fn a_missing_tool_names_itself() {
        let e = check_tool("no-such-tool-rudder", "apt-get install it").unwrap_err();
        assert!(
            e.contains("no-such-tool-rudder") && e.contains("apt-get"),
            "{e}"
        );
    }
}
