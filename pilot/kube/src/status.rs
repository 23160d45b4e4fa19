//! Status conditions on route rules: `kubectl describe virtualservice reviews`
//! shows `Valid False Invalid spec.http[0].route[1].weight: must not be negative`.
//!
//! ```text
//!  rule watchers ──► RuleIndex (key → generation, Valid condition seen) ─┐
//!  registry diagnostics (last build) ────────────────────────────────────┼─► reconcile ─► PATCH …/status
//!  Lease rudder-pilot-status (lease.rs): only the holder writes ─────────┘    (only what differs)
//! ```
//!
//! Level-based: the desired condition of every rule is computed from the
//! latest diagnostics and compared with what the cluster shows (the watch
//! brings our own writes back), so a restart, a lost lease or a missed write
//! converges by itself and nothing is written twice. Failures are logged and
//! retried on the next tick; pilot never stops serving over status.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use kube::{
    api::{Patch, PatchParams},
    core::DynamicObject,
    Api, Client,
};
use rudder_model::{Diagnostic, Severity};
use rudder_registry::{Kind, ObjectKey};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    crds::{Condition, VALID_CONDITION},
    lease::{run_lease, LeaseOptions},
    resources::{api_resource, RuleState},
};

/// Field manager of pilot's status writes.
pub const FIELD_MANAGER: &str = "rudder-pilot";

/// The route rules in the cluster and the status each shows, shared between
/// the watchers (writers) and the status writer (reader).
#[derive(Clone, Debug)]
pub struct RuleIndex {
    rules: Arc<Mutex<BTreeMap<ObjectKey, RuleState>>>,
    changes: Arc<watch::Sender<u64>>,
}

impl Default for RuleIndex {
    fn default() -> Self {
        Self {
            rules: Arc::default(),
            changes: Arc::new(watch::channel(0).0),
        }
    }
}

impl RuleIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ObjectKey, RuleState>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changes.send_modify(|v| *v += 1);
    }

    /// Replaces every rule of `kind` (a re-list).
    pub fn reset(&self, kind: Kind, rules: BTreeMap<ObjectKey, RuleState>) {
        let mut g = self.lock();
        g.retain(|k, _| k.kind != kind);
        g.extend(rules);
        drop(g);
        self.bump();
    }

    /// A rule was added or changed.
    pub fn set(&self, key: ObjectKey, state: RuleState) {
        self.lock().insert(key, state);
        self.bump();
    }

    /// A rule is gone.
    pub fn remove(&self, key: &ObjectKey) {
        self.lock().remove(key);
        self.bump();
    }

    /// The current rules.
    pub fn snapshot(&self) -> BTreeMap<ObjectKey, RuleState> {
        self.lock().clone()
    }

    /// Ticks on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// The `Valid` condition a rule should show, given the errors found for it
/// (warnings do not make a rule invalid; they are listed in the message).
pub fn desired_condition(generation: Option<i64>, diagnostics: &[&Diagnostic]) -> Condition {
    let line = |d: &&Diagnostic| {
        if d.field.is_empty() {
            d.message.clone()
        } else {
            format!("{}: {}", d.field, d.message)
        }
    };
    let errors: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(line)
        .collect();
    let warnings: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(line)
        .collect();
    let (status, reason, message) = if errors.is_empty() {
        let message = if warnings.is_empty() {
            "accepted".to_string()
        } else {
            format!("accepted with warnings: {}", warnings.join("; "))
        };
        ("True", "Accepted", message)
    } else {
        (
            "False",
            "Invalid",
            format!(
                "not served (the last valid version, if any, still is): {}",
                errors.join("; ")
            ),
        )
    };
    Condition {
        type_: VALID_CONDITION.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: None,
    }
}

/// Same verdict (the transition time aside).
fn same(a: &Condition, b: &Condition) -> bool {
    a.type_ == b.type_
        && a.status == b.status
        && a.reason == b.reason
        && a.message == b.message
        && a.observed_generation == b.observed_generation
}

/// Settings of the status writer.
#[derive(Clone, Debug)]
pub struct StatusOptions {
    /// Lease settings (identity, namespace, timing).
    pub lease: LeaseOptions,
    /// Re-check everything this often even without changes.
    pub resync: Duration,
}

