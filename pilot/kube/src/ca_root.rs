//! The mesh root on a cluster: Secret `rudder-ca-root` in pilot's namespace,
//! created once by the Lease holder, loaded by every replica.
//!
//! ```text
//!  every replica:  GET secret ─┬─ present ────────────────────────────► check (from_pem) ─► Root
//!                              ├─ absent, I hold rudder-pilot-status ─► generate + POST ─┬─ 201 ─► Root (created)
//!                              │                                                         └─ 409 ─► GET again
//!                              └─ absent, I do not ─► wait (poll, or until I get the Lease) ─► GET again
//! ```
//!
//! Why the Lease: two replicas starting together would each generate a root
//! and one would sign with a key nobody else trusts. Only the holder of the
//! status Lease creates; the API server's AlreadyExists (409) settles even a
//! lease handover in the middle. The Secret holds the same two keys as
//! `--ca-dir` (`root-cert.pem`, `root-key.pem`), so an operator provides a
//! root by creating it before installing pilot (or by mounting files and
//! passing `--ca-dir`). A Secret that is incomplete or unusable is an error
//! naming the Secret and key: pilot never replaces a root by itself, since
//! every running sidecar trusts the old one.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use k8s_openapi::{
    api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta, ByteString,
};
use kube::{api::PostParams, Api, Client};
use rudder_ca::root::{self, Root, RootError, ROOT_CERT_FILE, ROOT_KEY_FILE};
use tokio::sync::watch;

/// Name of the Secret holding the mesh root (Istio's equivalent is
/// `istio-ca-secret`; ours keeps the `--ca-dir` file names as keys).
pub const CA_ROOT_SECRET: &str = "rudder-ca-root";

/// Why the root could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum CaRootError {
    /// The API server refused pilot (RBAC): waiting would not help.
    #[error("Secret {secret}: the API server refused pilot ({cause}); pilot's Role needs get on this Secret and create on secrets in its namespace")]
    Forbidden {
        /// `namespace/name`.
        secret: String,
        /// The refusal.
        cause: kube::Error,
    },
    /// The Secret lacks one of the two keys.
    #[error("Secret {secret} has no data key {missing:?}: the mesh root is a pair (root-cert.pem, root-key.pem); restore it, or delete the Secret to let pilot generate a new root (every sidecar must then get new certificates)")]
    Incomplete {
        /// `namespace/name`.
        secret: String,
        /// The missing key.
        missing: &'static str,
    },
    /// The pair is present but unusable (expired, not a CA, key mismatch, not PEM).
    #[error(transparent)]
    Invalid(RootError),
    /// Generating a root failed.
    #[error(transparent)]
    Generate(RootError),
}

/// Where the root Secret is and how to make one.
#[derive(Clone, Debug)]
pub struct CaRootOptions {
    /// Pilot's namespace.
    pub namespace: String,
    /// Secret name.
    pub name: String,
    /// Trust domain written into a generated root.
    pub trust_domain: String,
    /// How often a replica that does not hold the Lease looks again.
    pub poll: Duration,
}

