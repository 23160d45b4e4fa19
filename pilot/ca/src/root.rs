//! The mesh root: one pair `root-cert.pem` / `root-key.pem` in `--ca-dir`.
//!
//! pilot generates it when the directory holds neither file (and persists it,
//! so every restart signs with the same root and running sidecars keep
//! trusting each other), or loads the pair an operator (or the local mesh
//! runner) put there. A root that cannot sign what agents will trust is
//! refused at start with the file and the reason: an expired root, a key that
//! is not the certificate's, a certificate that is not a CA. Nobody makes a
//! second root: a half-present pair is an error, never silently replaced.

use std::{
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use time::OffsetDateTime;
use x509_parser::pem::Pem;

/// The root certificate file in `--ca-dir` (0644).
pub use rudder_model::well_known::ROOT_CERT_FILE;
/// The root key file in `--ca-dir` (0600).
pub const ROOT_KEY_FILE: &str = "root-key.pem";
/// Lifetime of a root pilot generates.
pub const ROOT_TTL: std::time::Duration = std::time::Duration::from_secs(10 * 365 * 24 * 3600);

/// Why the root could not be created or used.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// Only one of the two files exists.
    #[error("{present} exists but {missing} does not: the mesh root is a pair; restore the missing file or remove both to let pilot generate a new root")]
    HalfPresent {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// A file could not be read or written.
    #[error("{file}: {reason}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The content is not usable as a root.
    #[error("{file}: {reason}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// Plug-in mode was selected but not every file is there.
    #[error("{dir}: plug-in CA files are incomplete, missing {missing} (a plug-in CA needs ca-cert.pem, ca-key.pem, cert-chain.pem and root-cert.pem, as Istio's cacerts)")]
    PluginIncomplete {
        /// The directory.
        dir: PathBuf,
        /// The missing files, comma-separated.
        missing: String,
    },
    /// rcgen failed to build a certificate.
    #[error("generating the mesh root: {0}")]
    Generate(String),
}

/// A usable signing CA: the root(s) agents trust, the signing key, and the
/// chain from the signing certificate up to a root (empty when the root
/// signs itself).
pub struct Root {
    /// The root certificate(s) every proxy trusts, PEM (`root-cert.pem`;
    /// several during a root rotation).
    pub cert_pem: String,
    /// Plug-in mode: the certificates of `cert-chain.pem` (the signing CA
    /// first), PEM; empty in self-signed mode.
    pub chain: Vec<String>,
    /// The root's `notAfter`, Unix seconds: no leaf outlives it.
    pub not_after: i64,
    /// Signs leaves.
    pub issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Root")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Loads the pair from `dir`, or generates and persists one when neither file
/// exists (creating `dir`). `now` is Unix seconds. Returns the root and
/// whether it was generated.
pub fn load_or_create(dir: &Path, trust_domain: &str, now: i64) -> Result<(Root, bool), RootError> {
    let cert = dir.join(ROOT_CERT_FILE);
    let key = dir.join(ROOT_KEY_FILE);
    match (cert.exists(), key.exists()) {
        (true, true) => Ok((load(&cert, &key, now)?, false)),
        (false, false) => {
            let (cert_pem, key_pem) = generate(trust_domain, now)?;
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
            // The key first, so a crash in between leaves a half pair that is
            // reported, never a certificate without its key silently replaced.
            write_new(&key, key_pem.as_bytes(), 0o600)?;
            write_new(&cert, cert_pem.as_bytes(), 0o644)?;
            tracing::info!(dir = %dir.display(), trust_domain, "generated a new mesh root");
            Ok((load(&cert, &key, now)?, true))
        }
        (true, false) => Err(RootError::HalfPresent {
            present: cert,
            missing: key,
        }),
        (false, true) => Err(RootError::HalfPresent {
            present: key,
            missing: cert,
        }),
    }
}

/// A fresh self-signed root (ECDSA P-256): `(cert_pem, key_pem)`. The local
/// mesh runner and tests may use it; pilot calls it through [`load_or_create`].
pub fn generate(trust_domain: &str, now: i64) -> Result<(String, String), RootError> {
    generate_with_validity(trust_domain, now - 60, now + ROOT_TTL.as_secs() as i64)
}

/// [`generate`] with explicit validity bounds (Unix seconds).
pub fn generate_with_validity(
    trust_domain: &str,
    not_before: i64,
    not_after: i64,
) -> Result<(String, String), RootError> {
    let gen = |e: rcgen::Error| RootError::Generate(e.to_string());
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.distinguished_name
        .push(DnType::OrganizationName, trust_domain);
    p.distinguished_name
        .push(DnType::CommonName, "Rudder mesh root");
    p.not_before = unix(not_before)?;
    p.not_after = unix(not_after)?;
    let key = KeyPair::generate().map_err(gen)?;
    let cert = p.self_signed(&key).map_err(gen)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Converts Unix seconds for rcgen.
pub(crate) fn unix(secs: i64) -> Result<OffsetDateTime, RootError> {
    OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| RootError::Generate(format!("time {secs}: {e}")))
}

/// Reads and checks the pair.
pub fn load(cert: &Path, key: &Path, now: i64) -> Result<Root, RootError> {
    let cert_pem = std::fs::read_to_string(cert).map_err(|e| io(cert, e))?;
    let key_pem = std::fs::read_to_string(key).map_err(|e| io(key, e))?;
    from_pem(cert, &cert_pem, key, &key_pem, now)
}

/// Checks a PEM pair; the paths are for messages.
pub fn from_pem(
    cert: &Path,
    cert_pem: &str,
    key: &Path,
    key_pem: &str,
    now: i64,
) -> Result<Root, RootError> {
    let bad_cert = |reason: String| RootError::Invalid {
        file: cert.to_path_buf(),
        reason,
    };
    let pem = Pem::iter_from_buffer(cert_pem.as_bytes())
        .next()
        .ok_or_else(|| bad_cert("no PEM CERTIFICATE block found".into()))?
        .map_err(|e| bad_cert(format!("not valid PEM: {e}")))?;
    if pem.label != "CERTIFICATE" {
        return Err(bad_cert(format!(
            "found a PEM block {:?}, expected \"CERTIFICATE\"",
            pem.label
        )));
    }
    let x509 = pem
        .parse_x509()
        .map_err(|e| bad_cert(format!("not valid X.509: {e}")))?;
    let validity = x509.validity();
    if now > validity.not_after.timestamp() {
        return Err(bad_cert(format!(
            "the mesh root expired at {}: every certificate it signs would be refused; replace root-cert.pem and root-key.pem",
            validity.not_after
        )));
    }
    if now < validity.not_before.timestamp() {
        return Err(bad_cert(format!(
            "the mesh root is not valid before {}",
            validity.not_before
        )));
    }
    match x509.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => {}
        _ => {
            return Err(bad_cert(
                "not a CA certificate (basicConstraints CA:TRUE is required)".into(),
            ))
        }
    }
    let kp = KeyPair::from_pem(key_pem).map_err(|e| RootError::Invalid {
        file: key.to_path_buf(),
        reason: format!("not a usable PKCS#8 private key: {e}"),
    })?;
    if kp.public_key_raw() != x509.public_key().subject_public_key.data.as_ref() {
        return Err(RootError::Invalid {
            file: key.to_path_buf(),
            reason: format!(
                "this key does not belong to the root certificate in {} (mismatched pair)",
                cert.display()
            ),
        });
    }
    let issuer = Issuer::from_ca_cert_pem(cert_pem, kp)
        .map_err(|e| bad_cert(format!("cannot sign with it: {e}")))?;
    Ok(Root {
        cert_pem: cert_pem.to_string(),
        chain: Vec::new(),
        not_after: validity.not_after.timestamp(),
        issuer,
    })
}

fn io(file: &Path, e: std::io::Error) -> RootError {
    RootError::Io {
        file: file.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Creates `file` with `mode` (failing if it exists: never overwrite a root).
fn write_new(file: &Path, data: &[u8], mode: u32) -> Result<(), RootError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(file)
        .map_err(|e| io(file, e))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| io(file, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn now() -> i64 {
        crate::unix_now()
    }

    #[test]
    fn generates_persists_and_reloads_the_same_root() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("ca");
        let (a, created) = load_or_create(&dir, "cluster.local", now()).unwrap();
        assert!(created);
        let mode = |f: &str| std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(ROOT_CERT_FILE), mode(ROOT_KEY_FILE)), (0o644, 0o600));
        let (b, created) = load_or_create(&dir, "cluster.local", now()).unwrap();
        assert!(!created);
        assert_eq!(a.cert_pem, b.cert_pem);
    }

    #[test]
    fn refuses_expired_mismatched_and_half_roots() {
        let d = tempfile::tempdir().unwrap();
        let (cert, key) =
            generate_with_validity("cluster.local", now() - 1000, now() - 10).unwrap();
        std::fs::write(d.path().join(ROOT_CERT_FILE), &cert).unwrap();
        std::fs::write(d.path().join(ROOT_KEY_FILE), &key).unwrap();
        let err = load_or_create(d.path(), "cluster.local", now())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("root-cert.pem") && err.contains("expired"),
            "{err}"
        );

        let (cert, _) = generate("cluster.local", now()).unwrap();
        let (_, other_key) = generate("cluster.local", now()).unwrap();
        std::fs::write(d.path().join(ROOT_CERT_FILE), &cert).unwrap();
        std::fs::write(d.path().join(ROOT_KEY_FILE), &other_key).unwrap();
        let err = load_or_create(d.path(), "cluster.local", now())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("root-key.pem") && err.contains("mismatched"),
            "{err}"
        );

        std::fs::remove_file(d.path().join(ROOT_KEY_FILE)).unwrap();
        let err = load_or_create(d.path(), "cluster.local", now())
            .unwrap_err()
            .to_string();
        assert!(err.contains("root-key.pem does not"), "{err}");

        std::fs::write(d.path().join(ROOT_KEY_FILE), "junk").unwrap();
        let err = load_or_create(d.path(), "cluster.local", now())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("root-key.pem") && err.contains("private key"),
            "{err}"
        );
    }
}
