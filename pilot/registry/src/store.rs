//! The source contract ([`Sink`]) and the [`Store`] of typed objects.
//!
//! Sources (the directory watcher and the Kubernetes watchers) call the
//! contract; the store keeps, per (kind, namespace, name), the last good
//! version of each object: a new version with validation errors is reported
//! and the previous good one keeps serving; a new invalid object is simply
//! skipped. Other objects are never affected.

use std::collections::BTreeMap;

use rudder_model::{Diagnostic, Severity, Snapshot};

use crate::{
    build::{build_snapshot_with_jwks, endpoints_rebuildable, rebuild_endpoints, validate_object},
    object::{Kind, Object, ObjectKey, Rejected},
};

/// Everything one scope holds, for [`Sink::reset`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// Objects that parsed.
    pub objects: Vec<Object>,
    /// Objects whose new version did not parse (their last good version stays).
    pub rejected: Vec<Rejected>,
    /// Problems of the scope itself (a document without a name, ...).
    pub problems: Vec<Diagnostic>,
}

/// The source contract, shaped like kube-rs watcher events (Apply, Delete,
/// Init/InitApply/InitDone → `reset`). Calls are cheap and synchronous: they
/// update the store and schedule one debounced rebuild.
pub trait Sink: Send + Sync {
    /// An object was added or changed.
    fn apply(&self, object: Object);
    /// A new version of an object could not be read; keep its last good version.
    fn reject(&self, rejected: Rejected);
    /// An object is gone.
    fn delete(&self, key: &ObjectKey);
    /// Atomically replaces everything `scope` holds (a re-list, a re-read
    /// file): objects of that scope missing from `batch` are removed, so no
    /// stale object survives.
    fn reset(&self, scope: &str, batch: Batch);
    /// Problems of a scope that leave its objects as they are (a file that no
    /// longer parses keeps its last good objects); replaces earlier problems of the scope.
    fn report(&self, scope: &str, problems: Vec<Diagnostic>);
}

#[derive(Clone, Debug)]
struct Entry {
    /// Boxed: an `Object` is about 650 bytes and a map node holds 11
    /// entries, so unboxed the nodes of a store of thousands of pods held
    /// about twice the objects' own size.
    good: Option<Box<Object>>,
    /// Why the latest version was rejected (empty when it is the good one).
    rejected: Vec<Diagnostic>,
    /// Scope of the latest version.
    scope: String,
}

/// Typed objects keyed by (kind, namespace, name), with last-good semantics.
#[derive(Clone, Debug, Default)]
pub struct Store {
    entries: BTreeMap<ObjectKey, Entry>,
    problems: BTreeMap<String, Vec<Diagnostic>>,
    /// JSON Web Key Sets pilot fetched, by `jwksUri` (the last good one).
    jwks: BTreeMap<String, String>,
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates and stores `object`; returns its diagnostics (errors mean it
    /// was rejected and the last good version, if any, stays).
    pub fn apply(&mut self, object: Object) -> Vec<Diagnostic> {
        let diags = validate_object(&object);
        let scope = object.origin.scope.clone();
        if diags.iter().any(|d| d.severity == Severity::Error) {
            tracing::warn!(object = %object.key, errors = diags.len(), "rejected; last good version keeps serving");
            let entry = self.entries.entry(object.key.clone()).or_insert(Entry {
                good: None,
                rejected: vec![],
                scope: scope.clone(),
            });
            entry.rejected = diags.clone();
            entry.scope = scope;
        } else {
            self.entries.insert(
                object.key.clone(),
                Entry {
                    good: Some(Box::new(object)),
                    rejected: vec![],
                    scope,
                },
            );
        }
        diags
    }

    /// Records that the new version of an object could not be read.
    pub fn reject(&mut self, r: Rejected) {
        tracing::warn!(object = %r.key, "unreadable; last good version keeps serving");
        let entry = self.entries.entry(r.key).or_insert(Entry {
            good: None,
            rejected: vec![],
            scope: r.origin.scope.clone(),
        });
        entry.rejected = r.diagnostics;
        entry.scope = r.origin.scope;
    }

    /// Removes an object.
    pub fn delete(&mut self, key: &ObjectKey) {
        self.entries.remove(key);
    }

    /// See [`Sink::reset`].
    pub fn reset(&mut self, scope: &str, batch: Batch) {
        let keep: std::collections::BTreeSet<&ObjectKey> = batch
            .objects
            .iter()
            .map(|o| &o.key)
            .chain(batch.rejected.iter().map(|r| &r.key))
            .collect();
        let stale: Vec<ObjectKey> = self
            .entries
            .iter()
            .filter(|(k, e)| e.scope == scope && !keep.contains(k))
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.entries.remove(&k);
        }
        for o in batch.objects {
            self.apply(o);
        }
        for r in batch.rejected {
            self.reject(r);
        }
        self.report(scope, batch.problems);
    }

    /// See [`Sink::report`].
    pub fn report(&mut self, scope: &str, problems: Vec<Diagnostic>) {
        if problems.is_empty() {
            self.problems.remove(scope);
        } else {
            self.problems.insert(scope.to_string(), problems);
        }
    }

    /// The kinds of the objects `scope` holds (good or rejected).
    pub fn scope_kinds<'a>(&'a self, scope: &'a str) -> impl Iterator<Item = Kind> + 'a {
        self.entries
            .iter()
            .filter(move |(_, e)| e.scope == scope)
            .map(|(k, _)| k.kind)
    }

    /// The good version of an object.
    pub fn get(&self, key: &ObjectKey) -> Option<&Object> {
        self.entries.get(key).and_then(|e| e.good.as_deref())
    }

    /// Good objects, in key order.
    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.entries.values().filter_map(|e| e.good.as_deref())
    }

    /// Rejections and scope problems (not the build's warnings).
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        self.problems
            .values()
            .flatten()
            .chain(self.entries.values().flat_map(|e| e.rejected.iter()))
            .cloned()
            .collect()
    }

    /// Builds the snapshot of the current contents.
    pub fn snapshot(&self) -> Snapshot {
        build_snapshot_with_jwks(self.objects(), self.diagnostics(), &self.jwks)
    }

    /// Records the key set fetched from `uri` (the JWKS resolver's last good
    /// one); whether it changed.
    pub fn set_jwks(&mut self, uri: &str, jwks: String) -> bool {
        self.jwks.insert(uri.to_string(), jwks.clone()) != Some(jwks)
    }

    /// The fetched key sets, by URI.
    pub fn jwks(&self) -> &BTreeMap<String, String> {
        &self.jwks
    }

    /// The snapshot of the current contents when only endpoint kinds
    /// changed since `previous` was built from this store and its
    /// diagnostics are `previous_diagnostics` still: `previous`'s
    /// configuration taken as it is ([`rebuild_endpoints`]). Otherwise
    /// (or when `previous` does not allow it) a full build. Also returns
    /// the store's diagnostics it compared (for the next call).
    pub fn snapshot_after_endpoints(
        &self,
        previous: &Snapshot,
        previous_diagnostics: &[Diagnostic],
    ) -> (Snapshot, Vec<Diagnostic>) {
        let diagnostics = self.diagnostics();
        let snapshot = if endpoints_rebuildable(previous) && diagnostics == previous_diagnostics {
            rebuild_endpoints(previous, self.objects())
        } else {
            build_snapshot_with_jwks(self.objects(), diagnostics.clone(), &self.jwks)
        };
        (snapshot, diagnostics)
    }
}
