//! Signing: workload certificates from CSRs, and pilot's own serving certificate.
//!
//! The identity in a workload certificate comes from the caller's credential
//! (checked by an [`crate::Authenticator`]), never from the CSR: the CSR only
//! contributes the public key (and proves the caller holds its private key,
//! since its signature is checked). A CSR that asks for any other SPIFFE id is
//! refused, so a compromised pod cannot obtain a neighbour's identity by
//! writing it into its request.

use std::{
    net::IpAddr,
    path::Path,
    sync::{Arc, RwLock},
    time::Duration,
};

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rudder_model::{identity::SpiffeId, well_known};
use x509_parser::{
    certification_request::X509CertificationRequest,
    extensions::{GeneralName, ParsedExtension},
    pem::Pem,
    prelude::FromDer,
};

use crate::root::{self, Root, RootError};

/// Why a certificate was not issued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    /// The CSR is not a valid PEM PKCS#10 request with a valid signature.
    #[error("invalid CSR: {0}")]
    BadCsr(String),
    /// The CSR asks for an identity the caller does not have.
    #[error("the CSR asks for {requested:?} but the caller's credential is for {allowed}")]
    IdentityMismatch {
        /// What the CSR asked for.
        requested: String,
        /// What the caller is.
        allowed: String,
    },
    /// The identity is in another trust domain than this CA's.
    #[error("identity {id} is not in this CA's trust domain {trust_domain:?}")]
    WrongTrustDomain {
        /// The identity.
        id: String,
        /// The CA's trust domain.
        trust_domain: String,
    },
    /// rcgen failed.
    #[error("signing failed: {0}")]
    Sign(String),
}

/// A certificate chain as the certificate service returns it, Istio's
/// `cert_chain`: the leaf, then (plug-in mode) `cert-chain.pem`, then
/// `root-cert.pem` (the root(s)) last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedChain {
    /// PEM elements: leaf first, `cert-chain.pem` next (plug-in mode), the
    /// root bundle last.
    pub chain: Vec<String>,
    /// The leaf's `notAfter`, Unix seconds.
    pub not_after: i64,
}

/// The mesh CA.
#[derive(Debug)]
pub struct CertificateAuthority {
    /// The current signer; replaced when the operator rotates the plug-in files.
    root: RwLock<Arc<Root>>,
    trust_domain: String,
    max_ttl: Duration,
}

/// Default and cap of workload certificate lifetimes (`--workload-cert-ttl`).
pub const DEFAULT_WORKLOAD_CERT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Lifetime of pilot's serving certificate (reissued at every start).
pub const SERVING_CERT_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Leaves are valid from a minute in the past, for clocks slightly behind.
const BACKDATE_SECS: i64 = 60;

impl CertificateAuthority {
    /// A CA over a checked root; `max_ttl` caps (and is the default of)
    /// workload certificate lifetimes.
    pub fn new(root: Root, trust_domain: &str, max_ttl: Duration) -> Self {
        Self {
            root: RwLock::new(Arc::new(root)),
            trust_domain: trust_domain.to_string(),
            max_ttl,
        }
    }

    /// Loads the signing CA from `dir`: the plug-in files when any is there
    /// (see [`crate::plugin`]), else the self-signed root pair, generated
    /// and persisted when neither file exists.
    pub fn load_or_create(
        dir: &Path,
        trust_domain: &str,
        max_ttl: Duration,
    ) -> Result<Self, RootError> {
        let root = load_dir(dir, trust_domain, crate::unix_now())?;
        Ok(Self::new(root, trust_domain, max_ttl))
    }

    /// Signs with `root` from now on (a rotated plug-in CA).
    pub fn replace(&self, root: Root) {
        *self.root.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(root);
    }

    fn current(&self) -> Arc<Root> {
        self.root.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The root certificate(s) (PEM) agents trust.
    pub fn root_pem(&self) -> String {
        self.current().cert_pem.clone()
    }

    /// Plug-in mode: whether this CA signs with an operator's `ca-cert.pem`.
    pub fn is_plugin(&self) -> bool {
        !self.current().chain.is_empty()
    }

    /// The trust domain of the identities this CA issues.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The cap of workload certificate lifetimes.
    pub fn max_ttl(&self) -> Duration {
        self.max_ttl
    }

    /// Signs a workload certificate for `id` over the key in `csr_pem`.
    /// `requested` is the caller's wish (0 or absent = the cap); the lifetime
    /// is the smaller of it and the cap, and never outlives the root.
    pub fn sign_workload(
        &self,
        csr_pem: &str,
        id: &SpiffeId,
        requested: Option<Duration>,
    ) -> Result<IssuedChain, SignError> {
        if id.trust_domain != self.trust_domain {
            return Err(SignError::WrongTrustDomain {
                id: id.to_string(),
                trust_domain: self.trust_domain.clone(),
            });
        }
        check_csr_identity(csr_pem, id)?;
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| SignError::BadCsr(e.to_string()))?;
        let ttl = requested
            .filter(|d| !d.is_zero())
            .map_or(self.max_ttl, |d| d.min(self.max_ttl));
        let uri = id
            .to_string()
            .try_into()
            .map_err(|e: rcgen::Error| SignError::Sign(e.to_string()))?;
        let root = self.current();
        let mut params = self.leaf_params(&root, vec![SanType::URI(uri)], ttl)?;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let not_after = params.not_after.unix_timestamp();
        let signed = CertificateSigningRequestParams {
            params,
            public_key: csr.public_key,
        };
        let leaf = signed
            .signed_by(&root.issuer)
            .map_err(|e| SignError::Sign(e.to_string()))?;
        // As istiod: leaf, then cert-chain.pem, then root-cert.pem.
        let mut chain = vec![leaf.pem()];
        if !root.chain.is_empty() {
            chain.push(root.chain.concat());
        }
        chain.push(root.cert_pem.clone());
        Ok(IssuedChain { chain, not_after })
    }

