//! RequestAuthentication → Envoy `jwt_authn`, as Istio builds it.
//!
//! ```text
//!  inbound HCM:  [ jwt_authn ][ rbac (DENY) ][ rbac (ALLOW) ] fault cors router
//! ```
//!
//! One provider per `jwtRules` entry of every RequestAuthentication that
//! applies to the workload (`origins-<i>`, Istio's names), each with its keys
//! inlined (`local_jwks`): inline `jwks` as written, a `jwksUri` as pilot
//! fetched it, or, when pilot never fetched it, [`FAKE_JWKS`] (a key whose
//! private half nobody has, Istio's `FakeJwks`): every token of that issuer
//! then fails, never passes unchecked. The requirement is Istio's: a request
//! without a token passes (authorization decides), a request with a token
//! must pass some provider (else 401). Every provider writes the verified
//! payload to the filter's dynamic metadata under [`PAYLOAD_KEY`], where the
//! RBAC filter reads `iss`, `sub`, `aud`, `azp` and other claims
//! (`requestPrincipals`, `request.auth.*`).

use std::collections::BTreeMap;

use envoy_types::pb::{
    envoy::{
        config::{
            core::v3::{data_source, DataSource},
            route::v3::{route_match::PathSpecifier, RouteMatch},
        },
        extensions::filters::{
            http::jwt_authn::v3::{
                jwt_provider::{JwksSourceSpecifier, NormalizePayload},
                jwt_requirement::RequiresType,
                requirement_rule::RequirementType,
                JwtAuthentication, JwtClaimToHeader, JwtHeader, JwtProvider, JwtRequirement,
                JwtRequirementAndList, JwtRequirementOrList, RequirementRule,
            },
            network::http_connection_manager::v3::{http_filter, HttpFilter},
        },
    },
    google::protobuf::Empty,
};
use rudder_model::{JwksSource, JwtRule};

use crate::common::any;

/// Envoy's name of the JWT authentication HTTP filter (also the dynamic
/// metadata namespace it writes to).
pub(crate) const JWT_AUTHN_FILTER: &str = "envoy.filters.http.jwt_authn";

/// Where each provider puts the verified payload in the filter's metadata.
pub(crate) const PAYLOAD_KEY: &str = "payload";

/// The key set a rule gets while its `jwksUri` was never fetched: a P-256
/// public key whose private key was discarded when it was made, so no token
/// verifies (Istio serves a fake key the same way).
pub const FAKE_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","kid":"rudder-fake-jwks","x":"gflKVCKvDu6D2bWid3679ynNPwMVCntOh16yiEczgBo","y":"OPxBOLXSAiRueATIWzlueuhgz2KTsiDT9jRzEVvXBrE"}]}"#;

/// A rule with the key set it is served with.
pub(crate) type ResolvedRule<'a> = (&'a JwtRule, &'a str);

/// The key set of `rule`: inline, fetched, or [`FAKE_JWKS`].
pub(crate) fn resolve<'a>(rule: &'a JwtRule, fetched: &'a BTreeMap<String, String>) -> &'a str {
    match &rule.jwks {
        JwksSource::Inline(j) => j,
        JwksSource::Uri(u) => fetched.get(u).map_or(FAKE_JWKS, String::as_str),
    }
}

/// The `jwt_authn` filter for these rules (`None` when there are none).
pub(crate) fn http_filter(rules: &[ResolvedRule<'_>]) -> Option<HttpFilter> {
    if rules.is_empty() {
        return None;
    }
    let mut providers = std::collections::HashMap::new();
    let mut inner_and = Vec::new();
    let mut outer_or = Vec::new();
    for (i, (rule, jwks)) in rules.iter().enumerate() {
        let name = format!("origins-{i}");
        providers.insert(name.clone(), provider(rule, jwks));
        let by_name = JwtRequirement {
            requires_type: Some(RequiresType::ProviderName(name)),
        };
        inner_and.push(JwtRequirement {
            requires_type: Some(RequiresType::RequiresAny(JwtRequirementOrList {
                requirements: vec![
                    by_name.clone(),
                    JwtRequirement {
                        requires_type: Some(RequiresType::AllowMissing(Empty {})),
                    },
                ],
            })),
        });
        outer_or.push(by_name);
    }
    // One provider: {provider OR allow_missing}. Several (Istio): any one
    // provider, OR all of {provider OR allow_missing} (a token present in a
    // provider's location must be valid; providers sharing a location pass
    // through the first branch).
    let requires = if inner_and.len() == 1 {
        inner_and.remove(0)
    } else {
        outer_or.push(JwtRequirement {
            requires_type: Some(RequiresType::RequiresAll(JwtRequirementAndList {
                requirements: inner_and,
            })),
        });
        JwtRequirement {
            requires_type: Some(RequiresType::RequiresAny(JwtRequirementOrList {
                requirements: outer_or,
            })),
        }
    };
    let config = JwtAuthentication {
        providers,
        rules: vec![RequirementRule {
            r#match: Some(RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".into())),
                ..Default::default()
            }),
            requirement_type: Some(RequirementType::Requires(requires)),
        }],
        bypass_cors_preflight: true,
        ..Default::default()
    };
    Some(HttpFilter {
        name: JWT_AUTHN_FILTER.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(&config))),
        ..Default::default()
    })
}

fn provider(rule: &JwtRule, jwks: &str) -> JwtProvider {
    JwtProvider {
        issuer: rule.issuer.clone(),
        audiences: rule.audiences.clone(),
        forward: rule.forward_original_token,
        from_headers: rule
            .from_headers
            .iter()
            .map(|(name, prefix)| JwtHeader {
                name: name.clone(),
                value_prefix: prefix.clone(),
            })
            .collect(),
        from_params: rule.from_params.clone(),
        from_cookies: rule.from_cookies.clone(),
        forward_payload_header: rule.output_payload_to_header.clone().unwrap_or_default(),
        claim_to_headers: rule
            .output_claim_to_headers
            .iter()
            .map(|(header, claim)| JwtClaimToHeader {
                header_name: header.clone(),
                claim_name: claim.clone(),
                ..Default::default()
            })
            .collect(),
        payload_in_metadata: PAYLOAD_KEY.into(),
        // As Istio: `scope` and `permission` strings become lists, so a
        // claims condition matches one scope of several.
        normalize_payload_in_metadata: Some(NormalizePayload {
            space_delimited_claims: vec!["scope".into(), "permission".into()],
        }),
        jwks_source_specifier: Some(JwksSourceSpecifier::LocalJwks(DataSource {
            specifier: Some(data_source::Specifier::InlineString(jwks.to_string())),
            ..Default::default()
        })),
        ..Default::default()
    }
}
