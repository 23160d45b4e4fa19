//! The injector's own serving certificate when no `--tls-cert/--tls-key` is
//! given: a one-purpose self-signed CA and a certificate for the injector's
//! Service, as istiod makes for its webhook. Pure: no I/O, the clock is a
//! parameter.
//!
//! The CA's key is thrown away once the serving certificate is signed: the CA
//! exists only so the webhook's `caBundle` can name something other than the
//! serving certificate itself, and nobody should be able to sign more with
//! it. Renewal therefore makes a new CA too (and a new caBundle).
//!
//! The Secret holds `tls.crt` (serving certificate), `tls.key` (its key) and
//! `ca.crt` (the CA), type `kubernetes.io/tls`, so `kubectl` and other tools
//! read it like any TLS Secret.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::{
    client::danger::ServerCertVerifier,
    pki_types::{CertificateDer, ServerName, UnixTime},
    sign::CertifiedKey,
};
use serde_json::{json, Value};

use crate::tls;

/// The Secret holding the injector's certificate.
pub const SECRET_NAME: &str = "rudder-injector-tls";
/// The injector's Service (its DNS names go into the certificate).
pub const SERVICE_NAME: &str = "rudder-injector";
/// The MutatingWebhookConfiguration whose caBundle names our CA.
pub const WEBHOOK_CONFIG_NAME: &str = "rudder-sidecar-injector";
/// The ValidatingWebhookConfiguration (route rules checked at apply) whose
/// caBundle names the same CA.
pub const VALIDATOR_CONFIG_NAME: &str = "rudder-validator";
/// Validity of a generated CA and serving certificate.
pub const VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// A certificate with less left than this is replaced.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why a certificate could not be made, or a Secret's cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen failed.
    #[error("generating the serving certificate: {0}")]
    Generate(String),
    /// The Secret lacks a key.
    #[error("no data key {0:?}")]
    MissingKey(&'static str),
    /// A data value is not base64 or not UTF-8.
    #[error("data key {key:?}: {reason}")]
    Encoding {
        /// The key.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// The pair does not parse or the key does not match.
    #[error("tls.crt/tls.key: {0}")]
    Pair(#[from] tls::TlsError),
    /// `ca.crt` is unusable.
    #[error("ca.crt: {0}")]
    Ca(String),
    /// The certificate does not chain to `ca.crt`, does not name the
    /// Service, or is not valid now.
    #[error("tls.crt is not valid for {name} under ca.crt: {reason}")]
    Untrusted {
        /// The name checked.
        name: String,
        /// Why.
        reason: String,
    },
    /// Valid, but expiring soon.
    #[error("tls.crt or ca.crt expires in {days_left} days (renewed under {renew_days})")]
    Expiring {
        /// Whole days left.
        days_left: i64,
        /// The renewal threshold in days.
        renew_days: u64,
    },
}

/// The DNS names of the injector's Service in `namespace`, as the API server
/// (and anything else in the cluster) may call it.
pub fn dns_names(namespace: &str) -> Vec<String> {
    let svc = format!("{SERVICE_NAME}.{namespace}.svc");
    vec![
        svc.clone(),
        format!("{svc}.{}", rudder_model::well_known::DEFAULT_DOMAIN_SUFFIX),
        format!("{SERVICE_NAME}.{namespace}"),
        SERVICE_NAME.to_string(),
    ]
}

/// What the Secret holds, as PEM text.
#[derive(Clone, PartialEq, Eq)]
pub struct Bundle {
    /// Serving certificate (`tls.crt`).
    pub cert_pem: String,
    /// Its private key (`tls.key`).
    pub key_pem: String,
    /// The CA that signed it (`ca.crt`), the webhook's caBundle.
    pub ca_pem: String,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Bundle")
            .field("ca_pem", &self.ca_pem)
            .finish_non_exhaustive()
    }
}

const KEYS: [&str; 3] = ["tls.crt", "tls.key", "ca.crt"];

impl Bundle {
    /// The Secret's `data`: base64 of each PEM.
    pub fn secret_data(&self) -> Value {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        json!({
            "tls.crt": b64(&self.cert_pem),
            "tls.key": b64(&self.key_pem),
            "ca.crt": b64(&self.ca_pem),
        })
    }

    /// A new Secret object `name` in `namespace` holding this bundle.
    pub fn secret(&self, namespace: &str) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": SECRET_NAME,
                "namespace": namespace,
                "labels": {"app": SERVICE_NAME},
            },
            "type": "kubernetes.io/tls",
            "data": self.secret_data(),
        })
    }

    /// Read a Secret object's `data` (Kubernetes returns it base64-encoded).
    pub fn from_secret(secret: &Value) -> Result<Self, CertError> {
        let data = secret.get("data").and_then(Value::as_object);
        let mut out = BTreeMap::new();
        for key in KEYS {
            let b64 = data
                .and_then(|d| d.get(key))
                .and_then(Value::as_str)
                .ok_or(CertError::MissingKey(key))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| CertError::Encoding {
                    key,
                    reason: format!("not base64: {e}"),
                })?;
            let text = String::from_utf8(bytes).map_err(|_| CertError::Encoding {
                key,
                reason: "not UTF-8 PEM".into(),
            })?;
            out.insert(key, text);
        }
        let mut take = |k| out.remove(k).unwrap_or_default();
        Ok(Bundle {
            cert_pem: take("tls.crt"),
            key_pem: take("tls.key"),
            ca_pem: take("ca.crt"),
        })
    }
}

fn time(secs: i64) -> Result<time::OffsetDateTime, CertError> {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| CertError::Generate(format!("time {secs}: {e}")))
}

