//! Shared test support: the fake API server, a recording sink, fixtures.
#![allow(dead_code)]

pub mod fake_api;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use rudder_model::Diagnostic;
use rudder_registry::{Batch, Object, ObjectKey, Rejected, Sink, Store};
use serde_json::{json, Value};

/// One call of the source contract.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    Apply(ObjectKey),
    Reject(ObjectKey),
    Delete(ObjectKey),
    /// Scope and the keys of the batch.
    Reset(String, Vec<ObjectKey>),
    Report(String),
}

/// A sink that records every call and keeps a store (so tests can look at
/// what a registry would hold), optionally forwarding to another sink.
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<Mutex<(Vec<Call>, Store)>>,
    forward: Option<rudder_registry::RegistryHandle>,
}

impl Recorder {
    pub fn forwarding(to: rudder_registry::RegistryHandle) -> Self {
        Self {
            forward: Some(to),
            ..Self::default()
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut (Vec<Call>, Store)) -> R) -> R {
        f(&mut self.inner.lock().unwrap())
    }

    pub fn calls(&self) -> Vec<Call> {
        self.with(|s| s.0.clone())
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Object> {
        self.with(|s| s.1.get(key).cloned())
    }

    pub fn keys(&self) -> Vec<ObjectKey> {
        self.with(|s| s.1.objects().map(|o| o.key.clone()).collect())
    }

    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        self.with(|s| s.1.diagnostics())
    }

    /// Waits (bounded) until `cond` holds over the calls and store.
    pub async fn wait_for(&self, what: &str, cond: impl Fn(&[Call], &Store) -> bool) {
        wait(what, || self.with(|s| cond(&s.0, &s.1))).await
    }
}

impl Sink for Recorder {
    fn apply(&self, object: Object) {
        self.with(|s| {
            s.0.push(Call::Apply(object.key.clone()));
            s.1.apply(object.clone());
        });
        if let Some(f) = &self.forward {
            f.apply(object);
        }
    }
    fn reject(&self, rejected: Rejected) {
        self.with(|s| {
            s.0.push(Call::Reject(rejected.key.clone()));
            s.1.reject(rejected.clone());
        });
        if let Some(f) = &self.forward {
            f.reject(rejected);
        }
    }
    fn delete(&self, key: &ObjectKey) {
        self.with(|s| {
            s.0.push(Call::Delete(key.clone()));
            s.1.delete(key);
        });
        if let Some(f) = &self.forward {
            f.delete(key);
        }
    }
    fn reset(&self, scope: &str, batch: Batch) {
        self.with(|s| {
            let keys = batch
                .objects
                .iter()
                .map(|o| o.key.clone())
                .chain(batch.rejected.iter().map(|r| r.key.clone()))
                .collect();
            s.0.push(Call::Reset(scope.to_string(), keys));
            s.1.reset(scope, batch.clone());
        });
        if let Some(f) = &self.forward {
            f.reset(scope, batch);
        }
    }
    fn report(&self, scope: &str, problems: Vec<Diagnostic>) {
        self.with(|s| {
            s.0.push(Call::Report(scope.to_string()));
            s.1.report(scope, problems.clone());
        });
        if let Some(f) = &self.forward {
            f.report(scope, problems);
        }
    }
}

/// Polls `cond` every 20 ms for up to 30 s (a safety bound, not a timing assertion).
pub async fn wait(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..1500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

pub fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"istio-injection": "enabled"}}})
}

pub fn service(name: &str, vip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
           "spec": {"clusterIP": vip, "selector": {"app": name}, "ports": [{"name": "http", "port": 9080, "targetPort": 9080}]}})
}

pub fn pod(name: &str, app: &str, ip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default", "labels": {"app": app, "version": "v1"},
                        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"big\": true}"},
                        "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
           "spec": {"serviceAccountName": app, "containers": [{"name": app, "image": "example/app:1", "ports": [{"name": "http", "containerPort": 9080}]}]},
           "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "conditions": [{"type": "Ready", "status": "True"}]}})
}

pub fn pod_key(name: &str) -> ObjectKey {
    ObjectKey::new(rudder_registry::Kind::Pod, "default", name)
}

/// Path of a registry testdata file (shared fixtures: bookinfo and variants).
pub fn registry_testdata(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../registry/testdata")
        .join(rel)
}
