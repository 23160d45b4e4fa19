//! Getting a workload certificate from pilot's CA.
//!
//! ```text
//!  key (rcgen, stays here) ─► CSR{URI SAN = our SPIFFE id} ─┐
//!  --token-file (read each time: kubelet rotates it) ───────┼─► CreateCertificate over TLS (:15012,
//!  --ca-root (the mesh root; pilot is verified with it) ────┘    pilot verified with --ca-root)
//!                                         chain ◄──┘ verified: signed by --ca-root, SAN is ours
//! ```
//!
//! The key never leaves the pod: only the CSR travels. The answer is checked
//! before anything uses it, so a CA with another root (a mis-mounted root, a
//! rebuilt mesh) is reported as such instead of breaking every handshake.

use std::{path::PathBuf, time::Duration};

use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};
use rudder_model::identity::SpiffeId;
use x509_parser::{certificate::X509Certificate, pem::Pem};

/// Why a certificate could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A local file is unreadable.
    #[error("{file}: {reason}")]
    File {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// The CA could not be reached.
    #[error(transparent)]
    Connect(#[from] rudder_ca::client::ClientError),
    /// The CA refused (e.g. the token was refused).
    #[error("the CA at {addr} refused: {code:?}: {message}")]
    Refused {
        /// The CA address.
        addr: String,
        /// gRPC status code.
        code: tonic::Code,
        /// Its message.
        message: String,
    },
    /// The answer does not verify against `--ca-root`, or is not for us.
    #[error("the certificate from {addr} is unusable: {reason}")]
    BadChain {
        /// The CA address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Key or CSR generation failed.
    #[error("generating the key and CSR: {0}")]
    Generate(String),
}

impl IdentityError {
    /// Retrying cannot help until an operator acts (logged as an error, not a warning).
    pub fn needs_operator(&self) -> bool {
        matches!(
            self,
            IdentityError::File { .. }
                | IdentityError::BadChain { .. }
                | IdentityError::Refused {
                    code: tonic::Code::Unauthenticated | tonic::Code::PermissionDenied,
                    ..
                }
        )
    }
}

/// Where and how to ask.
#[derive(Clone, Debug)]
pub struct CaClientConfig {
    /// pilot's certificate service, `HOST:PORT` (15012).
    pub address: String,
    /// The mesh root (PEM): verifies pilot and the issued chain.
    pub root_file: PathBuf,
    /// The credential, sent as `authorization: Bearer`.
    pub token_file: PathBuf,
    /// Our identity (from the pod's namespace and service account).
    pub id: SpiffeId,
    /// Lifetime asked for (the CA may cap it); zero = the CA's default.
    pub requested_ttl: Duration,
}

/// A checked certificate set, ready for files or SDS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// Leaf (and intermediates), PEM.
    pub chain_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The mesh root, PEM.
    pub root_pem: String,
    /// When the leaf's life starts for renewal purposes, Unix seconds: the
    /// later of its `notBefore` and the moment it arrived (CAs backdate
    /// `notBefore` for clock skew, which must not shorten the renewal time).
    pub not_before: i64,
    /// Leaf validity, Unix seconds.
    pub not_after: i64,
    /// Leaf serial (hex, as Envoy's `/certs` shows it).
    pub serial: String,
}

/// A fresh key and a CSR for `id`: `(key_pem, csr_pem)`.
pub fn key_and_csr(id: &SpiffeId) -> Result<(String, String), IdentityError> {
    let gen = |e: rcgen::Error| IdentityError::Generate(e.to_string());
    let key = KeyPair::generate().map_err(gen)?;
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.subject_alt_names = vec![SanType::URI(id.to_string().try_into().map_err(gen)?)];
    let csr = p.serialize_request(&key).map_err(gen)?.pem().map_err(gen)?;
    Ok((key.serialize_pem(), csr))
}

fn read(file: &PathBuf) -> Result<String, IdentityError> {
    std::fs::read_to_string(file).map_err(|e| IdentityError::File {
        file: file.clone(),
        reason: e.to_string(),
    })
}

/// Asks the CA for a certificate and checks the answer.
pub async fn fetch(cfg: &CaClientConfig) -> Result<Issued, IdentityError> {
    let root_pem = read(&cfg.root_file)?;
    let token = read(&cfg.token_file)?;
    if token.trim().is_empty() {
        return Err(IdentityError::File {
            file: cfg.token_file.clone(),
            reason: "the token file is empty".into(),
        });
    }
    let (key_pem, csr) = key_and_csr(&cfg.id)?;
    let channel = rudder_ca::client::connect(&cfg.address, &root_pem).await?;
    let chain = rudder_ca::client::create_certificate(channel, &token, &csr, cfg.requested_ttl)
        .await
        .map_err(|s| IdentityError::Refused {
            addr: cfg.address.clone(),
            code: s.code(),
            message: s.message().to_string(),
        })?;
    verify(&chain, &root_pem, &cfg.id, &key_pem)
        .map_err(|reason| IdentityError::BadChain {
            addr: cfg.address.clone(),
            reason,
        })
        .map(|(not_before, not_after, serial)| Issued {
            not_before: not_before.max(rudder_ca::unix_now()),
            // The root(s) travel in their own file/secret; the chain file
            // holds the leaf and the intermediates.
            chain_pem: without_roots(&chain, &root_pem),
            key_pem,
            root_pem,
            not_after,
            serial,
        })
}

/// The certificates of `chain` that are not in `root_pem`, PEM, in order.
pub fn without_roots(chain: &[String], root_pem: &str) -> String {
    let roots: Vec<Vec<u8>> = Pem::iter_from_buffer(root_pem.as_bytes())
        .filter_map(Result::ok)
        .map(|p| p.contents)
        .collect();
    let self_signed = |p: &Pem| {
        p.parse_x509()
            .map(|c| c.subject() == c.issuer() && c.verify_signature(None).is_ok())
            .unwrap_or(false)
    };
    chain
        .iter()
        .flat_map(|c| Pem::iter_from_buffer(c.as_bytes()).filter_map(Result::ok))
        .filter(|p| !roots.contains(&p.contents) && !self_signed(p))
        .map(|p| {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD.encode(&p.contents);
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(64)
                .map(|l| std::str::from_utf8(l).unwrap_or_default())
                .collect();
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                lines.join("\n")
            )
        })
        .collect()
}