/// A fresh CA and serving certificate for the Service in `namespace`, both
/// valid from a minute before `now` (Unix seconds; clock skew) for [`VALIDITY`].
pub fn generate(namespace: &str, now: i64) -> Result<Bundle, CertError> {
    let gen = |e: rcgen::Error| CertError::Generate(e.to_string());
    let (not_before, not_after) = (time(now - 60)?, time(now + VALIDITY.as_secs() as i64)?);

    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name.push(
        DnType::CommonName,
        format!("{SERVICE_NAME}.{namespace} webhook CA"),
    );
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_key = KeyPair::generate().map_err(gen)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(gen)?;
    let issuer = Issuer::new(ca, ca_key);

    let names = dns_names(namespace);
    let mut leaf = CertificateParams::new(names.clone()).map_err(gen)?;
    leaf.distinguished_name.push(DnType::CommonName, &names[0]);
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = not_before;
    leaf.not_after = not_after;
    let key = KeyPair::generate().map_err(gen)?;
    let cert = leaf.signed_by(&key, &issuer).map_err(gen)?;
    Ok(Bundle {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        ca_pem: ca_cert.pem(),
    })
}

fn not_after(der: &CertificateDer<'_>, what: &str) -> Result<i64, CertError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CertError::Ca(format!("{what}: not X.509: {e}")))?;
    Ok(cert.validity().not_after.timestamp())
}

/// Check that `bundle` can serve the Service in `namespace` at `now` and
/// for at least [`RENEW_BEFORE`] more: the key matches, the certificate
/// chains to `ca.crt` and names `rudder-injector.<ns>.svc` (what the API
/// server dials). Returns the pair ready to serve.
pub fn check(bundle: &Bundle, namespace: &str, now: i64) -> Result<CertifiedKey, CertError> {
    let key = tls::pair_from_pem(
        bundle.cert_pem.as_bytes(),
        bundle.key_pem.as_bytes(),
        "tls.crt/tls.key",
    )?;
    let cas = rustls_pemfile::certs(&mut bundle.ca_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::Ca(e.to_string()))?;
    if cas.is_empty() {
        return Err(CertError::Ca("no CERTIFICATE block".into()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for ca in &cas {
        roots
            .add(ca.clone())
            .map_err(|e| CertError::Ca(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| CertError::Ca(e.to_string()))?;
    let name = dns_names(namespace).remove(0);
    let server_name = ServerName::try_from(name.clone()).map_err(|e| CertError::Untrusted {
        name: name.clone(),
        reason: e.to_string(),
    })?;
    let at = UnixTime::since_unix_epoch(Duration::from_secs(now.max(0) as u64));
    verifier
        .verify_server_cert(&key.cert[0], &key.cert[1..], &server_name, &[], at)
        .map_err(|e| CertError::Untrusted {
            name: name.clone(),
            reason: e.to_string(),
        })?;
    // The earliest expiry among the serving certificate and the CAs.
    let mut expires = not_after(&key.cert[0], "tls.crt")?;
    for ca in &cas {
        expires = expires.min(not_after(ca, "ca.crt")?);
    }
    let left = expires - now;
    if left < RENEW_BEFORE.as_secs() as i64 {
        return Err(CertError::Expiring {
            days_left: left.div_euclid(86_400),
            renew_days: RENEW_BEFORE.as_secs() / 86_400,
        });
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn generated_bundle_checks_and_survives_the_secret_round_trip() {
        let b = generate("mesh", NOW).unwrap();
        check(&b, "mesh", NOW).unwrap();
        let back = Bundle::from_secret(&b.secret("mesh")).unwrap();
        assert_eq!(back, b);
        // Another namespace's Service name is not in the certificate.
        let err = check(&b, "other", NOW).unwrap_err();
        assert!(matches!(err, CertError::Untrusted { .. }), "{err}");
    }

    #[test]
    fn expiring_or_mismatched_bundles_are_rejected() {
        let b = generate("mesh", NOW).unwrap();
        let late = NOW + (VALIDITY - RENEW_BEFORE).as_secs() as i64 + 86_400;
        let err = check(&b, "mesh", late).unwrap_err();
        assert!(
            matches!(err, CertError::Expiring { days_left: 29, .. }),
            "{err}"
        );
        // After expiry the chain check itself fails.
        let err = check(&b, "mesh", NOW + VALIDITY.as_secs() as i64 + 10).unwrap_err();
        assert!(matches!(err, CertError::Untrusted { .. }), "{err}");
        // A CA that did not sign the certificate.
        let other = generate("mesh", NOW).unwrap();
        let mixed = Bundle {
            ca_pem: other.ca_pem.clone(),
            ..b.clone()
        };
        assert!(matches!(
            check(&mixed, "mesh", NOW),
            Err(CertError::Untrusted { .. })
        ));
        // A key that does not match the certificate.
        let mixed = Bundle {
            key_pem: other.key_pem,
            ..b
        };
        assert!(matches!(
            check(&mixed, "mesh", NOW),
            Err(CertError::Pair(_))
        ));
    }

    #[test]
    fn secret_without_ca_or_with_garbage_is_named() {
        let mut s = generate("mesh", NOW).unwrap().secret("mesh");
        s["data"].as_object_mut().unwrap().remove("ca.crt");
        let err = Bundle::from_secret(&s).unwrap_err();
        assert_eq!(err.to_string(), r#"no data key "ca.crt""#);
        s["data"]["ca.crt"] = json!("%%%");
        let err = Bundle::from_secret(&s).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(r#"data key "ca.crt": not base64"#),
            "{err}"
        );
    }
}
