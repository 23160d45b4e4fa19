//! Plug-in CA: an operator's signing CA, Istio's `cacerts` layout.
//!
//! ```text
//!  --ca-dir (or Secret cacerts on Kubernetes)
//!    ca-cert.pem     the signing CA (an intermediate)         ┐
//!    ca-key.pem      its key                                   ├─► Root { issuer, chain, trust }
//!    cert-chain.pem  ca-cert.pem, its issuers, up to a root    │   leaves: leaf + cert-chain + root-cert
//!    root-cert.pem   the root(s) every proxy trusts (1..n)    ┘   trust anchors: root-cert.pem
//! ```
//!
//! Any of `ca-cert.pem`, `ca-key.pem`, `cert-chain.pem` in the directory
//! selects plug-in mode (as Istio's plugged certificates do); then all four
//! files must be there. The set is checked before it is used, with the file
//! and the reason: the key is ca-cert's, ca-cert is a CA, nothing in the
//! chain is expired, cert-chain.pem starts with ca-cert.pem and each
//! certificate is signed by the next until one is signed by a root of
//! root-cert.pem. root-cert.pem may hold several roots: during a root
//! rotation it holds the old and the new one, so proxies trust both.

use std::path::{Path, PathBuf};

use rcgen::{Issuer, KeyPair};
use x509_parser::{certificate::X509Certificate, pem::Pem};

use crate::root::{Root, RootError, ROOT_CERT_FILE};

/// The signing CA certificate (an intermediate).
pub const CA_CERT_FILE: &str = "ca-cert.pem";
/// The signing CA's private key (PKCS#8).
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// ca-cert.pem followed by its issuers, up to (and usually including) the root.
pub const CERT_CHAIN_FILE: &str = "cert-chain.pem";
/// The four files of a plug-in CA, in Istio's `cacerts` Secret and `--ca-dir`.
pub const PLUGIN_FILES: [&str; 4] = [CA_CERT_FILE, CA_KEY_FILE, CERT_CHAIN_FILE, ROOT_CERT_FILE];

/// Whether `dir` holds plug-in files (any of ca-cert, ca-key, cert-chain).
pub fn present(dir: &Path) -> bool {
    [CA_CERT_FILE, CA_KEY_FILE, CERT_CHAIN_FILE]
        .iter()
        .any(|f| dir.join(f).exists())
}

/// The contents of the four files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginFiles {
    /// `ca-cert.pem`.
    pub ca_cert: String,
    /// `ca-key.pem`.
    pub ca_key: String,
    /// `cert-chain.pem`.
    pub cert_chain: String,
    /// `root-cert.pem`.
    pub root_cert: String,
}

impl PluginFiles {
    /// Reads the four files of `dir`; a partial set is an error naming
    /// what is missing.
    pub fn read(dir: &Path) -> Result<PluginFiles, RootError> {
        let missing: Vec<&str> = PLUGIN_FILES
            .iter()
            .copied()
            .filter(|f| !dir.join(f).exists())
            .collect();
        if !missing.is_empty() {
            return Err(RootError::PluginIncomplete {
                dir: dir.to_path_buf(),
                missing: missing.join(", "),
            });
        }
        let read = |f: &str| {
            let p = dir.join(f);
            std::fs::read_to_string(&p).map_err(|e| RootError::Io {
                file: p,
                reason: e.to_string(),
            })
        };
        Ok(PluginFiles {
            ca_cert: read(CA_CERT_FILE)?,
            ca_key: read(CA_KEY_FILE)?,
            cert_chain: read(CERT_CHAIN_FILE)?,
            root_cert: read(ROOT_CERT_FILE)?,
        })
    }
}

/// Reads and checks the plug-in files of `dir` (`now`: Unix seconds).
pub fn load(dir: &Path, now: i64) -> Result<Root, RootError> {
    from_files(dir, &PluginFiles::read(dir)?, now)
}

