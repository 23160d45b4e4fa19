//! What the identity tests share: a local mesh started with `rudder mesh up
//! --keep` under its own name and CIDRs, torn down on drop (also on failure),
//! and the prerequisites (root, Envoy, iptables, openssl).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rudder_cli::record::{PodEntry, RunnerRecord};
use rudder_harness::{workspace_bin, workspace_root};
use rudder_test_support::{check_envoy, check_netns, check_tool, prerequisite};

/// A running local mesh.
pub struct Mesh {
    pub rudder: PathBuf,
    pub name: String,
    pub runner_root: tempfile::TempDir,
}

/// Whether the test can run (else it printed why; under CI=true it panicked).
pub fn prerequisites(test: &str) -> bool {
    let setup = "run scripts/setup.sh";
    prerequisite(test, check_netns()).is_some()
        && prerequisite(test, check_envoy()).is_some()
        && prerequisite(test, check_tool("iptables-restore", setup)).is_some()
        && prerequisite(test, check_tool("openssl", setup)).is_some()
}

pub fn samples() -> PathBuf {
    workspace_root().join("samples/bookinfo")
}

impl Mesh {
    /// `rudder mesh up samples/bookinfo --keep -n 0 EXTRA...` under a fresh
    /// name and /24s derived from `salt` (retrying on conflicts).
    pub fn up(salt: u32, extra: &[&str]) -> Mesh {
        for bin in ["pilot", "agent", "proxy-init"] {
            workspace_bin(bin).unwrap_or_else(|e| panic!("{e}"));
        }
        let rudder = workspace_bin("rudder").unwrap_or_else(|e| panic!("{e}"));
        let samples = samples();
        for attempt in 0..6u32 {
            let n = 100 + (std::process::id() + salt * 13 + attempt * 7) % 90;
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
                .to_string();
            let m = Mesh {
                rudder: rudder.clone(),
                name: format!("id{salt}-{}", (std::process::id() + attempt) % 100_000),
                runner_root: tempfile::tempdir().unwrap(),
            };
            let (pods, services) = (format!("198.18.{n}.0/24"), format!("198.19.{n}.0/24"));
            let mut args = vec![
                "mesh",
                "up",
                samples.to_str().unwrap(),
                "--keep",
                "-n",
                "0",
                "--pod-cidr",
                &pods,
                "--service-cidr",
                &services,
                "--monitoring-port",
                &port,
            ];
            args.extend(extra);
            let out = m.cmd(&args);
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                return m;
            }
            assert!(text.contains("conflict"), "rudder mesh up failed:\n{text}");
        }
        panic!("no free name/CIDR after 6 attempts");
    }

    /// Runs `rudder ARGS --name N --runner-root R`, echoing what it printed.
    pub fn cmd(&self, args: &[&str]) -> Output {
        let out = Command::new(&self.rudder)
            .args(args)
            .args(["--name", &self.name, "--runner-root"])
            .arg(self.runner_root.path())
            .stdin(Stdio::null())
            .output()
            .expect("running rudder");
        eprintln!(
            "$ rudder {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `rudder mesh apply FILE` (must succeed).
    pub fn apply(&self, file: &str) {
        let path = samples().join(file);
        let out = self.cmd(&["mesh", "apply", path.to_str().unwrap()]);
        assert!(out.status.success(), "apply {file} failed");
    }

    /// `n` GETs of `url` from pod `from`: the split as JSON.
    pub fn load(&self, from: &str, url: &str, n: usize) -> serde_json::Value {
        let n = n.to_string();
        let out = self.cmd(&["mesh", "load", url, "--from", from, "-n", &n, "--json"]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("load output is not JSON ({e})"))
    }

    /// Polls `load` (5 requests) until `ok` holds for its (succeeded, split),
    /// for at most 60 s: configuration reaches Envoys asynchronously.
    pub fn until(
        &self,
        from: &str,
        url: &str,
        what: &str,
        ok: impl Fn(u64, &serde_json::Value) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let split = self.load(from, url, 5);
            let succeeded = split["succeeded"].as_u64().unwrap_or(0);
            if ok(succeeded, &split) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: still {split} after 60 s"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub fn record(&self) -> RunnerRecord {
        RunnerRecord::load(self.runner_root.path(), &self.name).expect("runner record")
    }

    pub fn pod(&self, prefix: &str) -> PodEntry {
        self.record()
            .pods
            .into_iter()
            .find(|p| p.name.starts_with(prefix))
            .unwrap_or_else(|| panic!("no pod {prefix}*"))
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        let _ = Command::new(&self.rudder)
            .args(["mesh", "down", "--name", &self.name, "--runner-root"])
            .arg(self.runner_root.path())
            .output();
    }
}

/// The HTTP status curl gets from `netns` within `max_secs` (`000` when it
/// got none).
pub fn http_code(netns: &str, url: &str, max_secs: u64) -> String {
    let out = Command::new("timeout")
        .args([
            &(max_secs + 10).to_string(),
            "ip",
            "netns",
            "exec",
            netns,
            "curl",
            "-s",
        ])
        .args([
            "-o",
            "/dev/null",
            "-m",
            &max_secs.to_string(),
            "-w",
            "%{http_code}",
            url,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
