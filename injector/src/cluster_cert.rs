//! On a cluster without `--tls-cert/--tls-key`: keep Secret
//! `rudder-injector-tls` holding a usable certificate, serve it, and keep the
//! webhook configurations' `caBundle` naming its CA (as istiod does): the
//! MutatingWebhookConfiguration `rudder-sidecar-injector` and, when it is
//! installed, the ValidatingWebhookConfiguration `rudder-validator`.
//!
//! ```text
//!  start ─► GET Secret ─ valid ≥ 30 d ─────────────────────────► serve it
//!              │ missing            │ invalid / expiring
//!              ▼                    ▼
//!           POST (create)        PUT (update, resourceVersion)
//!              │ 409: another replica won ──► GET again, use theirs
//!              ▼
//!  serving ─► JSON-patch every webhook's clientConfig.caBundle (when different)
//!          └► every few minutes: the same again (renewal, a peer's rotation)
//! ```
//!
//! Replicas agree without a leader: creation and updates are conditional
//! (create fails with 409 if the Secret exists; update carries the
//! resourceVersion it read), and the loser reads and serves the winner's.
//! The caBundle patch guards each index with a `test` of the webhook's name,
//! so a concurrent reorder of the list fails the patch instead of writing the
//! CA into the wrong entry.

use std::{sync::Arc, time::Duration};

use base64::Engine;
use hyper::{Method, StatusCode};
use rudder_model::backoff::Backoff;
use rustls::sign::CertifiedKey;
use serde_json::{json, Value};

use crate::{
    kubeapi::{ApiClient, ApiError},
    serving_cert::{
        self, Bundle, CertError, SECRET_NAME, VALIDATOR_CONFIG_NAME, WEBHOOK_CONFIG_NAME,
    },
    tls::SwappableCert,
};

/// How often a running injector re-reads the Secret and the caBundle.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// Attempts of the caBundle patch when the webhook list moved under it.
const PATCH_ATTEMPTS: usize = 3;

/// Why the certificate or the caBundle could not be settled.
#[derive(Debug, thiserror::Error)]
pub enum ClusterCertError {
    /// No answer from the API server.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The API server refused (RBAC, validation, ...).
    #[error("{action}: {detail}")]
    Status {
        /// What was attempted (`create Secret rudder-system/rudder-injector-tls`).
        action: String,
        /// The answer.
        detail: String,
    },
    /// A certificate could not be generated.
    #[error(transparent)]
    Generate(Box<CertError>),
    /// Another replica wrote the Secret first, but what it wrote is unusable.
    #[error(
        "Secret {secret} was written concurrently by another replica but cannot be used: {reason}"
    )]
    PeerUnusable {
        /// namespace/name.
        secret: String,
        /// Why.
        reason: Box<CertError>,
    },
    /// The webhook configuration is not shaped as expected.
    #[error("{kind} {name}: {reason}")]
    Webhook {
        /// `MutatingWebhookConfiguration` or `ValidatingWebhookConfiguration`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// Where the served certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The Secret already held a valid certificate.
    Reused,
    /// No Secret: this replica created it.
    Created,
    /// The Secret's certificate was invalid or expiring: this replica replaced it.
    Updated,
    /// Another replica created or replaced the Secret at the same time; its
    /// certificate is used.
    Peer,
}

/// The certificate to serve, with its Secret's contents.
pub struct Settled {
    /// The Secret's contents.
    pub bundle: Bundle,
    /// The pair to serve.
    pub key: CertifiedKey,
    /// How it was obtained.
    pub origin: Origin,
}

fn secret_path(namespace: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/secrets/{SECRET_NAME}")
}

/// A webhook configuration whose entries must carry the injector's CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Its kind.
    pub kind: &'static str,
    /// Its resource (plural) in admissionregistration.k8s.io/v1.
    pub resource: &'static str,
    /// Its name.
    pub name: &'static str,
    /// Whether its absence is an error (the injector's own webhook) or the
    /// operator's choice (the validator is optional).
    pub required: bool,
}

/// The injector's MutatingWebhookConfiguration.
pub const INJECTOR_WEBHOOK: WebhookConfig = WebhookConfig {
    kind: "MutatingWebhookConfiguration",
    resource: "mutatingwebhookconfigurations",
    name: WEBHOOK_CONFIG_NAME,
    required: true,
};

