//! End to end: bookinfo on the local mesh with real Envoys, real iptables in
//! network namespaces and real HTTP.
//!
//! 1. `rudder mesh up samples/bookinfo --keep` with the 99/1 (v1→v3) rule;
//! 2. 2000 requests from the unmeshed `sleep` pod to productpage: every one
//!    succeeds, v3 gets 1%: with n = 2000, p = 0.01 the count of v3 has mean
//!    20 and standard deviation 4.45; we accept 1..=42 (mean ± 5σ, and at
//!    least one: P(0) = 0.99^2000 ≈ 2e-9), v2 never;
//! 3. the ingress gateway pod (manifests/ingressgateway.yaml, Istio's
//!    bookinfo-gateway.yaml unchanged): curl from the host to the address
//!    `rudder mesh status` prints reaches productpage (exact /productpage;
//!    other paths 404 at the gateway), and 2000 requests through it with
//!    `rudder mesh load --via-ingress` show the same 99/1 split;
//! 4. `rudder mesh apply` the jason rule: `end-user: jason` → v2 only,
//!    everyone else → v1 only;
//! 5. `rudder mesh down`: no namespace, link, process, host iptables rule,
//!    state, /etc/netns entry or Envoy shared memory of the run is left.
//!
//! Needs root, Envoy and iptables: without them it says why and returns,
//! except under CI=true, where that is a failure.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::http_code;
use rudder_cli::record::{HostProcess, RunnerRecord};
use rudder_harness::{workspace_bin, workspace_root, StateRecord, DEFAULT_STATE_ROOT};
use rudder_test_support::{check_envoy, check_netns, check_tool, prerequisite};

struct Mesh {
    rudder: PathBuf,
    name: String,
    runner_root: tempfile::TempDir,
    pod_cidr: String,
    service_cidr: String,
}

impl Mesh {
    fn cmd(&self, args: &[&str]) -> Output {
        let out = Command::new(&self.rudder)
            .args(args)
            .args(["--name", &self.name, "--runner-root"])
            .arg(self.runner_root.path())
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

    fn load(&self, n: usize, header: Option<&str>) -> serde_json::Value {
        let n = n.to_string();
        let mut args = vec!["mesh", "load", "-n", &n, "--json"];
        if let Some(h) = header {
            args.extend(["-H", h]);
        }
        let out = self.cmd(&args);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("load output is not JSON ({e})"))
    }

    fn load_via_ingress(&self, n: usize) -> serde_json::Value {
        let n = n.to_string();
        let out = self.cmd(&["mesh", "load", "--via-ingress", "-n", &n, "--json"]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("load output is not JSON ({e})"))
    }

    fn record(&self) -> RunnerRecord {
        RunnerRecord::load(self.runner_root.path(), &self.name).expect("runner record")
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        // Also on failure: remove what the run made (a no-op after a clean down).
        let _ = Command::new(&self.rudder)
            .args(["mesh", "down", "--name", &self.name, "--runner-root"])
            .arg(self.runner_root.path())
            .output();
    }
}

