//! `rudder analyze` offline on a directory of broken rules: the expected
//! Istio analyzer codes, istioctl's line format and exit code (79: errors
//! found), against a golden file; and a clean input exits 0.
//! `REFRESH_GOLDEN=1` rewrites the golden.

use std::path::Path;
use std::process::Command;

fn rudder(dir: &Path, args: &[&str]) -> (String, String, Option<i32>) {
    let out = Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running rudder");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

#[test]
fn broken_rules_get_istios_codes_and_exit_79() {
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata");
    let (stdout, stderr, code) = rudder(&testdata, &["analyze", "analyze-broken"]);
    println!("{stdout}{stderr}");
    let golden = testdata.join("analyze-broken.golden");
    if std::env::var_os("REFRESH_GOLDEN").is_some() {
        std::fs::write(&golden, &stdout).unwrap();
    }
    let want = std::fs::read_to_string(&golden).expect("golden (REFRESH_GOLDEN=1 writes it)");
    pretty_assertions::assert_eq!(stdout, want);
    assert_eq!(code, Some(79), "errors found: istioctl's exit code 79");
    assert!(
        stderr.contains("Analyzers found issues when analyzing namespace: default."),
        "{stderr}"
    );
    for code in [
        "IST0101", "IST0102", "IST0106", "IST0108", "IST0109", "IST0118", "IST0127", "IST0162",
    ] {
        assert!(
            stdout.contains(&format!("[{code}]")),
            "{code} missing:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("Error [IST0101] (VirtualService default/reviews analyze-broken/rules.yaml:15) Referenced host not found: \"reviews2\""),
        "{stdout}"
    );

    // Only warnings and infos below the failure threshold: exit 0; raising
    // the output threshold hides the infos.
    let (stdout, _, code) = rudder(
        &testdata,
        &[
            "analyze",
            "-f",
            "analyze-broken/workloads.yaml",
            "--output-threshold",
            "warning",
        ],
    );
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("[IST0108]") && !stdout.contains("[IST0118]"),
        "{stdout}"
    );
    let (_, _, code) = rudder(
        &testdata,
        &[
            "analyze",
            "-f",
            "analyze-broken/workloads.yaml",
            "--failure-threshold",
            "warning",
        ],
    );
    assert_eq!(code, Some(79));

    // Another namespace: nothing of these objects; the sample app is clean
    // apart from its unlabelled namespace (Info).
    let (stdout, stderr, code) = rudder(&testdata, &["analyze", "analyze-broken", "-n", "other"]);
    assert_eq!((stdout.as_str(), code), ("", Some(0)), "{stderr}");
    assert!(stderr.contains("No validation issues found"), "{stderr}");
}
