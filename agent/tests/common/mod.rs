//! Shared helpers of the agent's integration tests: prerequisites, free
//! ports, the agent process under test (with a guard that stops it and every
//! Envoy it started, also on failure), and certificates made with rcgen.
#![allow(dead_code)]

pub mod ads;
pub mod upstream;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};

/// `GET http://127.0.0.1:<port><path>`: (status, body), or (0, the error).
pub async fn get(port: u16, path: &str) -> (u16, String) {
    let url = format!("http://127.0.0.1:{port}{path}");
    match rudder_agent::admin::request(hyper::Method::GET, &url, Duration::from_secs(10)).await {
        Ok(r) => (r.status, r.body),
        Err(e) => (0, e.to_string()),
    }
}

/// A port free right now on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Ports of one agent under test.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub admin: u16,
    pub stats: u16,
    pub metrics: u16,
    pub status: u16,
}

impl Ports {
    pub fn free() -> Self {
        Self {
            admin: free_port(),
            stats: free_port(),
            metrics: free_port(),
            status: free_port(),
        }
    }
}

/// The `agent proxy` process under test. Dropping it stops the agent and
/// kills any Envoy whose command line names this agent's work directory
/// (only processes this test started), then removes the family's shm file.
pub struct Agent {
    pub child: Child,
    pub work_dir: PathBuf,
    pub log: PathBuf,
    pub ports: Ports,
}

impl Agent {
    pub fn start(
        dir: &Path,
        ports: Ports,
        ads_port: u16,
        cert_dir: &Path,
        extra: &[&str],
    ) -> Agent {
        let work_dir = dir.join("work");
        let log = dir.join("agent.log");
        let envoy = rudder_test_support::check_envoy().expect("checked by the test");
        let child = Command::new(env!("CARGO_BIN_EXE_agent"))
            .env("ENVOY_BIN", envoy)
            .arg("proxy")
            .args(["--discovery-address", &format!("127.0.0.1:{ads_port}")])
            .arg("--cert-dir")
            .arg(cert_dir)
            .arg("--work-dir")
            .arg(&work_dir)
            .args(["--admin-port", &ports.admin.to_string()])
            .args(["--stats-port", &ports.stats.to_string()])
            .args(["--metrics-port", &ports.metrics.to_string()])
            .args(["--status-port", &ports.status.to_string()])
            .args(["--concurrency", "1", "--envoy-log-level", "warning"])
            .args(extra)
            .env("POD_NAME", "app-0")
            .env("POD_NAMESPACE", "default")
            .env("INSTANCE_IP", "127.0.0.1")
            .env("SERVICE_ACCOUNT", "app")
            .env("POD_LABELS", "app=app,version=v1")
            .env("RUST_LOG", "info,rudder_agent=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Agent {
            child,
            work_dir,
            log,
            ports,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// PIDs of live Envoy processes of this agent (found by work dir in argv).
    pub fn envoy_pids(&self) -> Vec<u32> {
        let needle = self.work_dir.display().to_string();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&cmd);
            let zombie = std::fs::read_to_string(entry.path().join("stat"))
                .map(|s| {
                    s.rsplit(')')
                        .next()
                        .is_some_and(|r| r.trim_start().starts_with('Z'))
                })
                .unwrap_or(true);
            if !zombie && cmd.contains(&needle) && !cmd.contains("agent\0proxy") {
                pids.push(pid);
            }
        }
        pids
    }

