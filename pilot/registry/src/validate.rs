//! Offline validation for `pilot validate -f FILE...`: the same loader, store
//! and builder as serving, over all given files at once (so a subset defined
//! in another file resolves), reporting one line per problem.

use std::{io::Read, path::PathBuf};

use rudder_model::{Diagnostic, Severity};

use crate::{
    load::{collect_files, load_file, load_str, LoadedFile},
    store::Store,
};

/// What validation found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValidationReport {
    /// Errors, warnings and unsupported objects, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// Number of served objects read.
    pub objects: usize,
}

impl ValidationReport {
    /// One line per problem: errors, warnings, unsupported objects
    /// (`unsupported: FILE:LINE: HTTPRoute default/web: ...`).
    pub fn lines(&self) -> Vec<String> {
        self.diagnostics.iter().map(ToString::to_string).collect()
    }

    /// The objects Rudder does not serve.
    pub fn unsupported(&self) -> Vec<&Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Unsupported)
            .collect()
    }

    /// Whether anything is an error (the exit code is non-zero only then).
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// Validates files, directories (recursively) and `-` (stdin).
pub fn validate_paths(paths: &[PathBuf]) -> ValidationReport {
    let mut loaded: Vec<LoadedFile> = Vec::new();
    let mut read_errors = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => loaded.push(load_str(&text, "-", "-")),
                Err(e) => read_errors.push(Diagnostic::error(
                    "-",
                    "",
                    format!("cannot read stdin: {e}"),
                )),
            }
            continue;
        }
        let files = if p.is_dir() {
            collect_files(p)
        } else {
            Ok(vec![p.clone()])
        };
        match files.and_then(|fs| {
            fs.iter()
                .map(|f| load_file(f))
                .collect::<Result<Vec<_>, _>>()
        }) {
            Ok(ls) => loaded.extend(ls),
            Err(e) => read_errors.push(Diagnostic::error(
                p.display().to_string(),
                "",
                e.to_string(),
            )),
        }
    }
    validate_loaded(loaded, read_errors)
}

/// Validates already-loaded files (also used by tests with in-memory YAML).
pub fn validate_loaded(
    loaded: Vec<LoadedFile>,
    mut diagnostics: Vec<Diagnostic>,
) -> ValidationReport {
    let mut store = Store::new();
    for (i, l) in loaded.into_iter().enumerate() {
        // Each file its own scope, so duplicates across files behave as when
        // serving; zero-padded so scopes (and their problems) stay in file order.
        store.reset(&format!("#{i:06}"), l.into_batch());
    }
    let snap = store.snapshot();
    diagnostics.extend(snap.diagnostics);
    ValidationReport {
        diagnostics,
        objects: store.objects().count(),
    }
}
