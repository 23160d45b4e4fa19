//! TLS credentials from Kubernetes Secrets (a Gateway's or a
//! DestinationRule's `credentialName`), served by pilot over SDS on the
//! proxy's ADS stream, named as Istio names them.
//!
//! ```text
//!  credentialName: NAME      ─► SDS kubernetes://NAME         (certificate chain + key)
//!                            ─► SDS kubernetes://NAME-cacert  (the CA, for MUTUAL / verification)
//!  proxy in namespace N reads Secret N/NAME, never another namespace's
//! ```

use std::fmt;

/// Istio's prefix of SDS resources read from Kubernetes Secrets.
pub const KUBERNETES_PREFIX: &str = "kubernetes://";
/// Istio's suffix of the CA resource of a credential (`NAME-cacert`).
pub const CACERT_SUFFIX: &str = "-cacert";

/// The certificate material of one Secret, checked when it was read (the
/// PEM parses, the key is there).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TlsSecret {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
    /// PEM certificate chain (`tls.crt` or `cert`); empty for a CA-only Secret.
    pub cert_chain: String,
    /// PEM private key (`tls.key` or `key`); empty for a CA-only Secret.
    pub private_key: String,
    /// PEM CA bundle (`ca.crt` or `cacert`), when the Secret has one.
    pub ca: Option<String>,
}

impl TlsSecret {
    /// `namespace/name`, the key of [`crate::Snapshot::secrets`].
    pub fn key(&self) -> String {
        secret_key(&self.namespace, &self.name)
    }

    /// Whether the Secret carries a certificate and key (else only a CA).
    pub fn has_certificate(&self) -> bool {
        !self.cert_chain.is_empty() && !self.private_key.is_empty()
    }
}

/// The private key never appears in logs or debug output.
impl fmt::Debug for TlsSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSecret")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("cert_chain_bytes", &self.cert_chain.len())
            .field("private_key", &"<redacted>")
            .field("ca", &self.ca.as_ref().map(String::len))
            .finish()
    }
}

/// `namespace/name`.
pub fn secret_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// The SDS resource name of a credential's certificate and key:
/// `kubernetes://NAME`.
pub fn credential_resource(credential_name: &str) -> String {
    format!("{KUBERNETES_PREFIX}{credential_name}")
}

/// The SDS resource name of a credential's CA: `kubernetes://NAME-cacert`.
pub fn credential_ca_resource(credential_name: &str) -> String {
    format!("{KUBERNETES_PREFIX}{credential_name}{CACERT_SUFFIX}")
}

/// A `credentialName` as written: `NAME`, or `NAMESPACE/NAME` (Istio's form
/// for another namespace's Secret, which a proxy may read only when it runs
/// in that namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialRef {
    /// The namespace written, if any.
    pub namespace: Option<String>,
    /// The Secret's name.
    pub name: String,
}

impl CredentialRef {
    /// Parses `NAME` or `NAMESPACE/NAME`.
    pub fn parse(s: &str) -> Self {
        match s.split_once('/') {
            Some((ns, name)) => Self {
                namespace: Some(ns.to_string()),
                name: name.to_string(),
            },
            None => Self {
                namespace: None,
                name: s.to_string(),
            },
        }
    }

    /// The namespace a proxy in `proxy_namespace` reads it from, or `None`
    /// when it names another namespace (a proxy reads only Secrets of its
    /// own namespace, as Istio's SDS authorizes).
    pub fn readable_from<'a>(&self, proxy_namespace: &'a str) -> Option<&'a str> {
        match &self.namespace {
            Some(ns) if ns != proxy_namespace => None,
            _ => Some(proxy_namespace),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_istios() {
        assert_eq!(credential_resource("bookinfo"), "kubernetes://bookinfo");
        assert_eq!(
            credential_ca_resource("bookinfo"),
            "kubernetes://bookinfo-cacert"
        );
    }

    #[test]
    fn a_proxy_reads_only_its_own_namespace() {
        let plain = CredentialRef::parse("cred");
        assert_eq!(plain.readable_from("app"), Some("app"));
        let own = CredentialRef::parse("app/cred");
        assert_eq!(own.readable_from("app"), Some("app"));
        assert_eq!(own.name, "cred");
        assert_eq!(
            CredentialRef::parse("other/cred").readable_from("app"),
            None
        );
    }

    #[test]
    fn debug_redacts_the_key() {
        let s = TlsSecret {
            namespace: "n".into(),
            name: "s".into(),
            cert_chain: "CERT".into(),
            private_key: "SECRET-KEY-MATERIAL".into(),
            ca: None,
        };
        assert!(!format!("{s:?}").contains("SECRET-KEY-MATERIAL"));
    }
}