    /// pilot's serving certificate: `rudder-pilot.rudder-system.svc` plus
    /// `names` (DNS) and `ips`. Returns `(chain_pem, key_pem)`, the chain
    /// being leaf + root (self-signed) or leaf + `cert-chain.pem` (plug-in).
    pub fn serving_cert(
        &self,
        names: &[String],
        ips: &[IpAddr],
    ) -> Result<(String, String), SignError> {
        let sign = |e: rcgen::Error| SignError::Sign(e.to_string());
        let mut sans = Vec::new();
        let default = format!("rudder-pilot.{}.svc", well_known::SYSTEM_NAMESPACE);
        for n in std::iter::once(&default).chain(names.iter()) {
            let san = SanType::DnsName(n.clone().try_into().map_err(sign)?);
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
        for ip in ips {
            if !sans.contains(&SanType::IpAddress(*ip)) {
                sans.push(SanType::IpAddress(*ip));
            }
        }
        let root = self.current();
        let mut params = self.leaf_params(&root, sans, SERVING_CERT_TTL)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.distinguished_name.push(DnType::CommonName, default);
        let key = KeyPair::generate().map_err(sign)?;
        let cert = params.signed_by(&key, &root.issuer).map_err(sign)?;
        let up = if root.chain.is_empty() {
            root.cert_pem.clone()
        } else {
            root.chain.concat()
        };
        Ok((format!("{}{}", cert.pem(), up), key.serialize_pem()))
    }

    fn leaf_params(
        &self,
        root: &Root,
        sans: Vec<SanType>,
        ttl: Duration,
    ) -> Result<CertificateParams, SignError> {
        let now = crate::unix_now();
        let not_after = (now + ttl.as_secs() as i64).min(root.not_after);
        let time = |t| root::unix(t).map_err(|e| SignError::Sign(e.to_string()));
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, self.trust_domain.clone());
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.not_before = time(now - BACKDATE_SECS)?;
        params.not_after = time(not_after)?;
        params.use_authority_key_identifier_extension = true;
        let mut serial = [0u8; 16];
        SystemRandom::new()
            .fill(&mut serial)
            .map_err(|_| SignError::Sign("no randomness for a serial".into()))?;
        serial[0] &= 0x7f;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        Ok(params)
    }
}

/// The signing CA of `dir`: plug-in files when any is present, else the
/// self-signed pair (created when neither file exists).
pub fn load_dir(dir: &Path, trust_domain: &str, now: i64) -> Result<Root, RootError> {
    if crate::plugin::present(dir) {
        crate::plugin::load(dir, now)
    } else {
        root::load_or_create(dir, trust_domain, now).map(|(r, _)| r)
    }
}

