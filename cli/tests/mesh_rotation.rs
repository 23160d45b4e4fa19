//! End to end: workload certificates (TTL 2 minutes) rotate under live
//! traffic, in file mode (hot restart) and SDS mode (no restart), both meshes
//! side by side so the test takes one renewal period, not two.
//!
//! Per mode, from the meshed productpage pod to details (auto mTLS between
//! the two sidecars, both rotating): short requests (a connection each), a
//! keep-alive HTTP/1.1 client and one HTTP/2 stream (curl, prior knowledge,
//! to productpage's sidecar) of a slow response lasting the whole run. We
//! watch both Envoys' `/certs` for serial changes. Asserted: renewals were
//! seen on both sidecars and no request failed (a keep-alive request may move
//! to a new connection after a graceful close); in SDS mode the stream is
//! not cut either. Printed: renewals, reconnects, and whether the stream was
//! cut (file mode: a stream outliving the parent Envoy's drain is cut at its
//! shutdown).
//!
//! Needs root, Envoy, iptables, openssl and curl: without them it says why
//! and returns, except under CI=true, where that is a failure.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{prerequisites, Mesh};
use rudder_harness::workspace_root;
use rudder_model::well_known::ENVOY_ADMIN_PORT;

/// How long the load runs: more than one renewal period (half of 2 minutes).
const LOAD_SECONDS: u64 = 130;

#[derive(Debug)]
struct ModeReport {
    mode: &'static str,
    /// Distinct workload certificate serials seen per sidecar, minus one.
    renewals: Vec<(String, usize)>,
    load: serde_json::Value,
    stream_lines: usize,
    stream_status: String,
    /// What the mesh's logs say about failures (see `trouble_lines`).
    trouble: Vec<String>,
}

/// Lines of every `.log` file under `dir` that tell why a request failed:
/// Envoy access-log lines with a 5xx status (their response flags say why),
/// pods turning unready, the agent's unexpected exits and failed restarts,
/// Envoy's critical lines.
fn trouble_lines(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "log") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                for l in text.lines() {
                    let access_5xx = ["\" 502 ", "\" 503 ", "\" 504 "];
                    let supervisor = [
                        "turned unready",
                        "unexpectedly",
                        "hot restart failed",
                        "rejected",
                        "[critical]",
                    ];
                    if access_5xx.iter().chain(&supervisor).any(|m| l.contains(m)) {
                        out.push(format!("{}: {l}", p.display()));
                    }
                }
            }
        }
    }
    out.truncate(60);
    out
}

/// The serials of the workload certificates Envoy in `netns` holds.
fn serials(netns: &str) -> BTreeSet<String> {
    let out = Command::new("timeout")
        .args(["5", "ip", "netns", "exec", netns, "curl", "-s"])
        .arg(format!("http://127.0.0.1:{ENVOY_ADMIN_PORT}/certs"))
        .output();
    let Ok(out) = out else { return BTreeSet::new() };
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut set = BTreeSet::new();
    for c in v["certificates"].as_array().into_iter().flatten() {
        for chain in c["cert_chain"].as_array().into_iter().flatten() {
            if let Some(s) = chain["serial_number"].as_str() {
                set.insert(s.to_string());
            }
        }
    }
    set
}

