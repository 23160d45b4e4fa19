//! SDS from pilot: the TLS credentials of Kubernetes Secrets as Envoy
//! `Secret` resources on the proxy's ADS stream, named as Istio names them.
//!
//! ```text
//!  Secret N/NAME (cert + key) ─► kubernetes://NAME         tls_certificate (inline PEM)
//!  Secret N/NAME (ca)         ─► kubernetes://NAME-cacert  validation_context.trusted_ca
//!  (also kubernetes://N/NAME and kubernetes://N/NAME-cacert, the namespace-qualified form)
//!  a proxy in namespace N gets only namespace N's Secrets
//! ```
//!
//! A CA-only Secret `NAME-cacert` (Istio's separate CA Secret) serves
//! `kubernetes://NAME-cacert` unless Secret `NAME` carries a CA itself.

use std::{collections::BTreeMap, sync::Arc};

use envoy_types::pb::envoy::{
    config::core::v3::{data_source, DataSource},
    extensions::transport_sockets::tls::v3::{
        secret, CertificateValidationContext, Secret, TlsCertificate,
    },
};
use rudder_model::{
    secret::{credential_resource, CACERT_SUFFIX},
    Snapshot, TlsSecret,
};

use crate::{common::resource, version::Version, Resource};

fn inline(pem: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::InlineString(pem.to_string())),
        ..Default::default()
    }
}

fn certificate(name: &str, s: &TlsSecret) -> Arc<Resource> {
    let body = Secret {
        name: name.to_string(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline(&s.cert_chain)),
            private_key: Some(inline(&s.private_key)),
            ..Default::default()
        })),
    };
    let v = Version::new("sds-certificate")
        .with(name)
        .with(&s.cert_chain)
        .with(&s.private_key);
    resource(v, &body)
}

fn validation(name: &str, ca: &str) -> Arc<Resource> {
    let body = Secret {
        name: name.to_string(),
        r#type: Some(secret::Type::ValidationContext(
            CertificateValidationContext {
                trusted_ca: Some(inline(ca)),
                ..Default::default()
            },
        )),
    };
    resource(Version::new("sds-ca").with(name).with(ca), &body)
}

/// The SDS resources a proxy in `namespace` may read: every credential of
/// that namespace under its Istio names (Envoy subscribes to the ones its
/// TLS contexts name; the ADS server answers only those).
pub(crate) fn namespace_secrets(snapshot: &Snapshot, namespace: &str) -> crate::resources::Content {
    let mut out = crate::resources::Content::new();
    let prefix = format!("{namespace}/");
    let own = snapshot
        .secrets
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(_, s)| s);
    let mut cas: BTreeMap<String, &str> = BTreeMap::new();
    let mut certs = Vec::new();
    for s in own {
        if s.has_certificate() {
            certs.push(s);
            if let Some(ca) = &s.ca {
                cas.insert(format!("{}{CACERT_SUFFIX}", s.name), ca);
            }
        } else if let Some(ca) = &s.ca {
            // A CA-only Secret (often Istio's `NAME-cacert`): under its own
            // name, unless Secret NAME (sorted before it) brought a CA.
            cas.entry(s.name.clone()).or_insert(ca);
        }
    }
    for s in certs {
        for name in [s.name.clone(), format!("{namespace}/{}", s.name)] {
            let n = credential_resource(&name);
            out.insert(n.clone(), certificate(&n, s));
        }
    }
    for (name, ca) in cas {
        // `name` is `NAME-cacert` or a CA-only Secret's name: both are the
        // resource `kubernetes://<name>`.
        for n in [name.clone(), format!("{namespace}/{name}")] {
            let n = credential_resource(&n);
            out.entry(n.clone()).or_insert_with(|| validation(&n, ca));
        }
    }
    out
}
