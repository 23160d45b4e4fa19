//! The [`Registry`]: owns the store, hands out [`RegistryHandle`]s (the
//! [`Sink`] sources call), and publishes debounced snapshots.
//!
//! ```text
//!  sources ──Sink──► store ──(change)──► debouncer ──build──► watch<Arc<Snapshot>>
//!                                         100 ms quiet, ≤ 1 s after the first change
//! ```
//!
//! Publishing only when the snapshot's version changes means a burst of
//! identical applies (a re-list, an editor touching a file) pushes nothing.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use rudder_model::{Diagnostic, Snapshot};
use tokio::{
    sync::{mpsc, oneshot, watch},
    time::Instant,
};

use crate::{
    object::{Object, ObjectKey, Rejected},
    store::{Batch, Sink, Store},
};

/// Debounce settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistryOptions {
    /// Rebuild after this long without further change.
    pub debounce: Duration,
    /// ... but no later than this after the first pending change.
    pub max_delay: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        }
    }
}

enum Msg {
    Changed,
    Flush(oneshot::Sender<Arc<Snapshot>>),
}

/// Owns the store and the publishing task (which ends when the registry and
/// every handle are dropped).
pub struct Registry {
    handle: RegistryHandle,
    diagnostics: watch::Receiver<Arc<Vec<Diagnostic>>>,
}

/// A cheap, cloneable handle implementing the source contract.
#[derive(Clone)]
pub struct RegistryHandle {
    store: Arc<Mutex<Store>>,
    tx: mpsc::UnboundedSender<Msg>,
}

impl Registry {
    /// Starts the registry (needs a Tokio runtime). The receiver holds an
    /// empty snapshot until the first build.
    pub fn new(options: RegistryOptions) -> (Registry, watch::Receiver<Arc<Snapshot>>) {
        let store = Arc::new(Mutex::new(Store::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        let (snap_tx, snap_rx) = watch::channel(Arc::new(Snapshot::default().seal()));
        let (diag_tx, diag_rx) = watch::channel(Arc::new(Vec::new()));
        tokio::spawn(run(store.clone(), rx, snap_tx, diag_tx, options));
        (
            Registry {
                handle: RegistryHandle { store, tx },
                diagnostics: diag_rx,
            },
            snap_rx,
        )
    }

    /// A handle for a source.
    pub fn handle(&self) -> RegistryHandle {
        self.handle.clone()
    }

    /// Diagnostics of the latest build (they change without changing the
    /// snapshot's version, so they have their own channel).
    pub fn diagnostics(&self) -> watch::Receiver<Arc<Vec<Diagnostic>>> {
        self.diagnostics.clone()
    }
}

impl RegistryHandle {
    fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves plain data; keep serving it.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self) {
        let _ = self.tx.send(Msg::Changed);
    }

    /// Rebuilds and publishes now, skipping the debounce; returns the current
    /// snapshot (e.g. after a source's initial sync, before `/ready`).
    pub async fn flush(&self) -> Option<Arc<Snapshot>> {
        let (ack, done) = oneshot::channel();
        self.tx.send(Msg::Flush(ack)).ok()?;
        done.await.ok()
    }
}

impl Sink for RegistryHandle {
    fn apply(&self, object: Object) {
        self.lock().apply(object);
        self.changed();
    }

    fn reject(&self, rejected: Rejected) {
        self.lock().reject(rejected);
        self.changed();
    }

    fn delete(&self, key: &ObjectKey) {
        self.lock().delete(key);
        self.changed();
    }

    fn reset(&self, scope: &str, batch: Batch) {
        self.lock().reset(scope, batch);
        self.changed();
    }

    fn report(&self, scope: &str, problems: Vec<Diagnostic>) {
        self.lock().report(scope, problems);
        self.changed();
    }
}

async fn run(
    store: Arc<Mutex<Store>>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    snap_tx: watch::Sender<Arc<Snapshot>>,
    diag_tx: watch::Sender<Arc<Vec<Diagnostic>>>,
    opts: RegistryOptions,
) {
    while let Some(first) = rx.recv().await {
        let mut acks = Vec::new();
        match first {
            Msg::Flush(a) => acks.push(a),
            Msg::Changed => {
                let deadline = Instant::now() + opts.max_delay;
                loop {
                    let quiet = (Instant::now() + opts.debounce).min(deadline);
                    tokio::select! {
                        m = rx.recv() => match m {
                            Some(Msg::Changed) => continue,
                            Some(Msg::Flush(a)) => { acks.push(a); break; }
                            None => break,
                        },
                        _ = tokio::time::sleep_until(quiet) => break,
                    }
                }
            }
        }
        // Drain flushes queued behind us so they see this build.
        while let Ok(m) = rx.try_recv() {
            if let Msg::Flush(a) = m {
                acks.push(a);
            }
        }
        let snap = {
            let guard = store.lock().unwrap_or_else(|e| e.into_inner());
            Arc::new(guard.snapshot())
        };
        let current = snap_tx.borrow().clone();
        let published = if current.version != snap.version {
            tracing::info!(version = %snap.version, services = snap.services.len(), route_tables = snap.route_tables.len(), "snapshot published");
            snap_tx.send_replace(snap.clone());
            snap.clone()
        } else {
            current
        };
        if **diag_tx.borrow() != snap.diagnostics {
            for d in newly_found(&diag_tx.borrow(), &snap.diagnostics) {
                tracing::warn!(diagnostic = %d, "config problem");
            }
            diag_tx.send_replace(Arc::new(snap.diagnostics.clone()));
        }
        for a in acks {
            let _ = a.send(published.clone());
        }
    }
}

/// The diagnostics of `current` that `previous` did not have: each problem
/// (an unsupported object, a rejected rule) is logged once when it appears,
/// not again at every rebuild while it stays.
pub fn newly_found<'a>(previous: &[Diagnostic], current: &'a [Diagnostic]) -> Vec<&'a Diagnostic> {
    let seen: std::collections::BTreeSet<&Diagnostic> = previous.iter().collect();
    let mut logged = std::collections::BTreeSet::new();
    current
        .iter()
        .filter(|d| !seen.contains(d) && logged.insert(*d))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_diagnostic_is_new_once() {
        let a = Diagnostic::unsupported("HTTPRoute default/web", "", "not served");
        let b = Diagnostic::error("VirtualService default/r", "spec.hosts", "required");
        assert_eq!(newly_found(&[], &[a.clone(), a.clone()]), vec![&a]);
        assert_eq!(
            newly_found(std::slice::from_ref(&a), &[a.clone(), b.clone()]),
            vec![&b]
        );
        assert!(newly_found(&[a.clone(), b.clone()], &[b.clone(), a.clone()]).is_empty());
        // Gone and back: new again.
        assert_eq!(
            newly_found(std::slice::from_ref(&b), &[a.clone(), b.clone()]),
            vec![&a]
        );
    }
}
