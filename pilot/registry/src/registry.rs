//! The [`Registry`]: owns the store, hands out [`RegistryHandle`]s (the
//! [`Sink`] sources call), and publishes debounced snapshots.
//!
//! ```text
//!  sources ──Sink──► store ──(change)──► debouncer ──build──► watch<Arc<Snapshot>>
//!                               config:    100 ms quiet, ≤ 1 s after the first change
//!                               endpoints: ≤ 25 ms after the first change
//! ```
//!
//! Two kinds of change, two clocks. A config change (Services, routing and
//! security rules, the mesh config, rejections) waits for `debounce` of quiet,
//! at most `max_delay`. An endpoint-only change (Pods, Endpoints,
//! EndpointSlices: [`is_endpoint_kind`]) is never held behind that: it is
//! built `endpoint_delay` after the first such change, merging those within
//! the window, even while config changes keep coming (so sustained pod churn
//! neither waits for quiet nor is starved by it). A build answering
//! endpoint changes alone takes the last build's configuration as it is and
//! computes workloads and endpoints anew
//! ([`crate::build::rebuild_endpoints`]); any other compiles the whole store,
//! so whichever clock fires publishes everything pending.
//!
//! Publishing only when the snapshot's version changes means a burst of
//! identical applies (a re-list, an editor touching a file) pushes nothing.
//!
//! Paced by its consumer ([`Registry::pacer`]): once the consumer (pilot's
//! push to every proxy) reports the versions it has taken, a due build
//! first waits until it has taken the last one published, at most
//! `max_delay`. A snapshot published while the previous push still runs
//! would be replaced unseen by the next one: under sustained churn the
//! registry built about 40 % more snapshots than were pushed, on the same
//! core as the pushes. Waiting builds the next snapshot when it can be
//! pushed, from every change made meanwhile.

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
    build::{build_snapshot_with_jwks, share_unchanged},
    object::{Kind, Object, ObjectKey, Rejected},
    store::{Batch, Sink, Store},
};

/// Debounce settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistryOptions {
    /// Rebuild after this long without further change.
    pub debounce: Duration,
    /// ... but no later than this after the first pending change.
    pub max_delay: Duration,
    /// Endpoint-only changes are built this long after the first of them
    /// (those within the window merge), whatever config changes do.
    pub endpoint_delay: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            endpoint_delay: Duration::from_millis(25),
        }
    }
}

/// Kinds whose changes only move endpoints (which pods back a service, and
/// where), published on the endpoint clock.
pub fn is_endpoint_kind(kind: Kind) -> bool {
    matches!(kind, Kind::Pod | Kind::Endpoints | Kind::EndpointSlice)
}

/// What a change touched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Config,
    Endpoints,
}

impl Change {
    fn of(kind: Kind) -> Self {
        if is_endpoint_kind(kind) {
            Change::Endpoints
        } else {
            Change::Config
        }
    }
}

enum Msg {
    Changed(Change),
    Flush(oneshot::Sender<Arc<Snapshot>>),
}

/// Owns the store and the publishing task (which ends when the registry and
/// every handle are dropped).
pub struct Registry {
    handle: RegistryHandle,
    diagnostics: watch::Receiver<Arc<Vec<Diagnostic>>>,
    taken: Arc<watch::Sender<Option<String>>>,
}

/// Reports which published snapshot the consumer has taken (see the
/// module docs); cheap to clone.
#[derive(Clone)]
pub struct Pacer(Arc<watch::Sender<Option<String>>>);

impl Pacer {
    /// The consumer is done with the snapshot of `version` (it may be an
    /// older one than the last published: the registry then keeps waiting).
    pub fn taken(&self, version: &str) {
        self.0.send_replace(Some(version.to_string()));
    }
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
        let (taken_tx, taken_rx) = watch::channel(None);
        tokio::spawn(run(store.clone(), rx, snap_tx, diag_tx, taken_rx, options));
        (
            Registry {
                handle: RegistryHandle { store, tx },
                diagnostics: diag_rx,
                taken: Arc::new(taken_tx),
            },
            snap_rx,
        )
    }

    /// For the consumer of the snapshots: builds wait for it once it has
    /// reported a version (see the module docs).
    pub fn pacer(&self) -> Pacer {
        Pacer(self.taken.clone())
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

    fn changed(&self, change: Change) {
        let _ = self.tx.send(Msg::Changed(change));
    }

    /// Records the key set pilot fetched from a `jwksUri`; a set that
    /// differs from the one held rebuilds (a configuration change).
    pub fn set_jwks(&self, uri: &str, jwks: String) {
        if self.lock().set_jwks(uri, jwks) {
            self.changed(Change::Config);
        }
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
        let change = Change::of(object.key.kind);
        self.lock().apply(object);
        self.changed(change);
    }

    fn reject(&self, rejected: Rejected) {
        self.lock().reject(rejected);
        self.changed(Change::Config);
    }

    fn delete(&self, key: &ObjectKey) {
        self.lock().delete(key);
        self.changed(Change::of(key.kind));
    }

    fn reset(&self, scope: &str, batch: Batch) {
        // A re-read file (or re-list) that held and holds only endpoint
        // kinds, with nothing rejected, is an endpoint change.
        let mut store = self.lock();
        let endpoints_only = batch.rejected.is_empty()
            && batch.problems.is_empty()
            && batch.objects.iter().all(|o| is_endpoint_kind(o.key.kind))
            && store.scope_kinds(scope).all(is_endpoint_kind);
        store.reset(scope, batch);
        drop(store);
        self.changed(if endpoints_only {
            Change::Endpoints
        } else {
            Change::Config
        });
    }

    fn report(&self, scope: &str, problems: Vec<Diagnostic>) {
        self.lock().report(scope, problems);
        self.changed(Change::Config);
    }
}

