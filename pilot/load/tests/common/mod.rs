//! What the load tool's tests share.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

/// pilot: `PILOT_BIN`, else `pilot` in this test's target directory (built
/// with `cargo build -p rudder-pilot` when missing).
pub fn pilot_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("PILOT_BIN") {
            return PathBuf::from(p);
        }
        // target/<profile>/deps/<test>-<hash> → target/<profile>/pilot
        let exe = std::env::current_exe().expect("test exe");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        let bin = profile_dir.join("pilot");
        if !bin.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-p", "rudder-pilot", "--bin", "pilot"]);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("cargo build -p rudder-pilot");
            assert!(status.success(), "building pilot failed");
        }
        assert!(bin.exists(), "no pilot at {}", bin.display());
        bin
    })
    .clone()
}