fn blocks(file: &Path, text: &str) -> Result<Vec<Pem>, RootError> {
    let bad = |reason: String| RootError::Invalid {
        file: file.to_path_buf(),
        reason,
    };
    let pems: Vec<Pem> = Pem::iter_from_buffer(text.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("not valid PEM: {e}")))?;
    if pems.is_empty() {
        return Err(bad("no PEM CERTIFICATE block found".into()));
    }
    if let Some(p) = pems.iter().find(|p| p.label != "CERTIFICATE") {
        return Err(bad(format!(
            "found a PEM block {:?}, expected \"CERTIFICATE\"",
            p.label
        )));
    }
    Ok(pems)
}

fn parse<'a>(file: &Path, pems: &'a [Pem]) -> Result<Vec<X509Certificate<'a>>, RootError> {
    pems.iter()
        .enumerate()
        .map(|(i, p)| {
            p.parse_x509().map_err(|e| RootError::Invalid {
                file: file.to_path_buf(),
                reason: format!("certificate {} is not valid X.509: {e}", i + 1),
            })
        })
        .collect()
}

fn check_time(file: &Path, what: &str, c: &X509Certificate<'_>, now: i64) -> Result<(), RootError> {
    let v = c.validity();
    let reason = if now > v.not_after.timestamp() {
        format!("{what} ({}) expired at {}", c.subject(), v.not_after)
    } else if now < v.not_before.timestamp() {
        format!(
            "{what} ({}) is not valid before {}",
            c.subject(),
            v.not_before
        )
    } else {
        return Ok(());
    };
    Err(RootError::Invalid {
        file: file.to_path_buf(),
        reason,
    })
}

