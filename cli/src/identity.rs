//! Workload identity in the local mesh: the mesh root, the token key pilot
//! checks local tokens with, and one signed token per pod.
//!
//! ```text
//! <state>/ca/root-cert.pem  0644 ─┬─► pilot --ca-dir (its CA signs with the pair)
//!           /root-key.pem   0600 ─┘   every pod: /var/run/secrets/istio/root-cert.pem
//! or --cacerts DIR (plug-in CA: ca-cert, ca-key, cert-chain, root-cert.pem)
//!     ─► pilot --ca-dir DIR; a changed DIR/root-cert.pem is copied to every
//!        pod by the supervisor (kubelet's part for the root ConfigMap)
//!           /token-key      0600 ───► pilot --local-token-key (HMAC key, base64)
//! sign_local_token(key, pod, ns, sa) ─► <pod>/volumes/istio-token/istio-token (0400, proxy UID)
//!                                      = /var/run/secrets/tokens/istio-token
//! ```
//!
//! The runner plays kubelet and the API server's token issuer: it mints a
//! credential that only the pod's sidecar can read and that names exactly the
//! pod's service account, so the identity pilot certifies comes from the
//! credential, never from the CSR.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;

use rudder_model::well_known::DEFAULT_TRUST_DOMAIN as TRUST_DOMAIN;

/// How long a pod's token is valid: longer than any run, as kubelet would
/// refresh it on a cluster.
const TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Setting up identity failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The mesh root could not be loaded or made.
    #[error("mesh root in {dir}: {message}")]
    Root {
        /// pilot's CA directory.
        dir: PathBuf,
        /// Why.
        message: String,
    },
    /// The token key is unusable.
    #[error("token key: {0}")]
    Key(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The instance's identity material (what pods get; pilot reads the files).
#[derive(Clone)]
pub struct MeshIdentity {
    /// pilot's `--ca-dir`.
    pub ca_dir: PathBuf,
    /// pilot's `--local-token-key`.
    pub token_key_file: PathBuf,
    /// The mesh root certificate (PEM), mounted into every pod.
    pub root_cert_pem: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for MeshIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshIdentity")
            .field("ca_dir", &self.ca_dir)
            .finish_non_exhaustive()
    }
}

impl MeshIdentity {
    /// Loads `<state>/ca`, creating the root pair and the token key when
    /// missing (once per instance: never a second root). With `cacerts` (an
    /// operator's plug-in CA directory), or when `<state>/ca` already holds
    /// plug-in files, pilot signs with those: they are checked here and no
    /// root is created.
    pub fn prepare(
        state_dir: &Path,
        cacerts: Option<&Path>,
    ) -> Result<MeshIdentity, IdentityError> {
        let state_ca = state_dir.join("ca");
        let ca_dir = cacerts.map_or_else(|| state_ca.clone(), Path::to_path_buf);
        let now = rudder_ca::unix_now();
        let root_err = |e: rudder_ca::root::RootError| IdentityError::Root {
            dir: ca_dir.clone(),
            message: e.to_string(),
        };
        if cacerts.is_some() || rudder_ca::plugin::present(&ca_dir) {
            rudder_ca::plugin::load(&ca_dir, now).map_err(root_err)?;
            fs::create_dir_all(&state_ca).map_err(io(&state_ca))?;
        } else {
            rudder_ca::root::load_or_create(&ca_dir, TRUST_DOMAIN, now).map_err(root_err)?;
        }
        let cert = ca_dir.join(rudder_ca::root::ROOT_CERT_FILE);
        let root_cert_pem = fs::read_to_string(&cert).map_err(io(&cert))?;
        let token_key_file = state_ca.join("token-key");
        if !token_key_file.exists() {
            let mut bytes = [0u8; 32];
            let urandom = Path::new("/dev/urandom");
            fs::File::open(urandom)
                .and_then(|mut f| f.read_exact(&mut bytes))
                .map_err(io(urandom))?;
            let line = base64::engine::general_purpose::STANDARD.encode(bytes) + "\n";
            fs::write(&token_key_file, line).map_err(io(&token_key_file))?;
            fs::set_permissions(&token_key_file, fs::Permissions::from_mode(0o600))
                .map_err(io(&token_key_file))?;
        }
        let key = rudder_ca::token::read_key(&token_key_file)
            .map_err(|e| IdentityError::Key(e.to_string()))?;
        Ok(MeshIdentity {
            ca_dir,
            token_key_file,
            root_cert_pem,
            key,
        })
    }

    /// The credential of pod `pod` in `namespace` running as `service_account`.
    pub fn token(&self, pod: &str, namespace: &str, service_account: &str) -> String {
        rudder_ca::token::sign_local_token(&self.key, pod, namespace, service_account, TOKEN_TTL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_creates_once_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let a = MeshIdentity::prepare(dir.path(), None).unwrap();
        let key_mode = fs::metadata(&a.token_key_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
        let b = MeshIdentity::prepare(dir.path(), None).unwrap();
        assert_eq!(a.root_cert_pem, b.root_cert_pem, "never a second root");
        assert_eq!(a.key, b.key);
        assert!(a.root_cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        // pilot reads the same key file and accepts the token for exactly this account.
        let pilot_key = rudder_ca::token::read_key(&b.token_key_file).unwrap();
        let check = rudder_ca::LocalTokenAuthenticator::new(&pilot_key);
        let claims = check
            .verify(&a.token("p", "ns", "sa"), rudder_ca::unix_now())
            .unwrap();
        assert_eq!(
            (
                claims.pod.as_str(),
                claims.namespace.as_str(),
                claims.service_account.as_str()
            ),
            ("p", "ns", "sa")
        );
    }
}