async fn run(
    store: Arc<Mutex<Store>>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    snap_tx: watch::Sender<Arc<Snapshot>>,
    diag_tx: watch::Sender<Arc<Vec<Diagnostic>>>,
    mut taken: watch::Receiver<Option<String>>,
    opts: RegistryOptions,
) {
    // The last build and the store's own diagnostics it carried.
    let mut last: Option<(Arc<Snapshot>, Vec<Diagnostic>)> = None;
    while let Some(first) = rx.recv().await {
        let mut acks = Vec::new();
        let mut pending = Pending::default();
        // Whether every change this build answers moved endpoints only (a
        // change is applied to the store before it is announced, so what
        // the last build missed is announced here or later).
        let mut endpoints_only = true;
        match first {
            Msg::Flush(a) => {
                acks.push(a);
                endpoints_only = false;
            }
            Msg::Changed(c) => {
                endpoints_only &= c == Change::Endpoints;
                pending.add(c, Instant::now(), &opts);
                while let Some(at) = pending.due() {
                    tokio::select! {
                        m = rx.recv() => match m {
                            Some(Msg::Changed(c)) => {
                                endpoints_only &= c == Change::Endpoints;
                                pending.add(c, Instant::now(), &opts);
                            }
                            Some(Msg::Flush(a)) => { acks.push(a); break; }
                            None => break,
                        },
                        _ = tokio::time::sleep_until(at) => break,
                    }
                }
            }
        }
        if acks.is_empty() {
            wait_until_taken(&mut taken, &snap_tx, opts.max_delay).await;
        }
        // Drain flushes queued behind us so they see this build.
        while let Ok(m) = rx.try_recv() {
            match m {
                Msg::Flush(a) => acks.push(a),
                Msg::Changed(c) => endpoints_only &= c == Change::Endpoints,
            }
        }
        let started = Instant::now();
        let snap = {
            let guard = store.lock().unwrap_or_else(|e| e.into_inner());
            let (built, diagnostics) = match &last {
                Some((previous, diagnostics)) if endpoints_only => {
                    guard.snapshot_after_endpoints(previous, diagnostics)
                }
                _ => {
                    let diagnostics = guard.diagnostics();
                    let mut built = build_snapshot_with_jwks(
                        guard.objects(),
                        diagnostics.clone(),
                        guard.jwks(),
                    );
                    if let Some((previous, _)) = &last {
                        share_unchanged(previous, &mut built);
                    }
                    (built, diagnostics)
                }
            };
            let built = Arc::new(built);
            last = Some((built.clone(), diagnostics));
            built
        };
        let current = snap_tx.borrow().clone();
        let published = if current.version != snap.version {
            tracing::info!(
                version = %snap.version,
                services = snap.services.len(),
                route_tables = snap.route_tables.len(),
                build_millis = started.elapsed().as_millis() as u64,
                "snapshot published"
            );
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

/// Waits, at most `limit`, until the consumer has taken the last published
/// snapshot; at once when it never reported one (no consumer paces this
/// registry) or the channel is gone.
async fn wait_until_taken(
    taken: &mut watch::Receiver<Option<String>>,
    published: &watch::Sender<Arc<Snapshot>>,
    limit: Duration,
) {
    let current = published.borrow().version.clone();
    let behind = |t: &Option<String>| t.as_ref().is_some_and(|v| *v != current);
    if !behind(&taken.borrow()) {
        return;
    }
    let _ = tokio::time::timeout(limit, taken.wait_for(|t| !behind(t))).await;
}

/// When the changes waiting for a build are due.
#[derive(Default)]
struct Pending {
    /// Config: the end of the quiet time, capped by the first change's max delay.
    config: Option<(Instant, Instant)>,
    /// Endpoints: the end of the window opened by the first change.
    endpoints: Option<Instant>,
}

impl Pending {
    fn add(&mut self, c: Change, now: Instant, opts: &RegistryOptions) {
        match c {
            Change::Config => {
                let deadline = self.config.map_or(now + opts.max_delay, |(_, d)| d);
                self.config = Some(((now + opts.debounce).min(deadline), deadline));
            }
            Change::Endpoints => {
                self.endpoints.get_or_insert(now + opts.endpoint_delay);
            }
        }
    }

    /// The earliest time a build is due, if anything is pending.
    fn due(&self) -> Option<Instant> {
        match (self.config.map(|(at, _)| at), self.endpoints) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
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
