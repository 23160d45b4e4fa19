//! pilot as the runner uses it: its config directory (the local mesh's "API
//! server"), the process on the host, and what it reports.
//!
//! ```text
//! <state>/pilot/config/platform/namespace.<ns>.json   Namespaces
//!                       platform/service.<ns>.<name>.json  Services (VIPs filled in)
//!                       pods/pod.<ns>.<name>.json     Pods (podIP, Ready) — rewritten on change
//!                       rules/<kind>.<ns>.<name>.json route rules (one file per object:
//!                                                     applying the same object replaces it)
//! ```
//!
//! Every write is atomic (hidden temporary file, then rename), so pilot's
//! directory watch never reads half a file.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rudder_harness::HttpRequest;
use serde_json::Value;

use crate::manifest::RuleObject;
use crate::record::HostProcess;

/// Talking to pilot (or its files) failed.
#[derive(Debug, thiserror::Error)]
pub enum PilotError {
    /// A config file could not be written or removed.
    #[error("pilot config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// pilot could not be started.
    #[error("cannot start {bin}: {source}")]
    Start {
        /// The binary.
        bin: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// pilot exited or never became ready.
    #[error("pilot {what}; last lines of {log}:\n{tail}")]
    NotReady {
        /// What happened.
        what: String,
        /// Its log.
        log: String,
        /// The end of the log.
        tail: String,
    },
    /// `pilot validate` found errors.
    #[error("route rules rejected by `pilot validate`:\n{0}")]
    Invalid(String),
}

/// pilot's config directory.
#[derive(Clone, Debug)]
pub struct ConfigDir(pub PathBuf);

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PilotError + '_ {
    move |source| PilotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl ConfigDir {
    /// Writes `object` as `<sub>/<file>` atomically.
    pub fn write(&self, sub: &str, file: &str, object: &Value) -> Result<(), PilotError> {
        let dir = self.0.join(sub);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let tmp = dir.join(format!(".{file}.tmp"));
        let path = dir.join(file);
        fs::write(
            &tmp,
            serde_json::to_string_pretty(object).expect("JSON value serialises"),
        )
        .map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Writes a route rule (replacing one with the same kind, namespace, name).
    pub fn write_rule(&self, rule: &RuleObject) -> Result<(), PilotError> {
        let mut object = rule.object.clone();
        object["metadata"]["namespace"] = Value::String(rule.namespace.clone());
        self.write("rules", &rule.file_name(), &object)
    }

    /// Removes a route rule; returns whether it was there.
    pub fn delete_rule(&self, rule: &RuleObject) -> Result<bool, PilotError> {
        let path = self.0.join("rules").join(rule.file_name());
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(PilotError::Io { path, source: e }),
        }
    }

    /// The files of `sub` (platform, pods, rules), sorted.
    pub fn files(&self, sub: &str) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = fs::read_dir(self.0.join(sub))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "json")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        out.sort();
        out
    }

    /// The rules present, as `kind namespace/name` lines.
    pub fn rules(&self) -> Vec<String> {
        let mut out: Vec<String> = fs::read_dir(self.0.join("rules"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
                    .map(String::from)
            })
            .collect();
        out.sort();
        out
    }
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..]
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `pilot validate -f FILE...`; errors (non-zero exit) are refused,
/// warnings come back to be printed.
pub fn validate(pilot: &Path, files: &[PathBuf]) -> Result<String, PilotError> {
    if files.is_empty() {
        return Ok(String::new());
    }
    let out = Command::new(pilot)
        .arg("validate")
        .args(files.iter().flat_map(|f| [PathBuf::from("-f"), f.clone()]))
        .output()
        .map_err(|source| PilotError::Start {
            bin: pilot.to_path_buf(),
            source,
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .trim()
    .to_string();
    if out.status.success() {
        Ok(text)
    } else {
        Err(PilotError::Invalid(text))
    }
}

/// pilot's CA: where the root and the token key are, where it serves
/// certificates and TLS xDS (15012), and how long workload certificates live.
#[derive(Clone, Debug)]
pub struct PilotIdentity {
    /// `--ca-dir`.
    pub ca_dir: PathBuf,
    /// `--local-token-key`.
    pub token_key: PathBuf,
    /// `--secure-xds-addr`.
    pub secure_xds: SocketAddr,
    /// `--workload-cert-ttl`.
    pub workload_cert_ttl: Option<String>,
}

/// A running pilot.
#[derive(Debug)]
pub struct Pilot {
    child: std::process::Child,
    /// Its log file.
    pub log: PathBuf,
    /// Where monitoring listens.
    pub monitoring: SocketAddr,
}

impl Pilot {
    /// Starts `pilot serve` on the host with its CA, logging to `log`.
    pub fn start(
        bin: &Path,
        config: &ConfigDir,
        xds: SocketAddr,
        monitoring: SocketAddr,
        identity: &PilotIdentity,
        log: PathBuf,
    ) -> Result<Pilot, PilotError> {
        let file = fs::File::create(&log).map_err(io(&log))?;
        let err = file.try_clone().map_err(io(&log))?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--config-dir")
            .arg(&config.0)
            .args([
                "--xds-addr",
                &xds.to_string(),
                "--monitoring-addr",
                &monitoring.to_string(),
            ])
            .arg("--ca-dir")
            .arg(&identity.ca_dir)
            .arg("--local-token-key")
            .arg(&identity.token_key)
            .args(["--secure-xds-addr", &identity.secure_xds.to_string()]);
        if let Some(ttl) = &identity.workload_cert_ttl {
            cmd.args(["--workload-cert-ttl", ttl]);
        }
        cmd.stdin(Stdio::null()).stdout(file).stderr(err);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().map_err(|source| PilotError::Start {
            bin: bin.to_path_buf(),
            source,
        })?;
        Ok(Pilot {
            child,
            log,
            monitoring,
        })
    }

    /// Its process, for the record.
    pub fn process(&self) -> HostProcess {
        HostProcess::of(self.child.id())
    }

    /// Waits until `/ready` answers 200 (bounded), or pilot exits.
    pub fn wait_ready(
        &mut self,
        timeout: Duration,
        stop: &dyn Fn() -> bool,
    ) -> Result<(), PilotError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.not_ready(format!("exited with {status}")));
            }
            if get(self.monitoring, "/ready").is_some_and(|(s, _)| s == 200) {
                return Ok(());
            }
            if stop() || Instant::now() >= deadline {
                return Err(self.not_ready(format!("was not ready within {}s", timeout.as_secs())));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn not_ready(&self, what: String) -> PilotError {
        PilotError::NotReady {
            what,
            log: self.log.display().to_string(),
            tail: tail(&self.log),
        }
    }

    /// Stops it (SIGTERM, then SIGKILL after 5 s) and reaps it.
    pub fn stop(mut self) {
        stop_host_process(self.process(), Some(&mut self.child));
    }
}

/// Stops a host process group we started: SIGTERM, up to 5 s, SIGKILL.
/// Only if it is still the process recorded (PID and start time).
pub fn stop_host_process(p: HostProcess, child: Option<&mut std::process::Child>) {
    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;
    if p.alive() {
        let _ = killpg(Pid::from_raw(p.pid), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while p.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if p.alive() {
            let _ = killpg(Pid::from_raw(p.pid), Signal::SIGKILL);
        }
    }
    if let Some(c) = child {
        let _ = c.wait();
    }
}

/// GET `path` from pilot's monitoring address (host side): status and body.
pub fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let out = rt.block_on(rudder_harness::get(
        &HttpRequest::get(addr, path),
        Duration::from_secs(3),
    ));
    out.status.map(|s| (s, out.body))
}

/// One connected proxy as `/debug/syncz` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connected {
    /// Node id.
    pub node_id: String,
    /// Every type pilot sent has been ACKed at the version sent.
    pub in_sync: bool,
}