impl CaRootOptions {
    /// Secret [`CA_ROOT_SECRET`] in `namespace`, polled every 2 s while waiting.
    pub fn new(namespace: impl Into<String>, trust_domain: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: CA_ROOT_SECRET.into(),
            trust_domain: trust_domain.into(),
            poll: Duration::from_secs(2),
        }
    }

    fn secret(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The loaded root, and whether this replica created it.
#[derive(Debug)]
pub struct CaRoot {
    /// The root, checked.
    pub root: Root,
    /// True when this call generated and stored it.
    pub created: bool,
}

/// Loads the root Secret, creating it when this replica holds the Lease
/// (`leader`), else waiting until it exists or the Lease comes to us.
/// Connection errors are retried; RBAC refusals and bad Secrets are returned.
pub async fn load_or_create(
    client: Client,
    options: &CaRootOptions,
    mut leader: watch::Receiver<bool>,
) -> Result<CaRoot, CaRootError> {
    let api: Api<Secret> = Api::namespaced(client, &options.namespace);
    let secret = options.secret();
    let mut announced = false;
    let mut leader_alive = true;
    loop {
        match api.get_opt(&options.name).await {
            Ok(Some(s)) => {
                let root = parse(&secret, &s)?;
                tracing::info!(%secret, "mesh root loaded from the Secret");
                return Ok(CaRoot {
                    root,
                    created: false,
                });
            }
            Ok(None) if *leader.borrow_and_update() => {
                let (cert_pem, key_pem) =
                    root::generate(&options.trust_domain, rudder_ca::unix_now())
                        .map_err(CaRootError::Generate)?;
                match api
                    .create(&PostParams::default(), &build(options, &cert_pem, &key_pem))
                    .await
                {
                    Ok(stored) => {
                        let root = parse(&secret, &stored)?;
                        tracing::info!(%secret, trust_domain = %options.trust_domain, "generated the mesh root and stored it in the Secret");
                        return Ok(CaRoot {
                            root,
                            created: true,
                        });
                    }
                    // Another replica was faster (a lease handover): load theirs.
                    Err(kube::Error::Api(e)) if e.code == 409 => continue,
                    Err(cause) => refused_or_retry(&secret, cause)?,
                }
            }
            Ok(None) => {
                if !announced {
                    tracing::info!(%secret, "waiting for the replica holding the status Lease to create the mesh root");
                    announced = true;
                }
            }
            Err(cause) => refused_or_retry(&secret, cause)?,
        }
        tokio::select! {
            r = leader.changed(), if leader_alive => leader_alive = r.is_ok(),
            _ = tokio::time::sleep(options.poll) => {}
        }
    }
}

/// RBAC refusals end the wait (with what to fix); anything else is logged and retried.
fn refused_or_retry(secret: &str, cause: kube::Error) -> Result<(), CaRootError> {
    match &cause {
        kube::Error::Api(e) if e.code == 401 || e.code == 403 => Err(CaRootError::Forbidden {
            secret: secret.to_string(),
            cause,
        }),
        _ => {
            tracing::warn!(%secret, error = %cause, "cannot read or create the mesh root Secret yet; retrying");
            Ok(())
        }
    }
}

/// The Secret pilot creates.
fn build(options: &CaRootOptions, cert_pem: &str, key_pem: &str) -> Secret {
    let data = BTreeMap::from([
        (
            ROOT_CERT_FILE.to_string(),
            ByteString(cert_pem.as_bytes().to_vec()),
        ),
        (
            ROOT_KEY_FILE.to_string(),
            ByteString(key_pem.as_bytes().to_vec()),
        ),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(options.name.clone()),
            namespace: Some(options.namespace.clone()),
            labels: Some(BTreeMap::from([(
                "app".to_string(),
                "rudder-pilot".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// Reads and checks the pair in a Secret; messages name `secret` and the key.
pub fn parse(secret: &str, s: &Secret) -> Result<Root, CaRootError> {
    let get = |key: &'static str| -> Result<String, CaRootError> {
        let bytes = s
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone())
            .or_else(|| {
                s.string_data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|v| v.clone().into_bytes())
            })
            .ok_or(CaRootError::Incomplete {
                secret: secret.to_string(),
                missing: key,
            })?;
        String::from_utf8(bytes).map_err(|_| {
            CaRootError::Invalid(RootError::Invalid {
                file: place(secret, key),
                reason: "not UTF-8 PEM text".into(),
            })
        })
    };
    let (cert_pem, key_pem) = (get(ROOT_CERT_FILE)?, get(ROOT_KEY_FILE)?);
    root::from_pem(
        &place(secret, ROOT_CERT_FILE),
        &cert_pem,
        &place(secret, ROOT_KEY_FILE),
        &key_pem,
        rudder_ca::unix_now(),
    )
    .map_err(CaRootError::Invalid)
}

/// `Secret ns/name key` as the "file" of rudder-ca's messages.
fn place(secret: &str, key: &str) -> PathBuf {
    PathBuf::from(format!("Secret {secret} key {key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_secret_names_the_secret_and_the_key() {
        let o = CaRootOptions::new("rudder-system", "cluster.local");
        let (cert, key) = root::generate("cluster.local", rudder_ca::unix_now()).unwrap();
        let good = build(&o, &cert, &key);
        assert!(parse("rudder-system/rudder-ca-root", &good).is_ok());

        let mut half = good.clone();
        half.data.as_mut().unwrap().remove(ROOT_KEY_FILE);
        let e = parse("rudder-system/rudder-ca-root", &half)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("rudder-system/rudder-ca-root") && e.contains("root-key.pem"),
            "{e}"
        );

        let (_, other_key) = root::generate("cluster.local", rudder_ca::unix_now()).unwrap();
        let mismatched = build(&o, &cert, &other_key);
        let e = parse("rudder-system/rudder-ca-root", &mismatched)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Secret rudder-system/rudder-ca-root key"), "{e}");

        let garbage = build(&o, "not pem", &key);
        let e = parse("rudder-system/rudder-ca-root", &garbage)
            .unwrap_err()
            .to_string();
        assert!(e.contains("key root-cert.pem"), "{e}");
    }
}
