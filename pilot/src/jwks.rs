//! The JWKS resolver: pilot fetches every `jwksUri` a RequestAuthentication
//! names and hands the key sets to the registry, which inlines them into the
//! snapshot (Envoy gets `local_jwks`, never fetches anything itself), as
//! Istio's `JwksResolver` does.
//!
//! ```text
//!  snapshots ─► URIs in use ─► GET (timeout) ─► JwksCache (last good per URI)
//!                  ▲                                │ changed key set
//!                  └──── registry rebuild ◄── RegistryHandle::set_jwks
//! ```
//!
//! - A URI is fetched as soon as a snapshot names it, then every
//!   `--jwks-refresh-interval` (Istio's `PILOT_JWT_PUB_KEY_REFRESH_INTERVAL`,
//!   20 min). A failed fetch is retried after 1 s, doubling up to the
//!   interval.
//! - A failed refresh keeps the last good key set: the failure is counted
//!   (`pilot_jwks_resolver_network_fetch_fail_total`) and reported as a
//!   warning on each rule using the URI; nothing is pushed.
//! - A fetched key set that differs from the one held rebuilds the snapshot
//!   and pushes it (no restart of anything).
//! - A URI never fetched successfully is served with `rudder_xds::FAKE_JWKS`
//!   (Istio's `FakeJwks`): every token of that issuer is refused (401),
//!   never let through unchecked; requests without a token still pass.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use rudder_metrics::{IstioCounter, Registry};
use rudder_model::{Diagnostic, JwksSource, Snapshot};
use rudder_registry::{compile::security::check_jwks, RegistryHandle, Sink};
use tokio::{sync::watch, task::JoinSet};

/// The scope the resolver reports its problems under.
const SCOPE: &str = "jwks-resolver";
/// Istio's default JWKS fetch timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// First retry after a failed fetch (doubling up to the refresh interval).
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// The resolver's counters, under Istio's exact names (which, unlike its
/// other counters, end in `_total`).
#[derive(Clone, Debug, Default)]
pub struct JwksMetrics {
    success: IstioCounter,
    fail: IstioCounter,
}

impl JwksMetrics {
    /// Registers them in pilot's registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "pilot_jwks_resolver_network_fetch_success_total",
            "JWKS fetches that returned a valid key set",
            self.success.clone(),
        );
        registry.register(
            "pilot_jwks_resolver_network_fetch_fail_total",
            "JWKS fetches that failed (the last good key set stays in use)",
            self.fail.clone(),
        );
    }
}

/// What the cache knows of one URI.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// The last key set fetched successfully.
    pub last_good: Option<String>,
    /// Why the latest fetch failed (`None` after a success).
    pub error: Option<String>,
    /// Failures in a row.
    pub failures: u32,
}

/// What a fetch result changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A key set different from the one held: push it.
    Changed(String),
    /// The same key set again.
    Unchanged,
    /// The fetch failed; the last good key set (if any) stays.
    Failed,
}

/// Last good key set per URI; pure, so its rules are unit-tested.
#[derive(Clone, Debug, Default)]
pub struct JwksCache {
    entries: BTreeMap<String, Entry>,
}

impl JwksCache {
    /// Records the result of fetching `uri` (a body that is not a key set
    /// is a failure).
    pub fn record(&mut self, uri: &str, result: Result<String, String>) -> Outcome {
        let e = self.entries.entry(uri.to_string()).or_default();
        match result.and_then(|body| check_jwks(&body).map(|()| body)) {
            Ok(body) => {
                e.error = None;
                e.failures = 0;
                if e.last_good.as_deref() == Some(body.as_str()) {
                    Outcome::Unchanged
                } else {
                    e.last_good = Some(body.clone());
                    Outcome::Changed(body)
                }
            }
            Err(why) => {
                e.error = Some(why);
                e.failures = e.failures.saturating_add(1);
                Outcome::Failed
            }
        }
    }

    /// What is known of `uri`.
    pub fn get(&self, uri: &str) -> Option<&Entry> {
        self.entries.get(uri)
    }

    /// Forgets URIs no longer in use.
    pub fn retain(&mut self, in_use: &BTreeMap<String, Option<Duration>>) {
        self.entries.retain(|u, _| in_use.contains_key(u));
    }