fn run_mode(mode: &'static str, salt: u32) -> ModeReport {
    let mesh = Mesh::up(salt, &["--cert-mode", mode, "--workload-cert-ttl", "2m"]);
    let client = mesh.pod("productpage-v1-");
    let server = mesh.pod("details-v1-");
    let done = AtomicBool::new(false);
    let script = workspace_root().join("cli/tests/testdata/rotation_load.py");
    std::thread::scope(|s| {
        let watch = s.spawn(|| {
            let mut seen: Vec<BTreeSet<String>> = vec![BTreeSet::new(), BTreeSet::new()];
            while !done.load(Ordering::SeqCst) {
                for (i, p) in [&client, &server].iter().enumerate() {
                    seen[i].extend(serials(&p.netns));
                }
                std::thread::sleep(Duration::from_secs(2));
            }
            seen
        });
        let stream = s.spawn(|| {
            let seconds = LOAD_SECONDS.to_string();
            let out = Command::new("timeout")
                .arg((LOAD_SECONDS + 60).to_string())
                .args(["ip", "netns", "exec", &client.netns, "curl", "-sS", "-N"])
                .args([
                    "--http2-prior-knowledge",
                    "-o",
                    "-",
                    "-w",
                    "\nhttp_version=%{http_version}\n",
                ])
                .arg(format!(
                    "http://details.default:9080/stream?seconds={seconds}"
                ))
                .stdin(Stdio::null())
                .output()
                .expect("curl");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let lines = text
                .lines()
                .filter(|l| l.starts_with("details-v1 "))
                .count();
            let status = format!(
                "{}; {}; {}",
                out.status,
                text.lines().last().unwrap_or(""),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            (lines, status)
        });
        let out = Command::new("timeout")
            .arg((LOAD_SECONDS + 60).to_string())
            .args(["ip", "netns", "exec", &client.netns, "python3"])
            .arg(&script)
            .args([
                "http://details.default:9080/details",
                &LOAD_SECONDS.to_string(),
            ])
            .stdin(Stdio::null())
            .output()
            .expect("python3");
        let load: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{mode}: load output ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let (stream_lines, stream_status) = stream.join().unwrap();
        done.store(true, Ordering::SeqCst);
        let seen = watch.join().unwrap();
        let renewals = [&client, &server]
            .iter()
            .zip(seen)
            .map(|(p, s)| (p.name.clone(), s.len().saturating_sub(1)))
            .collect();
        ModeReport {
            mode,
            renewals,
            load,
            stream_lines,
            stream_status,
            // The runner's log, then pilot's and the pods' (in the state dir).
            trouble: [mesh.runner_root.path(), &mesh.record().state_dir]
                .into_iter()
                .flat_map(trouble_lines)
                .take(60)
                .collect(),
        }
    })
}

#[test]
fn certificates_rotate_under_load_in_file_and_sds_modes() {
    let test = "certificates_rotate_under_load_in_file_and_sds_modes";
    if !prerequisites(test) {
        return;
    }
    let reports: Vec<ModeReport> = std::thread::scope(|s| {
        let file = s.spawn(|| run_mode("file", 2));
        // Stagger the two starts a little: both meshes come up on shared cores.
        std::thread::sleep(Duration::from_secs(5));
        let sds = s.spawn(|| run_mode("sds", 3));
        vec![file.join().unwrap(), sds.join().unwrap()]
    });
    for r in &reports {
        eprintln!(
            "rotation [{}]: renewals {:?}; load {}; HTTP/2 stream: {} of {LOAD_SECONDS} lines ({}) -> {}",
            r.mode,
            r.renewals,
            r.load,
            r.stream_lines,
            r.stream_status,
            if r.stream_lines >= LOAD_SECONDS as usize { "not cut" } else { "CUT" }
        );
    }
    for r in &reports {
        for l in &r.trouble {
            eprintln!("[{}] {l}", r.mode);
        }
    }
    for r in &reports {
        for (pod, n) in &r.renewals {
            assert!(*n >= 1, "[{}] {pod}: no renewal seen", r.mode);
        }
        let l = &r.load;
        assert!(l["short_ok"].as_u64().unwrap_or(0) > 0, "[{}] {l}", r.mode);
        assert!(
            l["keepalive_ok"].as_u64().unwrap_or(0) > 0,
            "[{}] {l}",
            r.mode
        );
        assert_eq!(
            (l["short_failed"].as_u64(), l["keepalive_failed"].as_u64()),
            (Some(0), Some(0)),
            "[{}] failed requests: {l}",
            r.mode
        );
        assert!(
            r.stream_status.contains("http_version=2"),
            "[{}] the stream did not use HTTP/2: {}",
            r.mode,
            r.stream_status
        );
    }
    let sds = &reports[1];
    assert_eq!(
        sds.stream_lines, LOAD_SECONDS as usize,
        "SDS mode cut the HTTP/2 stream: {}",
        sds.stream_status
    );
}
