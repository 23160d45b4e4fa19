//! Kubernetes Secret → model [`TlsSecret`]: the TLS credentials a Gateway's
//! or DestinationRule's `credentialName` names.
//!
//! Keys, as Istio reads them: `tls.crt`, `tls.key`, `ca.crt` (type
//! `kubernetes.io/tls` or generic), or `cert`, `key`, `cacert` (generic).
//! `stringData` wins over `data` (base64). A Secret with none of these keys
//! is not a credential and is left alone; one with a certificate but no key
//! (or the other way round), or PEM that does not parse, is an error naming
//! the key.

use base64::Engine;
use rudder_config::kube;
use rudder_model::TlsSecret;

use crate::{check::Checker, object::ObjectKey};

/// The type Kubernetes gives TLS Secrets.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// (certificate, key, CA) key names, in Istio's order of preference.
const KEYS: [(&str, &str, &str); 2] = [("tls.crt", "tls.key", "ca.crt"), ("cert", "key", "cacert")];

/// Compiles a Secret; `None` when it is not a TLS credential or is invalid
/// (errors recorded).
pub fn secret(s: &kube::Secret, key: &ObjectKey, ck: &mut Checker) -> Option<TlsSecret> {
    let is_tls_type = s.type_.as_deref() == Some(TLS_SECRET_TYPE);
    let has = |k: &str| s.string_data.contains_key(k) || s.data.contains_key(k);
    let any_key = KEYS.iter().any(|(c, k, a)| has(c) || has(k) || has(a));
    if !is_tls_type && !any_key {
        return None;
    }
    let (cert_k, key_k, ca_k) = KEYS
        .iter()
        .copied()
        .find(|(c, k, a)| has(c) || has(k) || has(a))
        .unwrap_or(KEYS[0]);
    let before = ck.error_count();
    let cert = value(s, cert_k, ck);
    let private_key = value(s, key_k, ck);
    // The CA may sit under either spelling.
    let ca = value(s, ca_k, ck).or_else(|| {
        KEYS.iter()
            .map(|(_, _, a)| *a)
            .find(|a| *a != ca_k && has(a))
            .and_then(|a| value(s, a, ck))
    });
    match (&cert, &private_key) {
        (Some(_), None) => ck.error(
            field(s, key_k),
            format!("the Secret has {cert_k} but no {key_k}: a credential needs both"),
        ),
        (None, Some(_)) => ck.error(
            field(s, cert_k),
            format!("the Secret has {key_k} but no {cert_k}: a credential needs both"),
        ),
        (None, None) if ca.is_none() => ck.error(
            field(s, cert_k),
            format!("required: a TLS Secret holds {cert_k} and {key_k} (and optionally {ca_k})"),
        ),
        _ => {}
    }
    if let Some(c) = &cert {
        check_certificates(c, &field(s, cert_k), ck);
    }
    if let Some(k) = &private_key {
        check_key(k, &field(s, key_k), ck);
    }
    if let Some(a) = &ca {
        check_certificates(a, &field(s, ca_k), ck);
    }
    if ck.error_count() > before {
        return None;
    }
    Some(TlsSecret {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        cert_chain: cert.unwrap_or_default(),
        private_key: private_key.unwrap_or_default(),
        ca,
    })
}

/// The field path of a key (`stringData` when given there, else `data`).
fn field(s: &kube::Secret, k: &str) -> String {
    if s.string_data.contains_key(k) {
        format!("stringData[{k:?}]")
    } else {
        format!("data[{k:?}]")
    }
}

/// A key's text: `stringData` as is, `data` decoded; errors name the key.
fn value(s: &kube::Secret, k: &str, ck: &mut Checker) -> Option<String> {
    if let Some(v) = s.string_data.get(k) {
        return Some(v.clone());
    }
    let raw = s.data.get(k)?;
    let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    match base64::engine::general_purpose::STANDARD.decode(compact) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(_) => {
                ck.error(field(s, k), "not PEM text (the decoded value is not UTF-8)");
                None
            }
        },
        Err(e) => {
            ck.error(field(s, k), format!("invalid base64: {e}"));
            None
        }
    }
}

/// At least one certificate, and every PEM block a certificate that parses.
fn check_certificates(pem: &str, at: &str, ck: &mut Checker) {
    let mut n = 0;
    for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        match block {
            Ok(p) if p.label == "CERTIFICATE" => {
                if let Err(e) = p.parse_x509() {
                    ck.error(at, format!("certificate {n} does not parse: {e}"));
                    return;
                }
                n += 1;
            }
            Ok(p) => {
                ck.error(
                    at,
                    format!("expected CERTIFICATE PEM blocks, found {:?}", p.label),
                );
                return;
            }
            Err(e) => {
                ck.error(at, format!("PEM does not parse: {e}"));
                return;
            }
        }
    }
    if n == 0 {
        ck.error(at, "no PEM certificate found");
    }
}

/// One private key PEM block whose body decodes.
fn check_key(pem: &str, at: &str, ck: &mut Checker) {
    let mut blocks = x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes());
    match blocks.next() {
        Some(Ok(p)) if p.label.ends_with("PRIVATE KEY") && !p.contents.is_empty() => {}
        Some(Ok(p)) => ck.error(
            at,
            format!("expected a PRIVATE KEY PEM block, found {:?}", p.label),
        ),
        Some(Err(e)) => ck.error(at, format!("PEM does not parse: {e}")),
        None => ck.error(at, "no PEM private key found"),
    }
}