    /// A warning per rule whose URI's latest fetch failed.
    pub fn diagnostics(&self, snapshot: &Snapshot) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for p in &snapshot.security.request_authentications {
            for (i, r) in p.rules.iter().enumerate() {
                let JwksSource::Uri(uri) = &r.jwks else {
                    continue;
                };
                let Some(Entry {
                    error: Some(why),
                    last_good,
                    ..
                }) = self.entries.get(uri)
                else {
                    continue;
                };
                let serving = if last_good.is_some() {
                    "the last key set fetched stays in use"
                } else {
                    "never fetched: tokens of this issuer are refused (401) until a fetch succeeds, as Istio does"
                };
                out.push(Diagnostic::warning(
                    format!(
                        "RequestAuthentication {}/{}",
                        p.source.namespace, p.source.name
                    ),
                    format!("spec.jwtRules[{i}].jwksUri"),
                    format!("fetching {uri}: {why}; {serving}"),
                ));
            }
        }
        out
    }
}

/// Resolver settings.
#[derive(Clone, Copy, Debug)]
pub struct JwksOptions {
    /// Refetch every URI this often.
    pub refresh: Duration,
}

/// Fetches what the current snapshot names until the snapshots end.
pub async fn run(
    handle: RegistryHandle,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    options: JwksOptions,
    metrics: JwksMetrics,
) {
    let client = rudder_http_client(DEFAULT_TIMEOUT);
    let mut cache = JwksCache::default();
    // When each URI is due, and the retry delay after a failure.
    let mut due: BTreeMap<String, (Instant, Duration)> = BTreeMap::new();
    let mut reported: Vec<Diagnostic> = Vec::new();
    loop {
        let snapshot = snapshots.borrow_and_update().clone();
        let uris = snapshot.security.jwks_uris();
        cache.retain(&uris);
        due.retain(|u, _| uris.contains_key(u));
        let now = Instant::now();
        for u in uris.keys() {
            due.entry(u.clone()).or_insert((now, FIRST_RETRY));
        }
        let ready: Vec<String> = due
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(u, _)| u.clone())
            .collect();
        if !ready.is_empty() {
            let mut fetches = JoinSet::new();
            for u in ready {
                let timeout = uris.get(&u).copied().flatten().unwrap_or(DEFAULT_TIMEOUT);
                let client = client.clone();
                fetches.spawn(async move {
                    let r = fetch(&client, &u, timeout).await;
                    (u, r)
                });
            }
            while let Some(Ok((uri, result))) = fetches.join_next().await {
                let outcome = cache.record(&uri, result);
                let (_, retry) = due.get(&uri).copied().unwrap_or((now, FIRST_RETRY));
                let next = if outcome == Outcome::Failed {
                    metrics.fail.inc();
                    tracing::warn!(%uri, error = ?cache.get(&uri).and_then(|e| e.error.clone()), "JWKS fetch failed; the last good key set stays");
                    (
                        Instant::now() + retry.min(options.refresh),
                        (retry * 2).min(options.refresh),
                    )
                } else {
                    metrics.success.inc();
                    (Instant::now() + options.refresh, FIRST_RETRY)
                };
                due.insert(uri.clone(), next);
                if let Outcome::Changed(body) = outcome {
                    tracing::info!(%uri, "JWKS fetched; pushing the new key set");
                    handle.set_jwks(&uri, body);
                }
            }
        }
        let problems = cache.diagnostics(&snapshot);
        if problems != reported {
            handle.report(SCOPE, problems.clone());
            reported = problems;
        }
        let next = due.values().map(|(at, _)| *at).min();
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return },
            _ = sleep_until(next) => {}
        }
    }
}

