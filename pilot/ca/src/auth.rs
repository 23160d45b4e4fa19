//! Who is calling: credentials in, (namespace, service account) out.
//!
//! ```text
//!  authorization: Bearer <token>
//!        │
//!        ▼
//!  Authenticators ──► LocalTokenAuthenticator   (local mesh: HMAC token from the runner)
//!                 └─► TokenReviewAuthenticator  (Kubernetes: TokenReview via a TokenReviewer)
//! ```
//!
//! The Kubernetes side stays kube-free here: the Kubernetes crate implements
//! [`TokenReviewer`] (one `TokenReview` call) and this module turns its
//! answer into a [`Caller`], checking the audience and the
//! `system:serviceaccount:<ns>:<sa>` user name, as istiod does.

use std::sync::Arc;

/// An authenticated caller: the identity a certificate may carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
    /// Pod name, when the credential names one (local tokens do).
    pub pod: Option<String>,
}

/// Why a credential was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `authorization: Bearer` metadata.
    #[error("no credential: send the token as `authorization: Bearer <token>`")]
    Missing,
    /// The token is malformed, forged or for the wrong audience.
    #[error("{0}")]
    Invalid(String),
    /// The token expired.
    #[error("the token expired at {at} (Unix seconds)")]
    Expired {
        /// Expiry.
        at: i64,
    },
    /// No authenticator can check this kind of token.
    #[error("no token reviewer configured: pilot cannot check Kubernetes service-account tokens (run pilot with Kubernetes access, or use --local-token-key in the local mesh)")]
    NoReviewer,
    /// The reviewer could not be reached.
    #[error("token review failed: {0}")]
    Review(String),
}

/// Checks a bearer token.
#[tonic::async_trait]
pub trait Authenticator: Send + Sync {
    /// For logs and errors.
    fn name(&self) -> &'static str;
    /// The caller the token proves, or why not.
    async fn authenticate(&self, token: &str) -> Result<Caller, AuthError>;
}

/// Tries authenticators in order; the first that accepts wins. When all
/// refuse, the most specific refusal is returned (a forged local token beats
/// "no reviewer").
#[derive(Clone, Default)]
pub struct Authenticators(Vec<Arc<dyn Authenticator>>);

impl Authenticators {
    /// No authenticator yet: every token is refused with [`AuthError::NoReviewer`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one at the end.
    pub fn with(mut self, a: Arc<dyn Authenticator>) -> Self {
        self.0.push(a);
        self
    }

    /// Checks `token` against each authenticator.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, AuthError> {
        let mut best = AuthError::NoReviewer;
        for a in &self.0 {
            match a.authenticate(token).await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::debug!(authenticator = a.name(), error = %e, "credential refused");
                    if best == AuthError::NoReviewer || matches!(e, AuthError::Expired { .. }) {
                        best = e;
                    }
                }
            }
        }
        Err(best)
    }
}

/// What a TokenReview says about a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenReviewStatus {
    /// `status.authenticated`.
    pub authenticated: bool,
    /// `status.user.username`, e.g. `system:serviceaccount:default:reviews`.
    pub username: String,
    /// `status.audiences`.
    pub audiences: Vec<String>,
    /// `status.error`.
    pub error: String,
}

/// One TokenReview call (`authentication.k8s.io/v1`), implemented by the
/// Kubernetes crate; pilot needs `system:auth-delegator` for it.
#[tonic::async_trait]
pub trait TokenReviewer: Send + Sync {
    /// Reviews `token` for `audiences`.
    async fn review(&self, token: &str, audiences: &[String]) -> Result<TokenReviewStatus, String>;
}

/// The audience Istio's agents request for their projected token.
pub const ISTIO_CA_AUDIENCE: &str = "istio-ca";

/// Kubernetes service-account tokens, checked by a [`TokenReviewer`].
pub struct TokenReviewAuthenticator {
    reviewer: Option<Arc<dyn TokenReviewer>>,
    audiences: Vec<String>,
}

