//! Keeping the workload certificate fresh, and handing it to Envoy.
//!
//! ```text
//!  fetch (identity.rs) ──ok──► Sink::Files: ..data swap in --cert-dir ─► watcher ─► hot restart
//!     ▲   │                └─► Sink::Sds:   watch channel ─► sds.rs pushes to Envoy (no restart)
//!     │   └─ error: keep the old certificate, retry with backoff (never past half the time left)
//!     └── sleep until half life − jitter
//! ```
//!
//! File mode writes the three files the way kubelet updates a Secret volume:
//! a new `..<generation>` directory, then an atomic rename of the `..data`
//! link the file names point through. Readers (the supervisor's checks,
//! Envoy) never see a chain from one generation with a key from another.

use std::{
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use rudder_model::backoff::Backoff;
use tokio::sync::watch;

use crate::{
    bootstrap::{CERT_CHAIN_FILE, KEY_FILE, ROOT_CERT_FILE},
    identity::{self, CaClientConfig, Issued},
    state::AgentState,
};

/// Writing the certificate files failed.
#[derive(Debug, thiserror::Error)]
#[error("writing certificates to {dir}: {reason} (in CA mode --cert-dir must be a directory the agent can write, e.g. an emptyDir)")]
pub struct WriteError {
    dir: PathBuf,
    reason: String,
}

/// Where new certificates go.
#[derive(Clone, Debug)]
pub enum Sink {
    /// File mode: `--cert-dir`, then the watcher hot-restarts Envoy.
    Files(PathBuf),
    /// SDS mode: the secrets the SDS server serves.
    Sds(watch::Sender<Option<Arc<Issued>>>),
}

impl Sink {
    /// Hands `issued` on.
    pub fn publish(&self, issued: &Issued) -> Result<(), WriteError> {
        match self {
            Sink::Files(dir) => write_atomic(dir, issued),
            Sink::Sds(tx) => {
                tx.send_replace(Some(Arc::new(issued.clone())));
                Ok(())
            }
        }
    }
}

/// Writes the set kubelet-style (see the module docs) and removes older
/// generations this agent wrote.
pub fn write_atomic(dir: &Path, issued: &Issued) -> Result<(), WriteError> {
    let err = |reason: String| WriteError {
        dir: dir.to_path_buf(),
        reason,
    };
    let io = |what: &str, e: std::io::Error| err(format!("{what}: {e}"));
    std::fs::create_dir_all(dir).map_err(|e| io("creating the directory", e))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let gen_name = format!("..rudder-{nanos}");
    let gen = dir.join(&gen_name);
    std::fs::create_dir(&gen).map_err(|e| io("creating a generation directory", e))?;
    for (name, data, mode) in [
        (CERT_CHAIN_FILE, &issued.chain_pem, 0o644),
        (KEY_FILE, &issued.key_pem, 0o600),
        (ROOT_CERT_FILE, &issued.root_pem, 0o644),
    ] {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(gen.join(name))
            .map_err(|e| io(name, e))?;
        f.write_all(data.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| io(name, e))?;
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&gen_name, &tmp).map_err(|e| io("linking ..data_tmp", e))?;
    std::fs::rename(&tmp, dir.join("..data")).map_err(|e| io("swapping ..data", e))?;
    for name in [CERT_CHAIN_FILE, KEY_FILE, ROOT_CERT_FILE] {
        let link = dir.join(name);
        let target = format!("..data/{name}");
        let ok = std::fs::read_link(&link)
            .map(|t| t == Path::new(&target))
            .unwrap_or(false);
        if !ok {
            // A plain file or an old link: replace it atomically with the link.
            let tmp = dir.join(format!("..{name}.tmp"));
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(&target, &tmp).map_err(|e| io(name, e))?;
            std::fs::rename(&tmp, &link).map_err(|e| io(name, e))?;
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with("..rudder-") && name != gen_name {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
}

/// Retry timing after a failed fetch: 1 s doubling up to 30 s.
pub fn default_backoff() -> Backoff {
    Backoff::new(Duration::from_secs(1), Duration::from_secs(30))
}

/// Fetches until it works (the first certificate: Envoy waits for it).
pub async fn fetch_first(cfg: &CaClientConfig, mut backoff: Backoff) -> Issued {
    loop {
        match identity::fetch(cfg).await {
            Ok(issued) => return issued,
            Err(error) => {
                let delay = backoff.next_delay();
                log_failure(&error, cfg, delay);
                tokio::time::sleep(delay).await;
            }
        }
    }
}

fn log_failure(error: &identity::IdentityError, cfg: &CaClientConfig, retry_in: Duration) {
    let retry_in_ms = retry_in.as_millis() as u64;
    if error.needs_operator() {
        tracing::error!(%error, ca = %cfg.address, id = %cfg.id, retry_in_ms, "cannot get a workload certificate");
    } else {
        tracing::warn!(%error, ca = %cfg.address, id = %cfg.id, retry_in_ms, "cannot get a workload certificate");
    }
}

/// How often the root file (`--ca-root`) is read for a new trust bundle.
pub const ROOT_CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// After the bundle gained a root, how long the agent keeps asking (every
/// [`NEW_ROOT_RETRY`]) for a certificate under it: the bundle can reach the
/// pod before pilot signs with the new intermediate.
pub const NEW_ROOT_WAIT: Duration = Duration::from_secs(60);
/// See [`NEW_ROOT_WAIT`].
pub const NEW_ROOT_RETRY: Duration = Duration::from_secs(3);

/// Whether `bundle` holds a root `old_bundle` does not have, and `issued`
/// chains to none of the new ones.
fn waiting_for_new_root(issued: &Issued, old_bundle: &str) -> bool {
    use x509_parser::pem::Pem;
    let ders = |b: &str| -> Vec<Vec<u8>> {
        Pem::iter_from_buffer(b.as_bytes())
            .filter_map(Result::ok)
            .map(|p| p.contents)
            .collect()
    };
    let old = ders(old_bundle);
    let new: Vec<Vec<u8>> = ders(&issued.root_pem)
        .into_iter()
        .filter(|r| !old.contains(r))
        .collect();
    !new.is_empty()
        && identity::anchor(&issued.chain_pem, &issued.root_pem).is_none_or(|a| !new.contains(&a))
}

/// Returns once `root_file` holds something else than `current` (a root
/// rotation: the ConfigMap volume, or the local runner, updated it).
async fn root_changed(root_file: &Path, current: &str) {
    loop {
        tokio::time::sleep(ROOT_CHECK_INTERVAL).await;
        match tokio::fs::read_to_string(root_file).await {
            Ok(now) if !now.trim().is_empty() && now.trim() != current.trim() => return,
            _ => {}
        }
    }
}

/// Renews forever: at half life (with jitter), or at once when the trust
/// bundle in `--ca-root` changes (a root rotation: the new bundle goes to
/// Envoy as `ROOTCA` with a certificate from the CA's current signer), fetch
/// a new certificate and publish it; on failure keep the current one and
/// retry with backoff. In
/// SDS mode it also keeps `rudder_agent_cert_expiry_seconds` current (in
/// file mode the supervisor does, from the files Envoy actually uses).
pub async fn run(
    cfg: CaClientConfig,
    mut current: Issued,
    sink: Sink,
    state: Arc<AgentState>,
    backoff: Backoff,
) {
    let mut renewals: u64 = 0;
    // Set while a grown bundle waits for a certificate under a new root.
    let mut new_root: Option<(String, tokio::time::Instant)> = None;
    loop {
        if matches!(sink, Sink::Sds(_)) {
            state.cert_not_after.set(current.not_after);
        }
        let mut wait = identity::renew_in(
            current.not_before,
            current.not_after,
            crate::supervisor::unix_now(),
            identity::jitter(),
        );
        if let Some((old, until)) = &new_root {
            if waiting_for_new_root(&current, old) && tokio::time::Instant::now() < *until {
                wait = wait.min(NEW_ROOT_RETRY);
            } else {
                new_root = None;
            }
        }
        tracing::debug!(
            wait_ms = wait.as_millis() as u64,
            not_after = current.not_after,
            "next certificate renewal"
        );
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = root_changed(&cfg.root_file, &current.root_pem) => {
                tracing::info!(root_file = %cfg.root_file.display(), "the mesh trust bundle changed: renewing now");
                if new_root.is_none() {
                    new_root = Some((current.root_pem.clone(), tokio::time::Instant::now() + NEW_ROOT_WAIT));
                }
            }
        }
        let mut backoff = backoff;
        current = loop {
            match identity::fetch(&cfg).await {
                Ok(issued) => break issued,
                Err(error) => {
                    // Never sleep past the point where half the remaining life is gone.
                    let left = (current.not_after - crate::supervisor::unix_now()).max(1) as u64;
                    let d = backoff
                        .next_delay()
                        .min(Duration::from_secs(left / 2).max(Duration::from_millis(200)));
                    log_failure(&error, &cfg, d);
                    tokio::time::sleep(d).await;
                }
            }
        };
        match sink.publish(&current) {
            Ok(()) => {
                renewals += 1;
                tracing::info!(serial = %current.serial, not_after = current.not_after, renewals, "workload certificate renewed");
            }
            Err(error) => {
                tracing::error!(%error, "renewed certificate could not be handed to Envoy; keeping the old one")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(tag: &str) -> Issued {
        Issued {
            chain_pem: format!("chain {tag}"),
            key_pem: format!("key {tag}"),
            root_pem: format!("root {tag}"),
            not_before: 0,
            not_after: 1,
            serial: tag.into(),
        }
    }

    #[test]
    fn atomic_writes_swap_generations_and_replace_plain_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(KEY_FILE), "operator key").unwrap();
        write_atomic(d.path(), &issued("a")).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join(KEY_FILE)).unwrap(),
            "key a"
        );
        write_atomic(d.path(), &issued("b")).unwrap();
        for (f, want) in [
            (CERT_CHAIN_FILE, "chain b"),
            (KEY_FILE, "key b"),
            (ROOT_CERT_FILE, "root b"),
        ] {
            assert_eq!(std::fs::read_to_string(d.path().join(f)).unwrap(), want);
        }
        let gens = std::fs::read_dir(d.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("..rudder-")
            })
            .count();
        assert_eq!(gens, 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn sds_sink_publishes() {
        let (tx, rx) = watch::channel(None);
        Sink::Sds(tx).publish(&issued("x")).unwrap();
        assert_eq!(rx.borrow().as_ref().unwrap().serial, "x");
    }
}