/// Parses the CSR, checks its signature, and refuses any URI SAN other than
/// `id` (DNS and IP SANs are ignored: the certificate carries only `id`).
fn check_csr_identity(csr_pem: &str, id: &SpiffeId) -> Result<(), SignError> {
    let bad = SignError::BadCsr;
    let pem = Pem::iter_from_buffer(csr_pem.as_bytes())
        .next()
        .ok_or_else(|| bad("no PEM block found (expected \"CERTIFICATE REQUEST\")".into()))?
        .map_err(|e| bad(format!("not valid PEM: {e}")))?;
    if pem.label != "CERTIFICATE REQUEST" && pem.label != "NEW CERTIFICATE REQUEST" {
        return Err(bad(format!(
            "found a PEM block {:?}, expected \"CERTIFICATE REQUEST\"",
            pem.label
        )));
    }
    let (_, csr) = X509CertificationRequest::from_der(&pem.contents)
        .map_err(|e| bad(format!("not a PKCS#10 request: {e}")))?;
    csr.verify_signature()
        .map_err(|e| bad(format!("its signature does not verify: {e}")))?;
    let want = id.to_string();
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                if let GeneralName::URI(uri) = name {
                    if *uri != want {
                        return Err(SignError::IdentityMismatch {
                            requested: uri.to_string(),
                            allowed: want,
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::X509Certificate;

    fn ca(ttl: Duration) -> CertificateAuthority {
        let (cert, key) = root::generate("cluster.local", crate::unix_now()).unwrap();
        let root = root::from_pem(
            Path::new("c"),
            &cert,
            Path::new("k"),
            &key,
            crate::unix_now(),
        )
        .unwrap();
        CertificateAuthority::new(root, "cluster.local", ttl)
    }

    fn csr(sans: &[SanType]) -> String {
        let mut p = CertificateParams::default();
        p.subject_alt_names = sans.to_vec();
        p.serialize_request(&KeyPair::generate().unwrap())
            .unwrap()
            .pem()
            .unwrap()
    }

    fn uri(s: &str) -> SanType {
        SanType::URI(s.to_string().try_into().unwrap())
    }

    fn der(pem: &str) -> Vec<u8> {
        Pem::iter_from_buffer(pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .contents
    }

    #[test]
    fn chain_verifies_against_the_root_with_the_exact_san_and_ttl() {
        let ca = ca(Duration::from_secs(3600));
        let id = SpiffeId::new("cluster.local", "default", "reviews");
        let issued = ca
            .sign_workload(
                &csr(&[uri(&id.to_string())]),
                &id,
                Some(Duration::from_secs(600)),
            )
            .unwrap();
        assert_eq!(issued.chain.len(), 2);
        assert_eq!(issued.chain[1], ca.root_pem());
        let (leaf_der, root_der) = (der(&issued.chain[0]), der(&issued.chain[1]));
        let (_, leaf) = X509Certificate::from_der(&leaf_der).unwrap();
        let (_, root) = X509Certificate::from_der(&root_der).unwrap();
        leaf.verify_signature(Some(root.public_key())).unwrap();
        let sans: Vec<String> = leaf
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|g| g.to_string())
            .collect();
        assert_eq!(
            sans,
            vec!["URI(spiffe://cluster.local/ns/default/sa/reviews)".to_string()]
        );
        let ttl = leaf.validity().not_after.timestamp() - crate::unix_now();
        assert!((595..=601).contains(&ttl), "ttl {ttl}");
        assert!(!leaf.is_ca());
    }

    #[test]
    fn ttl_is_capped_and_defaults_to_the_cap() {
        let ca = ca(Duration::from_secs(300));
        let id = SpiffeId::new("cluster.local", "default", "a");
        for requested in [None, Some(Duration::ZERO), Some(Duration::from_secs(86400))] {
            let issued = ca.sign_workload(&csr(&[]), &id, requested).unwrap();
            let left = issued.not_after - crate::unix_now();
            assert!((295..=301).contains(&left), "{requested:?}: {left}");
        }
    }

    #[test]
    fn a_csr_for_another_identity_is_refused() {
        let ca = ca(Duration::from_secs(300));
        let id = SpiffeId::new("cluster.local", "default", "a");
        let err = ca
            .sign_workload(
                &csr(&[uri("spiffe://cluster.local/ns/default/sa/admin")]),
                &id,
                None,
            )
            .unwrap_err();
        assert_eq!(
            err,
            SignError::IdentityMismatch {
                requested: "spiffe://cluster.local/ns/default/sa/admin".into(),
                allowed: id.to_string()
            }
        );
        let other_td = SpiffeId::new("evil.local", "default", "a");
        assert!(matches!(
            ca.sign_workload(&csr(&[]), &other_td, None),
            Err(SignError::WrongTrustDomain { .. })
        ));
    }

    #[test]
    fn garbage_and_tampered_csrs_are_refused_with_a_reason() {
        let ca = ca(Duration::from_secs(300));
        let id = SpiffeId::new("cluster.local", "default", "a");
        let err = ca
            .sign_workload("hello", &id, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid CSR") && err.contains("PEM"), "{err}");
        let good = csr(&[]);
        let mut bytes = der(&good);
        let n = bytes.len();
        bytes[n - 5] ^= 0xff; // inside the signature
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            lines.join("\n")
        );
        let err = ca.sign_workload(&pem, &id, None).unwrap_err().to_string();
        assert!(err.contains("invalid CSR"), "{err}");
    }

    #[test]
    fn serving_cert_names_pilot_and_the_listen_ip() {
        let ca = ca(Duration::from_secs(300));
        let (chain, key) = ca
            .serving_cert(&["pilot.example".into()], &["198.18.0.1".parse().unwrap()])
            .unwrap();
        let certs: Vec<Pem> = Pem::iter_from_buffer(chain.as_bytes())
            .map(Result::unwrap)
            .collect();
        assert_eq!(certs.len(), 2);
        let leaf = certs[0].parse_x509().unwrap();
        let sans: Vec<String> = leaf
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|g| g.to_string())
            .collect();
        assert_eq!(
            sans,
            [
                "DNSName(rudder-pilot.rudder-system.svc)",
                "DNSName(pilot.example)",
                "IPAddress(c6:12:00:01)"
            ]
        );
        assert!(KeyPair::from_pem(&key).is_ok());
    }
}