impl TokenReviewAuthenticator {
    /// Reviews with `reviewer` (None: refuses with [`AuthError::NoReviewer`]).
    pub fn new(reviewer: Option<Arc<dyn TokenReviewer>>) -> Self {
        Self {
            reviewer,
            audiences: vec![ISTIO_CA_AUDIENCE.to_string()],
        }
    }
}

#[tonic::async_trait]
impl Authenticator for TokenReviewAuthenticator {
    fn name(&self) -> &'static str {
        "token-review"
    }

    async fn authenticate(&self, token: &str) -> Result<Caller, AuthError> {
        let Some(reviewer) = &self.reviewer else {
            return Err(AuthError::NoReviewer);
        };
        let status = reviewer
            .review(token, &self.audiences)
            .await
            .map_err(AuthError::Review)?;
        caller_from_review(&status, &self.audiences)
    }
}

/// Interprets a TokenReview status (pure, so it is tested without a cluster).
pub fn caller_from_review(
    status: &TokenReviewStatus,
    audiences: &[String],
) -> Result<Caller, AuthError> {
    if !status.authenticated {
        return Err(AuthError::Invalid(format!(
            "the API server did not authenticate the token: {}",
            status.error
        )));
    }
    if !status.audiences.is_empty() && !status.audiences.iter().any(|a| audiences.contains(a)) {
        return Err(AuthError::Invalid(format!(
            "the token's audiences {:?} do not include {audiences:?}",
            status.audiences
        )));
    }
    match status.username.split(':').collect::<Vec<_>>().as_slice() {
        ["system", "serviceaccount", ns, sa] if !ns.is_empty() && !sa.is_empty() => Ok(Caller {
            namespace: ns.to_string(),
            service_account: sa.to_string(),
            pod: None,
        }),
        _ => Err(AuthError::Invalid(format!(
            "{:?} is not a service account (system:serviceaccount:<ns>:<sa>)",
            status.username
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(TokenReviewStatus);

    #[tonic::async_trait]
    impl TokenReviewer for Fixed {
        async fn review(&self, _: &str, _: &[String]) -> Result<TokenReviewStatus, String> {
            Ok(self.0.clone())
        }
    }

    fn status(user: &str, aud: &[&str], ok: bool) -> TokenReviewStatus {
        TokenReviewStatus {
            authenticated: ok,
            username: user.into(),
            audiences: aud.iter().map(|s| s.to_string()).collect(),
            error: if ok {
                String::new()
            } else {
                "token expired".into()
            },
        }
    }

    #[tokio::test]
    async fn token_review_maps_service_accounts_and_refuses_the_rest() {
        let a = TokenReviewAuthenticator::new(Some(Arc::new(Fixed(status(
            "system:serviceaccount:default:reviews",
            &["istio-ca"],
            true,
        )))));
        let c = a.authenticate("t").await.unwrap();
        assert_eq!(
            (c.namespace.as_str(), c.service_account.as_str()),
            ("default", "reviews")
        );
        let aud = vec![ISTIO_CA_AUDIENCE.to_string()];
        assert!(caller_from_review(
            &status("system:serviceaccount:default:reviews", &["other"], true),
            &aud
        )
        .is_err());
        assert!(caller_from_review(&status("alice", &[], true), &aud)
            .unwrap_err()
            .to_string()
            .contains("not a service account"));
        assert!(
            caller_from_review(&status("system:serviceaccount:a:b", &[], false), &aud)
                .unwrap_err()
                .to_string()
                .contains("token expired")
        );
    }

    #[tokio::test]
    async fn without_a_reviewer_the_error_says_so() {
        let err = Authenticators::new()
            .with(Arc::new(TokenReviewAuthenticator::new(None)))
            .authenticate("t")
            .await
            .unwrap_err();
        assert_eq!(err, AuthError::NoReviewer);
        assert!(err.to_string().contains("no token reviewer configured"));
    }
}
