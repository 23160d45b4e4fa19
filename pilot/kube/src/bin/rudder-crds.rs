//! Prints the CRDs Rudder reads as YAML:
//! `cargo run -p rudder-kube --bin rudder-crds > manifests/crds.yaml`.

#![forbid(unsafe_code)]

use std::{io::Write, process::ExitCode};

fn main() -> ExitCode {
    match rudder_kube::crds_yaml() {
        Ok(yaml) => match std::io::stdout().write_all(yaml.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("rudder-crds: writing stdout: {error}");
                ExitCode::FAILURE
            }
        },
        Err(error) => {
            eprintln!("rudder-crds: {error}");
            ExitCode::FAILURE
        }
    }
}
