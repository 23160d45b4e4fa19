//! Checks the agents' projected service-account tokens with a TokenReview,
//! as istiod does (pilot's ServiceAccount needs `system:auth-delegator`).
//!
//! ```text
//!  agent ──Bearer <token>──► rudder-ca TokenReviewAuthenticator ──► KubeTokenReviewer::review
//!                                                                   │ POST authentication.k8s.io/v1 tokenreviews
//!                                                                   │   spec: {token, audiences: ["istio-ca"]}
//!                              Caller{ns, sa} ◄── caller_from_review ◄── status: {authenticated, user.username, audiences}
//! ```
//!
//! This side only asks; the verdict (authenticated, audience, the
//! `system:serviceaccount:<ns>:<sa>` user name) is read by
//! `rudder_ca::auth::caller_from_review`, so both token kinds are judged in
//! one place.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::{api::PostParams, Api, Client};
use rudder_ca::auth::{TokenReviewStatus, TokenReviewer};

/// Why a review could not be made (the token was never judged).
#[derive(Debug, thiserror::Error)]
pub enum TokenReviewError {
    /// The API server refused or failed the request.
    #[error("TokenReview request to the API server failed: {0} (pilot's ServiceAccount needs the system:auth-delegator ClusterRole)")]
    Api(kube::Error),
    /// The API server answered without a status.
    #[error("the API server answered the TokenReview without a status")]
    NoStatus,
}

/// A [`TokenReviewer`] backed by the API server.
#[derive(Clone)]
pub struct KubeTokenReviewer {
    api: Api<TokenReview>,
}

impl KubeTokenReviewer {
    /// Reviews through `client` (TokenReview is cluster-scoped).
    pub fn new(client: Client) -> Self {
        Self {
            api: Api::all(client),
        }
    }

    /// One TokenReview: `token` for `audiences`.
    pub async fn review_token(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<TokenReviewStatus, TokenReviewError> {
        let request = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: Some(audiences.to_vec()),
            },
            ..TokenReview::default()
        };
        let answer = self
            .api
            .create(&PostParams::default(), &request)
            .await
            .map_err(TokenReviewError::Api)?;
        let status = answer.status.ok_or(TokenReviewError::NoStatus)?;
        Ok(TokenReviewStatus {
            authenticated: status.authenticated.unwrap_or(false),
            username: status.user.and_then(|u| u.username).unwrap_or_default(),
            audiences: status.audiences.unwrap_or_default(),
            error: status.error.unwrap_or_default(),
        })
    }
}

#[tonic::async_trait]
impl TokenReviewer for KubeTokenReviewer {
    async fn review(&self, token: &str, audiences: &[String]) -> Result<TokenReviewStatus, String> {
        self.review_token(token, audiences).await.map_err(|error| {
            tracing::warn!(%error, "token review failed");
            error.to_string()
        })
    }
}
