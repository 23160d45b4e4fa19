//! The API server's version, for `nativeSidecars: auto`.
//!
//! Native sidecars need Kubernetes ≥ 1.29. The webhook asks `GET /version`
//! once at start when it runs in a cluster (service-account token and CA in
//! the standard places); outside a cluster, or when the question fails, the
//! version is unknown and `auto` means classic sidecars, which work
//! everywhere. The request goes through [`crate::kubeapi`], the injector's
//! small API client.

use serde_json::Value;

use crate::kubeapi::{ApiClient, ApiError};

pub use crate::kubeapi::SERVICE_ACCOUNT_DIR;

/// Why the version could not be learned.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    /// No answer: credentials, TLS or HTTP.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The API server answered something other than 200.
    #[error("GET /version: {0}")]
    Status(String),
    /// The answer is not a Kubernetes version.
    #[error("GET /version answered {0}")]
    Parse(String),
}

/// `major`/`minor` of a `/version` answer (`"minor": "29+"` on some
/// distributions), falling back to `gitVersion` (`v1.29.3-gke.1`).
pub fn parse_version(v: &Value) -> Option<(u32, u32)> {
    let num = |s: &str| s.trim_end_matches('+').parse::<u32>().ok();
    let major = v.get("major").and_then(Value::as_str).and_then(num);
    let minor = v.get("minor").and_then(Value::as_str).and_then(num);
    if let (Some(a), Some(b)) = (major, minor) {
        return Some((a, b));
    }
    let git = v.get("gitVersion")?.as_str()?.trim_start_matches('v');
    let mut parts = git.split(['.', '-', '+']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// GET `https://<addr>/version`, trusting only `ca_pem`.
pub async fn fetch_version(
    addr: &str,
    server_name: &str,
    ca_pem: &[u8],
    token: Option<&str>,
) -> Result<(u32, u32), VersionError> {
    let client = ApiClient::new(addr, server_name, ca_pem, token)?;
    version_of(&client).await
}

/// GET `/version` with `client`.
pub async fn version_of(client: &ApiClient) -> Result<(u32, u32), VersionError> {
    let resp = client.request(hyper::Method::GET, "/version", None).await?;
    if !resp.status.is_success() {
        return Err(VersionError::Status(resp.describe()));
    }
    let v: Value = serde_json::from_slice(&resp.body)
        .map_err(|_| VersionError::Parse(String::from_utf8_lossy(&resp.body).into()))?;
    parse_version(&v).ok_or_else(|| VersionError::Parse(v.to_string()))
}

/// The API server version when running in a cluster; `Ok(None)` outside one.
pub async fn in_cluster_version() -> Result<Option<(u32, u32)>, VersionError> {
    match ApiClient::in_cluster()? {
        Some(client) => version_of(&client).await.map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_major_minor_and_git_version() {
        assert_eq!(
            parse_version(&json!({"major": "1", "minor": "29"})),
            Some((1, 29))
        );
        assert_eq!(
            parse_version(&json!({"major": "1", "minor": "28+"})),
            Some((1, 28))
        );
        assert_eq!(
            parse_version(&json!({"major": "", "minor": "", "gitVersion": "v1.30.2-gke.1"})),
            Some((1, 30))
        );
        assert_eq!(parse_version(&json!({"kind": "Status"})), None);
    }
}
