//! Finding the workspace's own binaries (proxy-init, agent, pilot) from tests
//! of other packages.
//!
//! `env!("CARGO_BIN_EXE_<name>")` only exists inside the binary's own package,
//! so tests elsewhere ask cargo to build the binary (a no-op when it is up to
//! date) and take it from the target directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A workspace binary could not be located or built.
#[derive(Debug, thiserror::Error)]
pub enum BinError {
    /// `cargo build` failed (no such binary yet, or it does not compile).
    #[error("`cargo build --bin {name}` failed: {stderr}")]
    Build {
        /// Binary name.
        name: String,
        /// The tail of cargo's stderr.
        stderr: String,
    },
    /// Neither cargo nor a previously built binary is available.
    #[error("binary {name} not found under {target} and cargo could not run: {source}")]
    NotFound {
        /// Binary name.
        name: String,
        /// Target directory searched.
        target: PathBuf,
        /// Why cargo could not run.
        source: std::io::Error,
    },
}

/// The workspace root (parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness is inside the workspace")
        .to_path_buf()
}

/// The cargo target directory: `CARGO_TARGET_DIR` if set, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// Path of the workspace binary `name` (e.g. `proxy-init`), built in the
/// debug profile with `cargo build --bin NAME` first so it is current.
/// Without cargo (e.g. tests run from an installed tree), an existing
/// `target/{debug,release}/NAME` is used.
pub fn workspace_bin(name: &str) -> Result<PathBuf, BinError> {
    let target = target_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(&cargo)
        .args(["build", "--quiet", "--bin", name])
        .current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", &target)
        .output();
    match built {
        Ok(out) if out.status.success() => Ok(target.join("debug").join(name)),
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = stderr.lines().collect();
            Err(BinError::Build {
                name: name.into(),
                stderr: lines[lines.len().saturating_sub(10)..].join("\n"),
            })
        }
        Err(source) => ["debug", "release"]
            .iter()
            .map(|profile| target.join(profile).join(name))
            .find(|p| p.is_file())
            .ok_or(BinError::NotFound {
                name: name.into(),
                target,
                source,
            }),
    }
}