/// The DER of the root in `root_pem` that the last certificate of
/// `chain_pem` (leaf + intermediates) is signed by.
pub fn anchor(chain_pem: &str, root_pem: &str) -> Option<Vec<u8>> {
    let top = Pem::iter_from_buffer(chain_pem.as_bytes())
        .filter_map(Result::ok)
        .last()?;
    let top = top.parse_x509().ok()?;
    Pem::iter_from_buffer(root_pem.as_bytes())
        .filter_map(Result::ok)
        .find(|r| {
            r.parse_x509()
                .map(|r| top.verify_signature(Some(r.public_key())).is_ok())
                .unwrap_or(false)
        })
        .map(|r| r.contents)
}

/// Checks a chain: the leaf is signed (through any intermediates) by a
/// certificate of `root_pem`, names exactly `id`, and holds our key.
/// Returns the leaf's `(not_before, not_after, serial)`.
pub fn verify(
    chain: &[String],
    root_pem: &str,
    id: &SpiffeId,
    key_pem: &str,
) -> Result<(i64, i64, String), String> {
    let chain_pems: Vec<Pem> = chain
        .iter()
        .flat_map(|c| Pem::iter_from_buffer(c.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the chain is not valid PEM: {e}"))?;
    let root_pems: Vec<Pem> = Pem::iter_from_buffer(root_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--ca-root is not valid PEM: {e}"))?;
    let certs: Vec<X509Certificate<'_>> = chain_pems
        .iter()
        .map(|p| p.parse_x509())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not X.509: {e}"))?;
    let roots: Vec<X509Certificate<'_>> = root_pems
        .iter()
        .map(|p| p.parse_x509())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--ca-root is not X.509: {e}"))?;
    let leaf = certs.first().ok_or("the CA returned an empty chain")?;
    // Istio's cert_chain: leaf, the CA's chain (intermediates, maybe the
    // root), the root bundle. Walk up from the leaf until a certificate is
    // signed by one of our roots; each step must be signed by the next.
    let mut anchored = false;
    for (i, c) in certs.iter().enumerate() {
        if roots
            .iter()
            .any(|r| c.verify_signature(Some(r.public_key())).is_ok())
        {
            anchored = true;
            break;
        }
        let Some(next) = certs.get(i + 1) else {
            break;
        };
        c.verify_signature(Some(next.public_key()))
            .map_err(|e| format!("the chain does not link up: {e}"))?;
    }
    if !anchored {
        let last = certs.last().unwrap_or(leaf);
        return Err(format!(
            "root mismatch: the chain (issuer {}) is not signed by the mesh root in --ca-root; pilot's CA and this pod disagree on the root",
            last.issuer()
        ));
    }
    let want = format!("URI({id})");
    let sans: Vec<String> = leaf
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .map(|g| g.to_string())
                .collect()
        })
        .unwrap_or_default();
    if sans != [want.clone()] {
        return Err(format!(
            "the certificate names {sans:?}, expected exactly [{want:?}]"
        ));
    }
    let kp = KeyPair::from_pem(key_pem).map_err(|e| e.to_string())?;
    if kp.public_key_raw() != leaf.public_key().subject_public_key.data.as_ref() {
        return Err("the certificate is not for the key this agent generated".into());
    }
    Ok((
        leaf.validity().not_before.timestamp(),
        leaf.validity().not_after.timestamp(),
        leaf.raw_serial_as_string().replace(':', ""),
    ))
}

/// When to renew: at half the certificate's life, minus a jitter of up to a
/// tenth of it (`jitter` in `[0, 1)`), so sidecars started together spread
/// their renewals. Never less than [`MIN_RENEW_INTERVAL`], so a CA handing
/// out nearly expired certificates cannot make the agent spin.
pub fn renew_in(not_before: i64, not_after: i64, now: i64, jitter: f64) -> Duration {
    let life = (not_after - not_before).max(0) as f64;
    let at = not_before as f64 + life / 2.0 - life / 10.0 * jitter.clamp(0.0, 1.0);
    Duration::from_secs_f64((at - now as f64).max(0.0)).max(MIN_RENEW_INTERVAL)
}

/// Shortest wait between two renewals.
pub const MIN_RENEW_INTERVAL: Duration = Duration::from_secs(1);

/// A jitter in `[0, 1)` from the system's randomness.
pub fn jitter() -> f64 {
    let mut b = [0u8; 4];
    match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b) {
        Ok(()) => u32::from_be_bytes(b) as f64 / (u32::MAX as f64 + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_at_half_life_with_bounded_jitter() {
        assert_eq!(renew_in(1000, 2000, 1000, 0.0), Duration::from_secs(500));
        assert_eq!(renew_in(1000, 2000, 1000, 1.0), Duration::from_secs(400));
        assert_eq!(renew_in(1000, 2000, 1700, 0.0), MIN_RENEW_INTERVAL);
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
            let d = renew_in(0, 100, 0, j);
            assert!(
                d <= Duration::from_secs(50) && d >= Duration::from_secs(40),
                "{d:?}"
            );
        }
    }

    #[test]
    fn verify_accepts_our_chain_and_refuses_other_roots_and_names() {
        let (root_cert, root_key) =
            rudder_ca::root::generate("cluster.local", rudder_ca::unix_now()).unwrap();
        let root = rudder_ca::root::from_pem(
            "c".as_ref(),
            &root_cert,
            "k".as_ref(),
            &root_key,
            rudder_ca::unix_now(),
        )
        .unwrap();
        let ca =
            rudder_ca::CertificateAuthority::new(root, "cluster.local", Duration::from_secs(600));
        let id = SpiffeId::new("cluster.local", "default", "app");
        let (key, csr) = key_and_csr(&id).unwrap();
        let issued = ca.sign_workload(&csr, &id, None).unwrap();
        let (nb, na, serial) = verify(&issued.chain, &root_cert, &id, &key).unwrap();
        assert!(na - nb >= 600 && !serial.is_empty());

        let (other_root, _) =
            rudder_ca::root::generate("cluster.local", rudder_ca::unix_now()).unwrap();
        let err = verify(&issued.chain[..1], &other_root, &id, &key).unwrap_err();
        assert!(err.contains("root mismatch"), "{err}");
        let other = SpiffeId::new("cluster.local", "default", "other");
        assert!(verify(&issued.chain, &root_cert, &other, &key)
            .unwrap_err()
            .contains("expected exactly"));
        let (other_key, _) = key_and_csr(&id).unwrap();
        assert!(verify(&issued.chain, &root_cert, &id, &other_key)
            .unwrap_err()
            .contains("not for the key"));
    }

    #[test]
    fn a_plugin_chain_verifies_through_the_intermediate_and_keeps_it() {
        let now = rudder_ca::unix_now();
        let (old_root, _) = rudder_ca::root::generate("corp", now).unwrap();
        let (root, root_key) = rudder_ca::root::generate("corp", now).unwrap();
        let (ca_cert, ca_key) = rudder_ca::plugin::generate_intermediate(
            &root,
            &root_key,
            "mesh ca",
            now - 60,
            now + 3600,
        )
        .unwrap();
        let bundle = format!("{old_root}{root}");
        let files = rudder_ca::plugin::PluginFiles {
            ca_cert: ca_cert.clone(),
            ca_key,
            cert_chain: format!("{ca_cert}{root}"),
            root_cert: bundle.clone(),
        };
        let signer = rudder_ca::plugin::from_files("d".as_ref(), &files, now).unwrap();
        let ca =
            rudder_ca::CertificateAuthority::new(signer, "cluster.local", Duration::from_secs(600));
        let id = SpiffeId::new("cluster.local", "default", "app");
        let (key, csr) = key_and_csr(&id).unwrap();
        let issued = ca.sign_workload(&csr, &id, None).unwrap();
        verify(&issued.chain, &bundle, &id, &key).unwrap();
        // Only the old root: refused.
        let err = verify(&issued.chain, &old_root, &id, &key).unwrap_err();
        assert!(err.contains("does not link up"), "{err}");
        // Envoy gets leaf + intermediate; the roots go to ROOTCA.
        let chain_pem = without_roots(&issued.chain, &bundle);
        let ders: Vec<Vec<u8>> = Pem::iter_from_buffer(chain_pem.as_bytes())
            .map(|p| p.unwrap().contents)
            .collect();
        assert_eq!(ders.len(), 2);
        let ca_der = Pem::iter_from_buffer(ca_cert.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .contents;
        assert_eq!(ders[1], ca_der);
        let root_der = Pem::iter_from_buffer(root.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .contents;
        assert_eq!(anchor(&chain_pem, &bundle), Some(root_der));
    }
}
