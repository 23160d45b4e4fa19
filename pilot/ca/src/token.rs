//! Local-mesh credentials: a compact token signed with HMAC-SHA256.
//!
//! In the local mesh there is no API server to run a TokenReview, so the
//! runner mints one token per pod with a key only it and pilot hold
//! (`--local-token-key FILE`) and mounts it where Kubernetes would project a
//! service-account token (`/var/run/secrets/tokens/istio-token`). The token
//! names the pod, its namespace and service account, and an expiry:
//!
//! ```text
//!   rudder-v1.<base64url(JSON {pod, namespace, serviceAccount, exp})>.<base64url(HMAC-SHA256(key, "rudder-v1." + payload))>
//! ```
//!
//! The MAC covers the version and the payload, so neither can be changed,
//! and it is checked in constant time (`ring::hmac::verify`).

use std::{path::Path, time::Duration};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::auth::{AuthError, Authenticator, Caller};

const PREFIX: &str = "rudder-v1.";
/// Shortest key accepted (bytes): HMAC-SHA256 wants at least 256 bits.
pub const MIN_KEY_LEN: usize = 32;

/// What a local token asserts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalClaims {
    /// Pod name.
    pub pod: String,
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

/// Why a key file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Unreadable.
    #[error("--local-token-key {file}: {reason}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// Too short.
    #[error("--local-token-key {file}: the key has {len} bytes, at least {MIN_KEY_LEN} are required (e.g. head -c 32 /dev/urandom | base64 > FILE)")]
    TooShort {
        /// The file.
        file: String,
        /// Its length after trimming.
        len: usize,
    },
}

/// Reads a key file: its bytes with surrounding whitespace trimmed (so a
/// base64 line written by a shell works as-is).
pub fn read_key(file: &Path) -> Result<Vec<u8>, KeyError> {
    let name = file.display().to_string();
    let data = std::fs::read(file).map_err(|e| KeyError::Read {
        file: name.clone(),
        reason: e.to_string(),
    })?;
    let key = data.trim_ascii().to_vec();
    if key.len() < MIN_KEY_LEN {
        return Err(KeyError::TooShort {
            file: name,
            len: key.len(),
        });
    }
    Ok(key)
}

/// Mints a token for a pod, valid for `ttl` from now. The local mesh runner
/// calls this once per pod.
pub fn sign_local_token(
    key: &[u8],
    pod: &str,
    namespace: &str,
    service_account: &str,
    ttl: Duration,
) -> String {
    let claims = LocalClaims {
        pod: pod.to_string(),
        namespace: namespace.to_string(),
        service_account: service_account.to_string(),
        exp: crate::unix_now() + ttl.as_secs() as i64,
    };
    sign_claims(key, &claims)
}

/// Mints a token for exactly these claims.
pub fn sign_claims(key: &[u8], claims: &LocalClaims) -> String {
    // Serialising a struct of strings and an integer cannot fail.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let signed = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(json));
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Checks local tokens.
pub struct LocalTokenAuthenticator {
    key: hmac::Key,
}

impl LocalTokenAuthenticator {
    /// An authenticator over `key` (see [`read_key`]).
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// Verifies `token` at `now` (Unix seconds) and returns its claims.
    pub fn verify(&self, token: &str, now: i64) -> Result<LocalClaims, AuthError> {
        let bad = |why: &str| AuthError::Invalid(format!("local token: {why}"));
        let (signed, tag) = token
            .rsplit_once('.')
            .ok_or_else(|| bad("not of the form rudder-v1.<payload>.<mac>"))?;
        let payload = signed
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("unknown format (expected rudder-v1.)"))?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| bad("the MAC is not base64url"))?;
        hmac::verify(&self.key, signed.as_bytes(), &tag)
            .map_err(|_| bad("signature does not verify (tampered, or signed with another key)"))?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| bad("the payload is not base64url"))?;
        let claims: LocalClaims =
            serde_json::from_slice(&json).map_err(|e| bad(&format!("payload: {e}")))?;
        if claims.exp < now {
            return Err(AuthError::Expired { at: claims.exp });
        }
        if claims.namespace.is_empty() || claims.service_account.is_empty() {
            return Err(bad("namespace and serviceAccount must not be empty"));
        }
        Ok(claims)
    }
}

#[tonic::async_trait]
impl Authenticator for LocalTokenAuthenticator {
    fn name(&self) -> &'static str {
        "local-token"
    }

    async fn authenticate(&self, token: &str) -> Result<Caller, AuthError> {
        let c = self.verify(token, crate::unix_now())?;
        Ok(Caller {
            namespace: c.namespace,
            service_account: c.service_account,
            pod: Some(c.pod),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trips() {
        let t = sign_local_token(
            KEY,
            "reviews-1",
            "default",
            "reviews",
            Duration::from_secs(60),
        );
        let c = LocalTokenAuthenticator::new(KEY)
            .verify(&t, crate::unix_now())
            .unwrap();
        assert_eq!(
            (
                c.pod.as_str(),
                c.namespace.as_str(),
                c.service_account.as_str()
            ),
            ("reviews-1", "default", "reviews")
        );
    }

    #[test]
    fn tampered_foreign_and_expired_tokens_are_refused() {
        let auth = LocalTokenAuthenticator::new(KEY);
        let now = crate::unix_now();
        let t = sign_local_token(KEY, "p", "default", "reviews", Duration::from_secs(60));
        // Change the claimed account but keep the MAC.
        let (_, rest) = t.split_at(PREFIX.len());
        let (_, mac) = rest.split_once('.').unwrap();
        let forged_claims = LocalClaims {
            pod: "p".into(),
            namespace: "default".into(),
            service_account: "admin".into(),
            exp: now + 60,
        };
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).unwrap());
        let forged = format!("{PREFIX}{forged_payload}.{mac}");
        let err = auth.verify(&forged, now).unwrap_err().to_string();
        assert!(err.contains("does not verify"), "{err}");

        let other = sign_local_token(
            b"another key another key another key",
            "p",
            "default",
            "reviews",
            Duration::from_secs(60),
        );
        assert!(auth
            .verify(&other, now)
            .unwrap_err()
            .to_string()
            .contains("does not verify"));

        let old = sign_claims(
            KEY,
            &LocalClaims {
                exp: now - 5,
                ..forged_claims
            },
        );
        assert!(matches!(
            auth.verify(&old, now),
            Err(AuthError::Expired { .. })
        ));

        for junk in ["", "abc", "rudder-v1.x", "v2.a.b"] {
            assert!(
                matches!(auth.verify(junk, now), Err(AuthError::Invalid(_))),
                "{junk}"
            );
        }
    }

    #[test]
    fn short_key_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("key");
        std::fs::write(&f, "short\n").unwrap();
        let err = read_key(&f).unwrap_err().to_string();
        assert!(err.contains("at least 32"), "{err}");
        std::fs::write(&f, format!("{}\n", String::from_utf8_lossy(KEY))).unwrap();
        assert_eq!(read_key(&f).unwrap(), KEY);
    }
}