/// The running status writer and its lease loop; both stop when dropped.
pub struct StatusWriter {
    tasks: Vec<JoinHandle<()>>,
    leader: watch::Receiver<bool>,
}

impl StatusWriter {
    /// Starts the lease loop and the writer.
    pub fn spawn(
        client: Client,
        options: StatusOptions,
        rules: RuleIndex,
        diagnostics: watch::Receiver<Arc<Vec<Diagnostic>>>,
    ) -> StatusWriter {
        let (leader_tx, leader) = watch::channel(false);
        let lease = tokio::spawn(run_lease(client.clone(), options.lease.clone(), leader_tx));
        let writer = Writer {
            client,
            rules,
            diagnostics,
            leader: leader.clone(),
            written: BTreeMap::new(),
        };
        let write = tokio::spawn(writer.run(options.resync));
        StatusWriter {
            tasks: vec![lease, write],
            leader,
        }
    }

    /// Whether this replica holds the lease (and so writes status).
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Leadership changes.
    pub fn leader(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }
}

impl Drop for StatusWriter {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct Writer {
    client: Client,
    rules: RuleIndex,
    diagnostics: watch::Receiver<Arc<Vec<Diagnostic>>>,
    leader: watch::Receiver<bool>,
    /// What this replica wrote while leading (so a slow watch does not cause a second write).
    written: BTreeMap<ObjectKey, Condition>,
}

impl Writer {
    async fn run(mut self, resync: Duration) {
        let mut changes = self.rules.subscribe();
        let mut tick = tokio::time::interval(resync);
        loop {
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                r = self.diagnostics.changed() => if r.is_err() { return },
                r = self.leader.changed() => if r.is_err() { return },
                _ = tick.tick() => {}
            }
            if *self.leader.borrow_and_update() {
                self.reconcile().await;
            } else {
                self.written.clear();
            }
        }
    }

    async fn reconcile(&mut self) {
        let diagnostics = self.diagnostics.borrow_and_update().clone();
        let mut by_object: BTreeMap<&str, Vec<&Diagnostic>> = BTreeMap::new();
        for d in diagnostics.iter() {
            by_object.entry(d.object.as_str()).or_default().push(d);
        }
        let rules = self.rules.snapshot();
        self.written.retain(|k, _| rules.contains_key(k));
        for (key, state) in rules {
            let name = key.to_string();
            let mut desired = desired_condition(
                state.generation,
                by_object.get(name.as_str()).map_or(&[], |v| v.as_slice()),
            );
            let shown = state.valid.as_ref().is_some_and(|c| same(c, &desired));
            let written = self.written.get(&key).is_some_and(|c| same(c, &desired));
            if shown || written {
                continue;
            }
            desired.last_transition_time = match &state.valid {
                Some(old) if old.status == desired.status => old.last_transition_time.clone(),
                _ => Some(k8s_openapi::jiff::Timestamp::now().to_string()),
            };
            match self.patch(&key, &desired).await {
                Ok(()) => {
                    tracing::info!(object = %key, valid = %desired.status, message = %desired.message, "status written");
                    self.written.insert(key, desired);
                }
                Err(error) => {
                    tracing::warn!(object = %key, %error, "cannot write status; retrying later")
                }
            }
        }
    }

    async fn patch(&self, key: &ObjectKey, condition: &Condition) -> Result<(), kube::Error> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &key.namespace, &api_resource(key.kind));
        let body = serde_json::json!({ "status": { "conditions": [condition] } });
        api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_make_a_rule_invalid_naming_field_and_why() {
        let e = Diagnostic::error(
            "VirtualService default/r",
            "spec.http[0].route[0].weight",
            "must not be negative",
        );
        let w = Diagnostic::warning(
            "VirtualService default/r",
            "spec.hosts[0]",
            "no such service",
        );
        let c = desired_condition(Some(4), &[&e, &w]);
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "Invalid"));
        assert!(
            c.message
                .contains("spec.http[0].route[0].weight: must not be negative"),
            "{}",
            c.message
        );
        assert_eq!(c.observed_generation, Some(4));
        let ok = desired_condition(Some(4), &[&w]);
        assert_eq!(ok.status, "True");
        assert!(ok.message.contains("no such service"));
        assert!(same(&ok, &desired_condition(Some(4), &[&w])));
        assert!(!same(&ok, &desired_condition(Some(5), &[&w])));
    }
}