/// Reads `/debug/syncz`.
pub fn syncz(addr: SocketAddr) -> Option<Vec<Connected>> {
    let (status, body) = get(addr, "/debug/syncz")?;
    if status != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    Some(parse_syncz(&v))
}

/// Pure part of [`syncz`].
pub fn parse_syncz(v: &Value) -> Vec<Connected> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let types = c.get("types").and_then(Value::as_object);
            let in_sync =
                types
                    .into_iter()
                    .flatten()
                    .all(|(_, t)| match t.pointer("/last_sent/version") {
                        Some(sent) => t.get("last_acked_version") == Some(sent),
                        None => true,
                    });
            Connected {
                node_id: c
                    .get("node_id")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string(),
                in_sync,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn syncz_in_sync_means_every_sent_version_acked() {
        let v = json!([
            {"node_id": "sidecar~198.18.0.3~a.ns~ns.svc.cluster.local", "types": {
                "cds": {"last_sent": {"version": "v2"}, "last_acked_version": "v2"},
                "rds": {"last_sent": null, "last_acked_version": null}}},
            {"node_id": "sidecar~198.18.0.4~b.ns~ns.svc.cluster.local", "types": {
                "cds": {"last_sent": {"version": "v3"}, "last_acked_version": "v2"}}},
        ]);
        let c = parse_syncz(&v);
        assert_eq!(
            c.iter().map(|c| c.in_sync).collect::<Vec<_>>(),
            [true, false]
        );
        assert!(c[1].node_id.contains("198.18.0.4"));
    }

    #[test]
    fn rules_are_one_file_per_object_and_replace_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let config = ConfigDir(dir.path().to_path_buf());
        let mut m = crate::manifest::Manifest::default();
        m.add_text("a.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: b}\nspec: {hosts: [reviews]}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: b}\nspec: {hosts: [reviews], http: []}\n").unwrap();
        config.write_rule(&m.rules[0]).unwrap();
        config.write_rule(&m.rules[1]).unwrap();
        assert_eq!(config.rules(), ["virtualservice.b.reviews.json"]);
        let text =
            fs::read_to_string(dir.path().join("rules/virtualservice.b.reviews.json")).unwrap();
        assert!(text.contains("\"http\": []"), "{text}");
        assert!(config.delete_rule(&m.rules[0]).unwrap());
        assert!(!config.delete_rule(&m.rules[0]).unwrap());
    }
}
