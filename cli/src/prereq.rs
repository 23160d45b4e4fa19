//! What `rudder mesh up` needs from the machine, each with what to do when
//! it is missing.

use std::path::{Path, PathBuf};

use rudder_model::well_known::INSTALLED_ENVOY_BIN;

/// A missing prerequisite, with the fix.
#[derive(Debug, thiserror::Error)]
#[error("{what}\n  → {fix}")]
pub struct Missing {
    /// What is missing.
    pub what: String,
    /// What to do.
    pub fix: String,
}

fn missing(what: impl Into<String>, fix: impl Into<String>) -> Missing {
    Missing {
        what: what.into(),
        fix: fix.into(),
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Checks root, the tools, Envoy and Rudder's own binaries in `bin_dir`.
pub fn check(envoy: &Path, bin_dir: &Path) -> Result<(), Missing> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(missing(
            "the local mesh needs root (it creates network namespaces, a bridge and iptables rules)",
            "run it as root, e.g. `sudo rudder mesh up samples/bookinfo`",
        ));
    }
    for (tool, package) in [
        ("iptables", "iptables"),
        ("iptables-restore", "iptables"),
        ("ip", "iproute2"),
        ("nsenter", "util-linux"),
        ("unshare", "util-linux"),
        ("setpriv", "util-linux"),
    ] {
        if !on_path(tool) {
            return Err(missing(
                format!("{tool} is not installed (or not on PATH)"),
                format!("run scripts/setup.sh (or apt-get install {package})"),
            ));
        }
    }
    if !executable(envoy) {
        return Err(missing(
            format!("Envoy is missing at {}", envoy.display()),
            format!("run scripts/setup.sh (it installs Envoy at {INSTALLED_ENVOY_BIN}), or set ENVOY_BIN to an Envoy binary UID 1337 can run"),
        ));
    }
    for bin in ["pilot", "agent", "proxy-init"] {
        if !executable(&bin_dir.join(bin)) {
            return Err(missing(
                format!("{bin} is not built next to rudder (looked in {})", bin_dir.display()),
                "run `cargo build --bin pilot --bin agent --bin proxy-init --bin rudder` (or scripts/demo.sh)",
            ));
        }
    }
    Ok(())
}

/// Where Rudder's other binaries are: next to the running `rudder`.
pub fn default_bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_do() {
        let m = missing("Envoy is missing at /x", "run scripts/setup.sh");
        assert_eq!(
            m.to_string(),
            "Envoy is missing at /x\n  → run scripts/setup.sh"
        );
        if nix::unistd::Uid::effective().is_root() {
            let err = check(Path::new("/nonexistent/envoy"), Path::new("/"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("Envoy is missing at /nonexistent/envoy")
                    || err.contains("not installed"),
                "{err}"
            );
        }
    }
}