    /// The family's base id, once epoch 0 has written it.
    pub fn base_id(&self) -> Option<u32> {
        std::fs::read_to_string(self.work_dir.join("envoy-base-id"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub fn signal(&self, sig: Signal) {
        let _ = kill(Pid::from_raw(self.pid() as i32), sig);
    }

    /// Waits for the agent to exit (bounded); its exit code.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    pub fn status_url(&self) -> String {
        format!("http://127.0.0.1:{}/healthz/ready", self.ports.status)
    }

    /// (status, body) of `/healthz/ready`.
    pub async fn ready(&self) -> (u16, String) {
        match rudder_agent::admin::request(
            hyper::Method::GET,
            &self.status_url(),
            Duration::from_secs(3),
        )
        .await
        {
            Ok(r) => (r.status, r.body),
            Err(e) => (0, e.to_string()),
        }
    }

    /// Polls readiness until it is 200 (bounded); the number of polls.
    pub async fn wait_ready(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        let mut polls = 0;
        loop {
            polls += 1;
            let (status, body) = self.ready().await;
            if status == 200 {
                return polls;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not ready within {limit:?}: {status} {body}\nlog:\n{}",
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The agent's merged Prometheus text.
    pub async fn metrics(&self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.ports.metrics);
        rudder_agent::admin::request(hyper::Method::GET, &url, Duration::from_secs(5))
            .await
            .map(|r| r.body)
            .unwrap_or_default()
    }

    /// One agent metric's value.
    pub async fn metric(&self, name: &str) -> Option<i64> {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Polls until `name` reaches `want` (bounded).
    pub async fn wait_metric(&self, name: &str, want: i64, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let v = self.metric(name).await;
            if v == Some(want) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} is {v:?}, want {want}\nlog:\n{}",
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Envoy admin `/certs` body.
    pub async fn envoy_certs(&self) -> String {
        let url = format!("http://127.0.0.1:{}/certs", self.ports.admin);
        rudder_agent::admin::request(hyper::Method::GET, &url, Duration::from_secs(3))
            .await
            .map(|r| r.body)
            .unwrap_or_default()
    }

    pub fn tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal(Signal::SIGTERM);
            for _ in 0..100 {
                if self.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for pid in self.envoy_pids() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        if let Some(id) = self.base_id() {
            let _ = std::fs::remove_file(rudder_agent::envoy::shm_path(id));
        }
    }
}

/// A test CA and workload certificates signed by it.
pub struct TestCa {
    pub root_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new() -> Self {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "test root");
        let key = rcgen::KeyPair::generate().unwrap();
        let root_pem = p.self_signed(&key).unwrap().pem();
        Self {
            root_pem,
            issuer: rcgen::Issuer::new(p, key),
        }
    }

    /// A workload certificate: (chain PEM, key PEM, serial as lowercase hex).
    pub fn leaf(&self, serial: u64) -> (String, String, String) {
        let mut p = rcgen::CertificateParams::new(vec![
            "spiffe://cluster.local/ns/default/sa/app".to_string()
        ])
        .unwrap();
        p.serial_number = Some(rcgen::SerialNumber::from(serial.to_be_bytes().to_vec()));
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = p.signed_by(&key, &self.issuer).unwrap().pem();
        (pem, key.serialize_pem(), format!("{serial:x}"))
    }
}

/// Writes a certificate set kubelet-style: a new `..<n>` directory, then an
/// atomic rename of the `..data` link (the three names link through it).
pub fn write_certs_atomic(dir: &Path, n: u32, chain: &str, key: &str, root: &str) {
    let data = dir.join(format!("..{n}"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("cert-chain.pem"), chain).unwrap();
    std::fs::write(data.join("key.pem"), key).unwrap();
    std::fs::write(data.join("root-cert.pem"), root).unwrap();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..{n}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for f in ["cert-chain.pem", "key.pem", "root-cert.pem"] {
        let link = dir.join(f);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{f}"), &link).unwrap();
        }
    }
}

/// Rewrites the three files in place (through the links).
pub fn write_certs_in_place(dir: &Path, chain: &str, key: &str, root: &str) {
    std::fs::write(dir.join("key.pem"), key).unwrap();
    std::fs::write(dir.join("cert-chain.pem"), chain).unwrap();
    std::fs::write(dir.join("root-cert.pem"), root).unwrap();
}
