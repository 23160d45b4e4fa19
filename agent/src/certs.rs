//! Checking workload certificates before Envoy sees them.
//!
//! A hot restart with a broken certificate would replace a serving Envoy with
//! one that rejects every TLS handshake (or refuses to start), so the agent
//! checks the three files of `--cert-dir` first and only restarts for a set
//! that is complete, parseable, current, signed by the root, and whose key
//! belongs to the leaf certificate. Anything else is an error naming the file
//! and the reason; the running Envoy keeps its old certificates.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use x509_parser::{certificate::X509Certificate, pem::Pem};

use crate::bootstrap::{CERT_CHAIN_FILE, KEY_FILE, ROOT_CERT_FILE};

/// Why a certificate set was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertError {
    /// Some but not all of the three files exist.
    #[error("{file}: missing (the certificate directory must hold cert-chain.pem, key.pem and root-cert.pem, or none of them)")]
    Missing {
        /// The missing file.
        file: PathBuf,
    },
    /// A file could not be read.
    #[error("{file}: cannot read: {reason}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// A file's content is wrong.
    #[error("{file}: {reason}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A checked certificate set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertBundle {
    /// SHA-256 over the three files: a change means a restart is due.
    pub fingerprint: [u8; 32],
    /// The leaf certificate's `notAfter`, seconds since the Unix epoch.
    pub not_after: i64,
    /// The leaf certificate's serial number (hex, colon-separated, as Envoy's
    /// `/certs` shows it without colons).
    pub serial: String,
    /// The leaf certificate's subject.
    pub subject: String,
}

/// Loads and checks `dir`'s certificates. `Ok(None)` when none of the files
/// exist (plaintext-only pod); `now` is seconds since the Unix epoch.
pub fn load(dir: &Path, now: i64) -> Result<Option<CertBundle>, CertError> {
    let paths = [
        dir.join(CERT_CHAIN_FILE),
        dir.join(KEY_FILE),
        dir.join(ROOT_CERT_FILE),
    ];
    let present: Vec<bool> = paths.iter().map(|p| p.exists()).collect();
    if present.iter().all(|p| !p) {
        return Ok(None);
    }
    if let Some(i) = present.iter().position(|p| !p) {
        return Err(CertError::Missing {
            file: paths[i].clone(),
        });
    }
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| CertError::Read {
            file: p.clone(),
            reason: e.to_string(),
        })
    };
    let (chain, key, root) = (read(&paths[0])?, read(&paths[1])?, read(&paths[2])?);
    let bundle = check(&paths, &chain, &key, &root, now)?;
    Ok(Some(bundle))
}

/// The checks, on file contents; `paths` are for messages only.
fn check(
    paths: &[PathBuf; 3],
    chain: &[u8],
    key: &[u8],
    root: &[u8],
    now: i64,
) -> Result<CertBundle, CertError> {
    let invalid = |i: usize, reason: String| CertError::Invalid {
        file: paths[i].clone(),
        reason,
    };
    let chain_pems = pems(chain, "CERTIFICATE").map_err(|r| invalid(0, r))?;
    let root_pems = pems(root, "CERTIFICATE").map_err(|r| invalid(2, r))?;
    let chain_certs = parse_all(&chain_pems).map_err(|r| invalid(0, r))?;
    let roots = parse_all(&root_pems).map_err(|r| invalid(2, r))?;
    let leaf = &chain_certs[0];

    for (i, c) in chain_certs.iter().enumerate() {
        current(c, now)
            .map_err(|r| invalid(0, format!("certificate #{} ({}): {r}", i + 1, c.subject())))?;
    }
    for pair in chain_certs.windows(2) {
        pair[0]
            .verify_signature(Some(pair[1].public_key()))
            .map_err(|e| {
                invalid(
                    0,
                    format!(
                        "certificate {:?} is not signed by the next one in the chain ({}): {e}",
                        pair[0].subject().to_string(),
                        pair[1].subject()
                    ),
                )
            })?;
    }
    let last = &chain_certs[chain_certs.len() - 1];
    // A chain that ends in the root itself verifies too: a root is self-signed.
    let anchor = roots
        .iter()
        .find(|r| last.verify_signature(Some(r.public_key())).is_ok());
    let Some(anchor) = anchor else {
        return Err(invalid(
            0,
            format!(
                "the chain (issuer {:?}) is not signed by any certificate in {}",
                last.issuer().to_string(),
                ROOT_CERT_FILE
            ),
        ));
    };
    current(anchor, now).map_err(|r| invalid(2, format!("root {}: {r}", anchor.subject())))?;

    check_key(key, leaf).map_err(|r| invalid(1, r))?;

    let mut h = Sha256::new();
    for part in [chain, key, root] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    Ok(CertBundle {
        fingerprint: h.finalize().into(),
        not_after: leaf.validity().not_after.timestamp(),
        serial: leaf.raw_serial_as_string(),
        subject: leaf.subject().to_string(),
    })
}

/// The PEM blocks of a file, all with `label`; at least one.
fn pems(data: &[u8], label: &str) -> Result<Vec<Pem>, String> {
    let mut out = Vec::new();
    for p in Pem::iter_from_buffer(data) {
        let p = p.map_err(|e| format!("not valid PEM: {e}"))?;
        if p.label != label {
            return Err(format!(
                "found a PEM block {:?} where {label:?} was expected",
                p.label
            ));
        }
        out.push(p);
    }
    if out.is_empty() {
        return Err(format!("no PEM {label:?} block found"));
    }
    Ok(out)
}