fn versions(split: &serde_json::Value) -> BTreeMap<String, u64> {
    split["versions"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

fn host_rules_mentioning(cidrs: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for tool in ["iptables-save", "iptables-legacy-save", "iptables-nft-save"] {
        if let Ok(out) = Command::new(tool).output() {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if cidrs.iter().any(|c| line.contains(c)) || line.contains("RUDDER-SERVICES") {
                    found.push(format!("{tool}: {line}"));
                }
            }
        }
    }
    found
}

fn prefix(cidr: &str) -> String {
    // "198.18.213.0/24" → "198.18.213."
    cidr.rsplit_once('.').map(|(a, _)| format!("{a}.")).unwrap()
}

#[test]
fn bookinfo_canary_split_header_routing_and_clean_teardown() {
    let test = "bookinfo_canary_split_header_routing_and_clean_teardown";
    if prerequisite(test, check_netns()).is_none()
        || prerequisite(test, check_envoy()).is_none()
        || prerequisite(test, check_tool("iptables-restore", "run scripts/setup.sh")).is_none()
    {
        return;
    }
    for bin in ["pilot", "agent", "proxy-init"] {
        workspace_bin(bin).unwrap_or_else(|e| panic!("{e}"));
    }
    let rudder = workspace_bin("rudder").unwrap_or_else(|e| panic!("{e}"));
    let samples = workspace_root().join("samples/bookinfo");
    let canary = samples.join("rules/reviews-99-1-virtual-service.yaml");
    let jason = samples.join("rules/reviews-jason-v2.yaml");
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();

    // Our own name and CIDRs, so the test runs beside a user's demo; retry on conflicts.
    let mut mesh = None;
    for attempt in 0..6u32 {
        let n = 200 + (std::process::id() + attempt * 7) % 50;
        let m = Mesh {
            rudder: rudder.clone(),
            name: format!("e2e-{}", std::process::id() % 100_000 + attempt),
            runner_root: tempfile::tempdir().unwrap(),
            pod_cidr: format!("198.18.{n}.0/24"),
            service_cidr: format!("198.19.{n}.0/24"),
        };
        let out = m.cmd(&[
            "mesh",
            "up",
            samples.to_str().unwrap(),
            "--keep",
            "-n",
            "100",
            "--pod-cidr",
            &m.pod_cidr,
            "--service-cidr",
            &m.service_cidr,
            "--rules",
            canary.to_str().unwrap(),
            "--monitoring-port",
            &free_port,
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            assert!(
                text.contains("default/productpage-v1-0") && text.contains("sidecar: yes"),
                "{text}"
            );
            assert!(
                text.contains("sleep/sleep-0")
                    && text.contains(
                        "sidecar: no (namespace is not labelled istio-injection=enabled)"
                    ),
                "{text}"
            );
            assert!(
                text.contains("rudder-system/rudder-ingressgateway-0")
                    && text.contains("gateway (agent router, no sidecar, no capture)")
                    && text.contains("ingress: http://"),
                "{text}"
            );
            // The demo: from the sleep pod, then from the host through the gateway.
            assert_eq!(
                text.matches("100 requests, 100 succeeded").count(),
                2,
                "{text}"
            );
            mesh = Some(m);
            break;
        }
        assert!(text.contains("conflict"), "rudder mesh up failed:\n{text}");
    }
    let mesh = mesh.expect("no free name/CIDR after 6 attempts");
    let record = mesh.record();
    let state = StateRecord::load(&record.state_dir).expect("harness state");

    // 1. The canary: 2000 requests, all succeed, ~1% on v3.
    let split = mesh.load(2000, None);
    assert_eq!(
        (split["total"].as_u64(), split["succeeded"].as_u64()),
        (Some(2000), Some(2000)),
        "{split}"
    );
    let v = versions(&split);
    let v3 = v.get("reviews-v3").copied().unwrap_or(0);
    assert_eq!(
        v.get("reviews-v1").copied().unwrap_or(0) + v3,
        2000,
        "only v1 and v3 may answer: {v:?}"
    );
    assert!(
        (1..=42).contains(&v3),
        "v3 got {v3} of 2000 (expected 20 ± 22): {v:?}"
    );

    // The user's way in: curl from the client pod, names from /etc/netns/<pod>/hosts.
    let sleep = record.pods.iter().find(|p| p.name == "sleep-0").unwrap();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &sleep.netns,
            "curl",
            "-sS",
            "--max-time",
            "10",
            "http://productpage.default:9080/",
        ])
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.starts_with("productpage-v1")
            && body.contains("details-v1")
            && body.contains("reviews-v"),
        "curl: {body} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 2b. From the host through the ingress gateway, at the address status prints.
    let ingress = record.ingress().expect("the ingress gateway's address");
    let gateway = record
        .pods
        .iter()
        .find(|p| p.name == "rudder-ingressgateway-0")
        .expect("the gateway pod");
    assert_eq!(
        (gateway.namespace.as_str(), gateway.sidecar, gateway.ingress),
        ("rudder-system", false, Some(ingress))
    );
    assert_eq!(ingress.port(), 8080);
    let status = String::from_utf8_lossy(&mesh.cmd(&["mesh", "status"]).stdout).into_owned();
    assert!(
        status.contains(&format!("ingress: http://{ingress}")),
        "{status}"
    );
    let curl = |path: &str| {
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
            .arg(format!("http://{ingress}{path}"))
            .output()
            .unwrap()
    };
    let out = curl("/productpage");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.starts_with("productpage-v1")
            && body.contains("details-v1")
            && body.contains("reviews-v")
            && body.ends_with("\n200"),
        "curl from the host through the gateway: {body} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = curl("/not-routed");
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("\n404"),
        "bookinfo-gateway.yaml routes only its paths: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let split = mesh.load_via_ingress(2000);
    assert_eq!(
        (split["total"].as_u64(), split["succeeded"].as_u64()),
        (Some(2000), Some(2000)),
        "{split}"
    );
    let v = versions(&split);
    let v3 = v.get("reviews-v3").copied().unwrap_or(0);
    assert_eq!(
        v.get("reviews-v1").copied().unwrap_or(0) + v3,
        2000,
        "through the gateway, only v1 and v3 may answer: {v:?}"
    );
    assert!(
        (1..=42).contains(&v3),
        "through the gateway v3 got {v3} of 2000 (expected 20 ± 22): {v:?}"
    );
    println!("through the ingress gateway: {v:?}");

    // 2. Switch rules live: jason → v2, everyone else → v1.
    assert!(mesh
        .cmd(&["mesh", "apply", jason.to_str().unwrap()])
        .status
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let probe = versions(&mesh.load(20, Some("end-user: jason")));
        if probe == BTreeMap::from([("reviews-v2".to_string(), 20)]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the jason rule never took effect: {probe:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let jason_split = mesh.load(200, Some("end-user: jason"));
    assert_eq!(
        jason_split["succeeded"].as_u64(),
        Some(200),
        "{jason_split}"
    );
    assert_eq!(
        versions(&jason_split),
        BTreeMap::from([("reviews-v2".to_string(), 200)])
    );
    let others = mesh.load(200, Some("end-user: alice"));
    assert_eq!(others["succeeded"].as_u64(), Some(200), "{others}");
    assert_eq!(
        versions(&others),
        BTreeMap::from([("reviews-v1".to_string(), 200)])
    );

    // 3. An app that crashes is started again (kubelet's restartPolicy: Always).
    let app_pid = |pod: &str| -> Option<i32> {
        let state = StateRecord::load(&record.state_dir).expect("harness state");
        state
            .processes
            .iter()
            .find(|p| p.pod == pod && p.program.contains("python"))
            .map(|p| p.pid)
    };
    let crashed = app_pid("details-v1-0").expect("the details app's process");
    // Our own run started it: SIGKILL by PID, as a crash would end it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(crashed),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let details_status = || http_code(&sleep.netns, "http://details.default:9080/details", 5);
    let started = Instant::now();
    let restarted = loop {
        if let Some(pid) = app_pid("details-v1-0").filter(|p| *p != crashed) {
            if details_status() == "200" {
                break pid;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "details never came back after its app was killed"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    println!(
        "details app killed (pid {crashed}): restarted as pid {restarted}, serving again after {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // What must be gone afterwards.
    let status = String::from_utf8_lossy(&mesh.cmd(&["mesh", "status"]).stdout).into_owned();
    assert!(
        status.contains(&format!("mesh {}: runner running", mesh.name))
            && status.contains("pilot's connected proxies: 7"),
        "{status}"
    );
    let base_ids: Vec<PathBuf> = std::fs::read_dir(record.state_dir.join("pods"))
        .unwrap()
        .flatten()
        .flat_map(|pod| {
            std::fs::read_dir(pod.path().join("tmp"))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|agent| agent.path().join("envoy-base-id"))
        .filter(|f| f.exists())
        .collect();
    assert_eq!(
        base_ids.len(),
        7,
        "one Envoy family per meshed pod and one for the gateway: {base_ids:?}"
    );
    let shm: Vec<PathBuf> = base_ids
        .iter()
        .map(|f| {
            rudder_harness::shm_path(std::fs::read_to_string(f).unwrap().trim().parse().unwrap())
        })
        .collect();
    assert!(shm.iter().all(|p| p.exists()), "{shm:?}");
    let mut pids: Vec<(i32, u64)> = state
        .processes
        .iter()
        .map(|p| (p.pid, p.start_time))
        .collect();
    pids.push((record.runner.pid, record.runner.start_time));
    pids.extend(record.pilot.map(|p| (p.pid, p.start_time)));
    let bridge = state.bridge.clone().unwrap();

    // 3. Down: nothing left.
    let out = mesh.cmd(&["mesh", "down"]);
    assert!(out.status.success());
    let netns = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    let ours = format!("rdr-{}-", mesh.name);
    assert!(
        !netns.lines().any(|l| l.starts_with(&ours)),
        "namespaces left: {netns}"
    );
    assert!(
        !Path::new("/sys/class/net").join(&bridge).exists(),
        "bridge {bridge} left"
    );
    let links = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    assert!(
        !links
            .iter()
            .any(|l| l.starts_with(&format!("rv{}-", state.tag))),
        "veths left: {links:?}"
    );
    // A zombie waiting for init to reap it counts as gone.
    let alive: Vec<i32> = pids
        .iter()
        .filter(|(pid, t)| {
            HostProcess {
                pid: *pid,
                start_time: *t,
            }
            .alive()
        })
        .map(|(p, _)| *p)
        .collect();
    assert!(alive.is_empty(), "processes left: {alive:?}");
    let rules = host_rules_mentioning(&[&prefix(&mesh.pod_cidr), &prefix(&mesh.service_cidr)]);
    assert!(rules.is_empty(), "host iptables rules left: {rules:?}");
    assert!(
        !record.state_dir.exists() && !Path::new(DEFAULT_STATE_ROOT).join(&mesh.name).exists(),
        "state dir left"
    );
    assert!(
        RunnerRecord::names(mesh.runner_root.path())
            .unwrap()
            .is_empty(),
        "runner record left"
    );
    assert!(
        record.etc_netns.iter().all(|d| !d.exists()),
        "/etc/netns entries left"
    );
    let shm_left: Vec<&PathBuf> = shm.iter().filter(|p| p.exists()).collect();
    assert!(
        shm_left.is_empty(),
        "Envoy shared memory left: {shm_left:?}"
    );
}