/// The validating webhook's configuration (optional).
pub const VALIDATOR_WEBHOOK: WebhookConfig = WebhookConfig {
    kind: "ValidatingWebhookConfiguration",
    resource: "validatingwebhookconfigurations",
    name: VALIDATOR_CONFIG_NAME,
    required: false,
};

impl WebhookConfig {
    fn path(&self) -> String {
        format!(
            "/apis/admissionregistration.k8s.io/v1/{}/{}",
            self.resource, self.name
        )
    }
}

fn refused(action: String, resp: &crate::kubeapi::ApiResponse) -> ClusterCertError {
    ClusterCertError::Status {
        action,
        detail: resp.describe(),
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Make sure Secret `rudder-injector-tls` in `namespace` holds a certificate
/// valid for at least 30 more days, creating or replacing it if not, and
/// return it. `now` is Unix seconds.
pub async fn ensure_secret(
    client: &ApiClient,
    namespace: &str,
    now: i64,
) -> Result<Settled, ClusterCertError> {
    let path = secret_path(namespace);
    let id = format!("{namespace}/{SECRET_NAME}");
    let resp = client.request(Method::GET, &path, None).await?;
    let existing = match resp.status {
        StatusCode::OK => Some(resp.json().ok_or_else(|| ClusterCertError::Status {
            action: format!("get Secret {id}"),
            detail: "answer is not JSON".into(),
        })?),
        StatusCode::NOT_FOUND => None,
        _ => return Err(refused(format!("get Secret {id}"), &resp)),
    };
    let generated = |e| ClusterCertError::Generate(Box::new(e));
    let fresh = || serving_cert::generate(namespace, now).map_err(generated);
    let (resp, origin, bundle) = match existing {
        Some(mut secret) => {
            let usable = Bundle::from_secret(&secret)
                .and_then(|b| serving_cert::check(&b, namespace, now).map(|k| (b, k)));
            match usable {
                Ok((bundle, key)) => {
                    return Ok(Settled {
                        bundle,
                        key,
                        origin: Origin::Reused,
                    })
                }
                Err(reason) => {
                    tracing::info!(secret = %id, %reason, "replacing the injector's serving certificate")
                }
            }
            let bundle = fresh()?;
            // Keep metadata (resourceVersion makes the update conditional),
            // type and anything else; replace the data.
            secret["data"] = bundle.secret_data();
            let resp = client
                .send_json(Method::PUT, &path, "application/json", &secret)
                .await?;
            (resp, Origin::Updated, bundle)
        }
        None => {
            let bundle = fresh()?;
            let resp = client
                .send_json(
                    Method::POST,
                    &format!("/api/v1/namespaces/{namespace}/secrets"),
                    "application/json",
                    &bundle.secret(namespace),
                )
                .await?;
            (resp, Origin::Created, bundle)
        }
    };
    match resp.status {
        s if s.is_success() => {
            let key = serving_cert::check(&bundle, namespace, now).map_err(generated)?;
            tracing::info!(secret = %id, ?origin, "injector serving certificate written");
            Ok(Settled {
                bundle,
                key,
                origin,
            })
        }
        StatusCode::CONFLICT => {
            tracing::info!(secret = %id, "another replica wrote the Secret first; using theirs");
            winner(client, namespace, now).await
        }
        _ => {
            let verb = if origin == Origin::Created {
                "create"
            } else {
                "update"
            };
            Err(refused(format!("{verb} Secret {id}"), &resp))
        }
    }
}

/// Read the Secret another replica just wrote.
async fn winner(
    client: &ApiClient,
    namespace: &str,
    now: i64,
) -> Result<Settled, ClusterCertError> {
    let id = format!("{namespace}/{SECRET_NAME}");
    let resp = client
        .request(Method::GET, &secret_path(namespace), None)
        .await?;
    if resp.status != StatusCode::OK {
        return Err(refused(format!("get Secret {id}"), &resp));
    }
    let secret = resp.json().unwrap_or(Value::Null);
    let unusable = |reason| ClusterCertError::PeerUnusable {
        secret: id.clone(),
        reason: Box::new(reason),
    };
    let bundle = Bundle::from_secret(&secret).map_err(unusable)?;
    let key = serving_cert::check(&bundle, namespace, now).map_err(unusable)?;
    Ok(Settled {
        bundle,
        key,
        origin: Origin::Peer,
    })
}

/// Set every webhook's `clientConfig.caBundle` of the injector's
/// configuration and of the validator's (when installed) to `ca_pem`;
/// returns how many entries changed (0: already equal, nothing sent).
pub async fn patch_ca_bundle(client: &ApiClient, ca_pem: &str) -> Result<usize, ClusterCertError> {
    let mut changed = 0;
    for config in [INJECTOR_WEBHOOK, VALIDATOR_WEBHOOK] {
        changed += patch_ca_bundle_of(client, config, ca_pem).await?;
    }
    Ok(changed)
}

/// [`patch_ca_bundle`] for one configuration. An optional one that is not
/// installed changes nothing.
pub async fn patch_ca_bundle_of(
    client: &ApiClient,
    config: WebhookConfig,
    ca_pem: &str,
) -> Result<usize, ClusterCertError> {
    let want = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let path = config.path();
    let WebhookConfig { kind, name, .. } = config;
    let mut last = None;
    for _ in 0..PATCH_ATTEMPTS {
        let resp = client.request(Method::GET, &path, None).await?;
        if resp.status == StatusCode::NOT_FOUND && !config.required {
            tracing::debug!(webhook = name, "{kind} not installed; nothing to patch");
            return Ok(0);
        }
        if resp.status != StatusCode::OK {
            return Err(refused(format!("get {kind} {name}"), &resp));
        }
        let found = resp.json().unwrap_or(Value::Null);
        let webhooks = found["webhooks"]
            .as_array()
            .ok_or_else(|| ClusterCertError::Webhook {
                kind,
                name: name.into(),
                reason: "no webhooks list".into(),
            })?;
        let mut ops = Vec::new();
        for (i, w) in webhooks.iter().enumerate() {
            if w["clientConfig"]["caBundle"].as_str() == Some(want.as_str()) {
                continue;
            }
            // Guard the index: if the list changed since the GET, the
            // patch fails as a whole and the loop reads it again.
            ops.push(
                json!({"op": "test", "path": format!("/webhooks/{i}/name"), "value": w["name"]}),
            );
            ops.push(json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": want}));
        }
        if ops.is_empty() {
            return Ok(0);
        }
        let changed = ops.len() / 2;
        let resp = client
            .send_json(
                Method::PATCH,
                &path,
                "application/json-patch+json",
                &Value::Array(ops),
            )
            .await?;
        match resp.status {
            s if s.is_success() => {
                tracing::info!(webhook = name, entries = changed, "caBundle patched");
                return Ok(changed);
            }
            // A failed `test` (the list moved) or a write conflict: read again.
            StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY => {
                tracing::info!(webhook = name, detail = %resp.describe(), "caBundle patch raced a change; retrying");
                last = Some(resp);
            }
            _ => return Err(refused(format!("patch {kind} {name}"), &resp)),
        }
    }
    let resp = last.expect("the loop ran and recorded a conflict");
    Err(refused(
        format!("patch {kind} {name} ({PATCH_ATTEMPTS} attempts)"),
        &resp,
    ))
}

/// Keep what is served and the caBundle current while the injector runs:
/// patch the caBundle now (retrying with back-off until it works: the
/// webhook configuration may be applied after the injector starts), then
/// every `interval` re-check the Secret (renewal at 30 days left, or a
/// peer's rotation) and the caBundle. Runs until dropped.
pub async fn maintain(
    client: ApiClient,
    namespace: String,
    resolver: Arc<SwappableCert>,
    mut current: Bundle,
    interval: Duration,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), interval);
    loop {
        let wait = match patch_ca_bundle(&client, &current.ca_pem).await {
            Ok(_) => {
                backoff.reset();
                interval
            }
            Err(error) => {
                let retry_in = backoff.next_delay();
                tracing::warn!(%error, ?retry_in, "cannot set the webhook caBundle");
                retry_in
            }
        };
        tokio::time::sleep(wait).await;
        match ensure_secret(&client, &namespace, unix_now()).await {
            Ok(settled) if settled.bundle != current => {
                tracing::info!(origin = ?settled.origin, "serving a new certificate");
                resolver.set(settled.key);
                current = settled.bundle;
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot check the serving certificate Secret"),
        }
    }
}
