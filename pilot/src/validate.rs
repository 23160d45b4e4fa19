//! `pilot validate -f FILE...`: the registry's validation, offline.

use std::{path::PathBuf, process::ExitCode};

/// Arguments of `pilot validate`.
#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// Files or directories of Kubernetes/Istio YAML (`-` reads standard input).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
}

/// Prints one line per problem; exit 1 only when there are errors.
pub fn run(args: &ValidateArgs) -> ExitCode {
    let report = rudder_registry::validate::validate_paths(&args.files);
    for line in report.lines() {
        println!("{line}");
    }
    if report.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