/// Fetches every URI `snapshot` names once, concurrently, and records the
/// good key sets (pilot's start, before it serves anyone).
pub async fn fetch_once(handle: &RegistryHandle, snapshot: &Snapshot, metrics: &JwksMetrics) {
    let client = rudder_http_client(DEFAULT_TIMEOUT);
    let mut fetches = JoinSet::new();
    for (u, timeout) in snapshot.security.jwks_uris() {
        let client = client.clone();
        fetches.spawn(async move {
            let r = fetch(&client, &u, timeout.unwrap_or(DEFAULT_TIMEOUT)).await;
            (u, r)
        });
    }
    let mut cache = JwksCache::default();
    while let Some(Ok((uri, result))) = fetches.join_next().await {
        match cache.record(&uri, result) {
            Outcome::Changed(body) => {
                metrics.success.inc();
                handle.set_jwks(&uri, body);
            }
            _ => {
                metrics.fail.inc();
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// One GET with its own timeout; a non-200 answer is an error.
async fn fetch(
    client: &rudder_http::Client,
    uri: &str,
    timeout: Duration,
) -> Result<String, String> {
    match tokio::time::timeout(timeout, client.get(uri)).await {
        Err(_) => Err(format!("no answer within {timeout:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(r)) if r.status != 200 => Err(format!("HTTP {}", r.status)),
        Ok(Ok(r)) => Ok(r.body),
    }
}

/// HTTP and HTTPS (verified against the system's CA bundle).
fn rudder_http_client(timeout: Duration) -> rudder_http::Client {
    let mut options = rudder_http::Options::new(timeout.max(Duration::from_secs(60)));
    options.tls = Some(Arc::new(system_tls()));
    rudder_http::Client::with_options(options)
}

/// A rustls client config trusting the system's CA bundle (the usual
/// Linux locations; none found: HTTPS URIs fail, and say so).
fn system_tls() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for path in [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ] {
        if let Ok(pem) = std::fs::read(path) {
            for cert in rustls_pemfile::certs(&mut pem.as_slice()).flatten() {
                let _ = roots.add(cert);
            }
            break;
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"}]}"#;
    const B: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"c","y":"d"}]}"#;

    #[test]
    fn keeps_the_last_good_key_set_when_a_refresh_fails() {
        let mut c = JwksCache::default();
        let u = "http://127.0.0.1:1/jwks";
        assert_eq!(c.record(u, Ok(A.into())), Outcome::Changed(A.into()));
        assert_eq!(c.record(u, Ok(A.into())), Outcome::Unchanged);
        assert_eq!(
            c.record(u, Err("connection refused".into())),
            Outcome::Failed
        );
        // Not a key set: a failure too, and the good one stays.
        assert_eq!(c.record(u, Ok("<html>".into())), Outcome::Failed);
        let e = c.get(u).unwrap();
        assert_eq!(e.last_good.as_deref(), Some(A));
        assert_eq!(e.failures, 2);
        assert!(e
            .error
            .as_deref()
            .unwrap()
            .contains("not a JSON Web Key Set"));
        // A new key set replaces it and clears the error.
        assert_eq!(c.record(u, Ok(B.into())), Outcome::Changed(B.into()));
        assert_eq!(c.get(u).unwrap().error, None);
        assert_eq!(c.get(u).unwrap().failures, 0);
    }

    #[test]
    fn a_failure_is_a_warning_on_each_rule_using_the_uri() {
        let yaml = "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt, namespace: default}\nspec:\n  jwtRules:\n  - {issuer: a, jwks: '{\"keys\":[{\"kty\":\"EC\"}]}'}\n  - {issuer: b, jwksUri: 'http://127.0.0.1:1/jwks'}\n";
        let objects = rudder_registry::load::load_str(yaml, "ra.yaml", "ra.yaml").objects;
        let snap = rudder_registry::build::build_snapshot(&objects, vec![]);
        let mut c = JwksCache::default();
        assert!(c.diagnostics(&snap).is_empty());
        c.record("http://127.0.0.1:1/jwks", Err("connection refused".into()));
        let d = c.diagnostics(&snap);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].object, "RequestAuthentication default/jwt");
        assert_eq!(d[0].field, "spec.jwtRules[1].jwksUri");
        assert!(d[0].message.contains("never fetched"), "{}", d[0].message);
        c.record("http://127.0.0.1:1/jwks", Ok(A.into()));
        c.record("http://127.0.0.1:1/jwks", Err("timeout".into()));
        assert!(c.diagnostics(&snap)[0]
            .message
            .contains("last key set fetched stays"));
    }
}
