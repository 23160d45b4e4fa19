//! Golden files: generated text compared with a checked-in file, rewritten
//! with `REFRESH_GOLDEN=1` (Istio's `REFRESH_GOLDEN=true` also works).

use std::path::Path;

/// Whether `REFRESH_GOLDEN` asks to rewrite golden files: set, non-empty,
/// and neither `0` nor `false`.
pub fn refresh_golden() -> bool {
    std::env::var("REFRESH_GOLDEN").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Compares `got` with the file at `path` (a diff on mismatch), or under
/// `REFRESH_GOLDEN=1` writes `got` there (creating the directory).
pub fn assert_golden(path: &Path, got: &str) {
    if refresh_golden() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        }
        std::fs::write(path, got).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let want = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with REFRESH_GOLDEN=1 to create it)",
            path.display()
        )
    });
    if want != got {
        pretty_assertions::assert_eq!(
            want,
            got,
            "{} differs (REFRESH_GOLDEN=1 to accept)",
            path.display()
        );
    }
}