fn parse_all(pems: &[Pem]) -> Result<Vec<X509Certificate<'_>>, String> {
    pems.iter()
        .enumerate()
        .map(|(i, p)| {
            p.parse_x509()
                .map_err(|e| format!("certificate #{} is not valid X.509: {e}", i + 1))
        })
        .collect()
}

fn current(c: &X509Certificate<'_>, now: i64) -> Result<(), String> {
    let v = c.validity();
    if now < v.not_before.timestamp() {
        return Err(format!("not valid before {}", v.not_before));
    }
    if now > v.not_after.timestamp() {
        return Err(format!("expired at {}", v.not_after));
    }
    Ok(())
}

/// The key must be the leaf's: compare the public key derived from it with the
/// certificate's. PKCS#8 (`BEGIN PRIVATE KEY`) covers ECDSA, Ed25519 and RSA.
fn check_key(key: &[u8], leaf: &X509Certificate<'_>) -> Result<(), String> {
    let text = std::str::from_utf8(key).map_err(|_| "not valid PEM text".to_string())?;
    let block = Pem::iter_from_buffer(key)
        .next()
        .ok_or_else(|| "no PEM private key block found".to_string())?
        .map_err(|e| format!("not valid PEM: {e}"))?;
    match block.label.as_str() {
        "PRIVATE KEY" => {}
        "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
            return Err(format!(
                "a {:?} key is not supported: convert it to PKCS#8 (openssl pkcs8 -topk8 -nocrypt)",
                block.label
            ))
        }
        other => {
            return Err(format!(
                "found a PEM block {other:?}, expected \"PRIVATE KEY\""
            ))
        }
    }
    let kp =
        rcgen::KeyPair::from_pem(text).map_err(|e| format!("not a usable private key: {e}"))?;
    if kp.public_key_raw() != leaf.public_key().subject_public_key.data.as_ref() {
        return Err(format!(
            "the private key does not match the certificate {:?}",
            leaf.subject().to_string()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    struct Ca {
        pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let pem = p.self_signed(&key).unwrap().pem();
        Ca {
            pem,
            issuer: Issuer::new(p, key),
        }
    }

    fn leaf(ca: &Ca, expired: bool) -> (String, String) {
        let mut p =
            CertificateParams::new(vec!["spiffe://cluster.local/ns/default/sa/a".to_string()])
                .unwrap();
        if expired {
            p.not_before = rcgen::date_time_ymd(2001, 1, 1);
            p.not_after = rcgen::date_time_ymd(2002, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        (
            p.signed_by(&key, &ca.issuer).unwrap().pem(),
            key.serialize_pem(),
        )
    }

    fn run(chain: &str, key: &str, root: &str) -> Result<CertBundle, CertError> {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(CERT_CHAIN_FILE), chain).unwrap();
        std::fs::write(d.path().join(KEY_FILE), key).unwrap();
        std::fs::write(d.path().join(ROOT_CERT_FILE), root).unwrap();
        load(d.path(), now()).map(Option::unwrap)
    }

    #[test]
    fn accepts_a_valid_set() {
        let ca = ca("root");
        let (chain, key) = leaf(&ca, false);
        let b = run(&chain, &key, &ca.pem).unwrap();
        assert!(b.not_after > now());
        assert!(!b.serial.is_empty());
    }

    #[test]
    fn rejects_mismatched_key() {
        let ca = ca("root");
        let (chain, _) = leaf(&ca, false);
        let (_, other_key) = leaf(&ca, false);
        let err = run(&chain, &other_key, &ca.pem).unwrap_err().to_string();
        assert!(
            err.contains("key.pem") && err.contains("does not match"),
            "{err}"
        );
    }

    #[test]
    fn rejects_expired_chain() {
        let ca = ca("root");
        let (chain, key) = leaf(&ca, true);
        let err = run(&chain, &key, &ca.pem).unwrap_err().to_string();
        assert!(
            err.contains("cert-chain.pem") && err.contains("expired"),
            "{err}"
        );
    }

    #[test]
    fn rejects_foreign_root() {
        let (ca, other) = (ca("root"), ca("other"));
        let (chain, key) = leaf(&ca, false);
        let err = run(&chain, &key, &other.pem).unwrap_err().to_string();
        assert!(
            err.contains("cert-chain.pem")
                && err.contains("not signed by any certificate in root-cert.pem"),
            "{err}"
        );
    }

    #[test]
    fn rejects_garbage_and_partial_sets() {
        let ca = ca("root");
        let (chain, key) = leaf(&ca, false);
        let err = run("garbage", &key, &ca.pem).unwrap_err().to_string();
        assert!(
            err.contains("cert-chain.pem") && err.contains("no PEM"),
            "{err}"
        );
        let err = run(
            &chain,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            &ca.pem,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("key.pem"), "{err}");
        let err = run(&chain, &key, &chain).unwrap_err().to_string();
        assert!(err.contains("not signed"), "{err}");
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load(d.path(), now()), Ok(None));
        std::fs::write(d.path().join(CERT_CHAIN_FILE), &chain).unwrap();
        let err = load(d.path(), now()).unwrap_err().to_string();
        assert!(err.contains("key.pem: missing"), "{err}");
    }
}