fn is_ca(c: &X509Certificate<'_>) -> bool {
    matches!(c.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
}

/// Checks the files' contents; `dir` is for messages.
pub fn from_files(dir: &Path, f: &PluginFiles, now: i64) -> Result<Root, RootError> {
    let path = |n: &str| -> PathBuf { dir.join(n) };
    let (ca_path, key_path, chain_path, root_path) = (
        path(CA_CERT_FILE),
        path(CA_KEY_FILE),
        path(CERT_CHAIN_FILE),
        path(ROOT_CERT_FILE),
    );
    let ca_pems = blocks(&ca_path, &f.ca_cert)?;
    let chain_pems = blocks(&chain_path, &f.cert_chain)?;
    let root_pems = blocks(&root_path, &f.root_cert)?;
    let ca_certs = parse(&ca_path, &ca_pems)?;
    let chain = parse(&chain_path, &chain_pems)?;
    let roots = parse(&root_path, &root_pems)?;
    let ca = &ca_certs[0];
    let bad = |file: &Path, reason: String| RootError::Invalid {
        file: file.to_path_buf(),
        reason,
    };
    check_time(&ca_path, "the signing CA", ca, now)?;
    if !is_ca(ca) {
        return Err(bad(
            &ca_path,
            "not a CA certificate (basicConstraints CA:TRUE is required to sign workload certificates)"
                .into(),
        ));
    }
    let kp = KeyPair::from_pem(&f.ca_key)
        .map_err(|e| bad(&key_path, format!("not a usable PKCS#8 private key: {e}")))?;
    if kp.public_key_raw() != ca.public_key().subject_public_key.data.as_ref() {
        return Err(bad(
            &key_path,
            format!(
                "this key does not belong to the certificate in {} (mismatched pair)",
                ca_path.display()
            ),
        ));
    }
    for (i, r) in roots.iter().enumerate() {
        if !is_ca(r) {
            return Err(bad(
                &root_path,
                format!("certificate {} ({}) is not a CA", i + 1, r.subject()),
            ));
        }
    }
    if chain_pems[0].contents != ca_pems[0].contents {
        return Err(bad(
            &chain_path,
            format!(
                "must start with the certificate of {} (it starts with {})",
                ca_path.display(),
                chain[0].subject()
            ),
        ));
    }
    // Walk up: each certificate is signed by the next, until one is signed
    // by a root of root-cert.pem.
    let mut anchored = None;
    for (i, c) in chain.iter().enumerate() {
        check_time(&chain_path, &format!("certificate {}", i + 1), c, now)?;
        if let Some(r) = roots
            .iter()
            .find(|r| c.verify_signature(Some(r.public_key())).is_ok())
        {
            anchored = Some(r);
            break;
        }
        let Some(next) = chain.get(i + 1) else {
            break;
        };
        c.verify_signature(Some(next.public_key())).map_err(|_| {
            bad(
                &chain_path,
                format!(
                    "broken chain: certificate {} ({}) is not signed by certificate {} ({})",
                    i + 1,
                    c.subject(),
                    i + 2,
                    next.subject()
                ),
            )
        })?;
    }
    let Some(root) = anchored else {
        return Err(bad(
            &chain_path,
            format!(
                "the chain does not end at a root of {}: nothing in it is signed by a certificate there (issuer of the last one: {})",
                root_path.display(),
                chain[chain.len() - 1].issuer()
            ),
        ));
    };
    check_time(&root_path, "the root the chain ends at", root, now)?;
    // No leaf outlives any certificate it chains through.
    let not_after = chain
        .iter()
        .chain([root])
        .map(|c| c.validity().not_after.timestamp())
        .min()
        .unwrap_or(0);
    let issuer = Issuer::from_ca_cert_pem(&f.ca_cert, kp)
        .map_err(|e| bad(&ca_path, format!("cannot sign with it: {e}")))?;
    Ok(Root {
        cert_pem: f.root_cert.clone(),
        chain: chain_pems.iter().map(pem_of).collect(),
        not_after,
        issuer,
    })
}

/// A DER certificate back to PEM.
pub(crate) fn pem_of(p: &Pem) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&p.contents);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// An intermediate CA signed by the root `(root_cert_pem, root_key_pem)`,
/// valid `[not_before, not_after]` (Unix seconds): `(cert_pem, key_pem)`.
/// For tests and the local mesh's documentation; operators bring their own.
pub fn generate_intermediate(
    root_cert_pem: &str,
    root_key_pem: &str,
    name: &str,
    not_before: i64,
    not_after: i64,
) -> Result<(String, String), RootError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose};
    let gen = |e: rcgen::Error| RootError::Generate(e.to_string());
    let root_key = KeyPair::from_pem(root_key_pem).map_err(gen)?;
    let root = Issuer::from_ca_cert_pem(root_cert_pem, root_key).map_err(gen)?;
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.distinguished_name.push(DnType::CommonName, name);
    p.not_before = crate::root::unix(not_before)?;
    p.not_after = crate::root::unix(not_after)?;
    p.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().map_err(gen)?;
    let cert = p.signed_by(&key, &root).map_err(gen)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{root, CertificateAuthority};
    use rudder_model::identity::SpiffeId;
    use std::time::Duration;

    fn now() -> i64 {
        crate::unix_now()
    }

    /// An operator's set: root, intermediate under it.
    struct Set {
        root: (String, String),
        ca: (String, String),
    }

    fn set() -> Set {
        let root = root::generate("corp", now()).unwrap();
        let ca =
            generate_intermediate(&root.0, &root.1, "mesh ca", now() - 60, now() + 86400).unwrap();
        Set { root, ca }
    }

    fn write(dir: &Path, s: &Set) {
        std::fs::write(dir.join(CA_CERT_FILE), &s.ca.0).unwrap();
        std::fs::write(dir.join(CA_KEY_FILE), &s.ca.1).unwrap();
        std::fs::write(dir.join(CERT_CHAIN_FILE), format!("{}{}", s.ca.0, s.root.0)).unwrap();
        std::fs::write(dir.join(ROOT_CERT_FILE), &s.root.0).unwrap();
    }

    fn err(dir: &Path) -> String {
        load(dir, now()).unwrap_err().to_string()
    }

    fn der(pem: &str) -> Vec<Vec<u8>> {
        Pem::iter_from_buffer(pem.as_bytes())
            .map(|p| p.unwrap().contents)
            .collect()
    }

    #[test]
    fn a_workload_certificate_chains_through_the_intermediate_to_the_operator_root() {
        let d = tempfile::tempdir().unwrap();
        let s = set();
        write(d.path(), &s);
        assert!(present(d.path()));
        let ca = CertificateAuthority::load_or_create(
            d.path(),
            "cluster.local",
            Duration::from_secs(600),
        )
        .unwrap();
        assert!(ca.is_plugin());
        assert_eq!(ca.root_pem(), s.root.0);
        // pilot generated no root pair of its own.
        assert!(!d.path().join(root::ROOT_KEY_FILE).exists());
        let id = SpiffeId::new("cluster.local", "default", "app");
        let mut p = rcgen::CertificateParams::default();
        p.subject_alt_names = vec![rcgen::SanType::URI(id.to_string().try_into().unwrap())];
        let csr = p
            .serialize_request(&KeyPair::generate().unwrap())
            .unwrap()
            .pem()
            .unwrap();
        let issued = ca.sign_workload(&csr, &id, None).unwrap();
        // Istio's cert_chain: leaf, cert-chain.pem, root-cert.pem.
        assert_eq!(issued.chain.len(), 3);
        assert_eq!(
            der(&issued.chain[1]),
            der(&format!("{}{}", s.ca.0, s.root.0))
        );
        assert_eq!(issued.chain[2], s.root.0);
        let all: Vec<Vec<u8>> = issued.chain.iter().flat_map(|c| der(c)).collect();
        let certs: Vec<X509Certificate<'_>> = all
            .iter()
            .map(|d| x509_parser::parse_x509_certificate(d).unwrap().1)
            .collect();
        let (leaf, inter, root) = (&certs[0], &certs[1], &certs[2]);
        assert!(!leaf.is_ca());
        assert!(inter.is_ca());
        leaf.verify_signature(Some(inter.public_key())).unwrap();
        inter.verify_signature(Some(root.public_key())).unwrap();
        assert!(
            leaf.verify_signature(Some(root.public_key())).is_err(),
            "signed by the intermediate, not the root"
        );
        // The leaf never outlives the intermediate.
        assert!(issued.not_after <= inter.validity().not_after.timestamp());

        // pilot's serving certificate: leaf + cert-chain.pem.
        let (chain, _) = ca.serving_cert(&[], &[]).unwrap();
        assert_eq!(der(&chain).len(), 3);
        assert_eq!(der(&chain)[1], der(&s.ca.0)[0]);
    }

    #[test]
    fn webpki_verifies_the_chain_to_the_root() {
        use rustls_pki_types::{CertificateDer, UnixTime};
        let d = tempfile::tempdir().unwrap();
        let s = set();
        write(d.path(), &s);
        let ca = CertificateAuthority::load_or_create(
            d.path(),
            "cluster.local",
            Duration::from_secs(600),
        )
        .unwrap();
        let (chain, _) = ca
            .serving_cert(&[], &["127.0.0.1".parse().unwrap()])
            .unwrap();
        let certs = der(&chain);
        let root_der = der(&s.root.0).remove(0);
        let anchor = webpki::anchor_from_trusted_cert(&CertificateDer::from(root_der.as_slice()))
            .unwrap()
            .to_owned();
        let leaf_der = CertificateDer::from(certs[0].as_slice());
        let leaf = webpki::EndEntityCert::try_from(&leaf_der).unwrap();
        let inter: Vec<CertificateDer<'_>> = certs[1..]
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &inter,
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .unwrap();
    }

    #[test]
    fn several_roots_in_root_cert_pem_are_all_trusted() {
        let d = tempfile::tempdir().unwrap();
        let s = set();
        let other = root::generate("corp", now()).unwrap();
        write(d.path(), &s);
        // New root first: the chain still finds its root anywhere in the bundle.
        std::fs::write(
            d.path().join(ROOT_CERT_FILE),
            format!("{}{}", other.0, s.root.0),
        )
        .unwrap();
        let r = load(d.path(), now()).unwrap();
        assert_eq!(r.cert_pem, format!("{}{}", other.0, s.root.0));
        // cert-chain.pem without the root (ca-cert only) is fine too.
        std::fs::write(d.path().join(CERT_CHAIN_FILE), &s.ca.0).unwrap();
        assert_eq!(load(d.path(), now()).unwrap().chain.len(), 1);
    }

    #[test]
    fn each_bad_set_is_refused_with_the_file_and_why() {
        let d = tempfile::tempdir().unwrap();
        let s = set();
        write(d.path(), &s);
        // Partial set.
        std::fs::remove_file(d.path().join(CERT_CHAIN_FILE)).unwrap();
        std::fs::remove_file(d.path().join(ROOT_CERT_FILE)).unwrap();
        let e = err(d.path());
        assert!(
            e.contains("incomplete") && e.contains("missing cert-chain.pem, root-cert.pem"),
            "{e}"
        );
        // root-cert.pem alone is self-signed mode's file, not plug-in mode.
        let only_root = tempfile::tempdir().unwrap();
        std::fs::write(only_root.path().join(ROOT_CERT_FILE), &s.root.0).unwrap();
        assert!(!present(only_root.path()));

        // Key mismatch.
        write(d.path(), &s);
        let other =
            generate_intermediate(&s.root.0, &s.root.1, "x", now() - 60, now() + 3600).unwrap();
        std::fs::write(d.path().join(CA_KEY_FILE), &other.1).unwrap();
        let e = err(d.path());
        assert!(e.contains("ca-key.pem") && e.contains("mismatched"), "{e}");

        // Not a CA: a leaf-like certificate as ca-cert.
        write(d.path(), &s);
        let ca = CertificateAuthority::load_or_create(
            d.path(),
            "cluster.local",
            Duration::from_secs(600),
        )
        .unwrap();
        let (leaf_chain, leaf_key) = ca.serving_cert(&[], &[]).unwrap();
        let leaf = pem_of(
            &Pem::iter_from_buffer(leaf_chain.as_bytes())
                .next()
                .unwrap()
                .unwrap(),
        );
        std::fs::write(d.path().join(CA_CERT_FILE), &leaf).unwrap();
        std::fs::write(d.path().join(CA_KEY_FILE), &leaf_key).unwrap();
        std::fs::write(
            d.path().join(CERT_CHAIN_FILE),
            format!("{leaf}{}{}", s.ca.0, s.root.0),
        )
        .unwrap();
        let e = err(d.path());
        assert!(e.contains("ca-cert.pem") && e.contains("not a CA"), "{e}");

        // Broken chain: ca-cert is under another root than root-cert.pem's.
        write(d.path(), &s);
        let stranger = root::generate("corp", now()).unwrap();
        std::fs::write(d.path().join(ROOT_CERT_FILE), &stranger.0).unwrap();
        let e = err(d.path());
        assert!(
            e.contains("cert-chain.pem") && e.contains("does not end at a root of"),
            "{e}"
        );
        // Broken link in the middle.
        write(d.path(), &s);
        std::fs::write(
            d.path().join(CERT_CHAIN_FILE),
            format!("{}{}", s.ca.0, stranger.0),
        )
        .unwrap();
        std::fs::write(d.path().join(ROOT_CERT_FILE), &stranger.0).unwrap();
        let e = err(d.path());
        assert!(
            e.contains("cert-chain.pem") && e.contains("broken chain"),
            "{e}"
        );
        // cert-chain.pem not starting with ca-cert.pem.
        write(d.path(), &s);
        std::fs::write(d.path().join(CERT_CHAIN_FILE), &s.root.0).unwrap();
        let e = err(d.path());
        assert!(
            e.contains("cert-chain.pem") && e.contains("must start with"),
            "{e}"
        );

        // Expired intermediate.
        let old =
            generate_intermediate(&s.root.0, &s.root.1, "old", now() - 7200, now() - 3600).unwrap();
        let expired = Set {
            root: s.root.clone(),
            ca: old,
        };
        write(d.path(), &expired);
        let e = err(d.path());
        assert!(e.contains("ca-cert.pem") && e.contains("expired"), "{e}");
        // Expired root.
        let old_root = root::generate_with_validity("corp", now() - 7200, now() - 3600).unwrap();
        let ca = generate_intermediate(&old_root.0, &old_root.1, "x", now() - 7000, now() + 3600)
            .unwrap();
        write(d.path(), &Set { root: old_root, ca });
        let e = err(d.path());
        assert!(e.contains("expired"), "{e}");
    }
}
