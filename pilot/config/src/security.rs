//! `security.istio.io` PeerAuthentication, RequestAuthentication and
//! AuthorizationPolicy (v1 and v1beta1 share these specs).
//!
//! Enumerations users spell (`mtls.mode`, `action`) stay strings here: the
//! registry's validation names the field and lists the accepted values, which
//! is clearer than a serde "unknown variant" error deep in a path. Ports in
//! `portLevelMtls` are map keys (numbers in YAML, strings in JSON); in
//! `to.operation.ports` Istio itself types them as strings.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A workload selector: `matchLabels` only, as Istio's `WorkloadSelector`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WorkloadSelector {
    /// Pod labels the workload must carry.
    pub match_labels: BTreeMap<String, String>,
}

/// PeerAuthentication spec: which mTLS mode a workload's inbound side accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PeerAuthenticationSpec {
    /// Workloads it applies to (absent: the whole namespace, or the mesh in
    /// the root namespace).
    pub selector: Option<WorkloadSelector>,
    /// Mode for every port.
    pub mtls: Option<PeerMtls>,
    /// Mode per target (container) port; needs a selector.
    pub port_level_mtls: BTreeMap<u32, PeerMtls>,
}

/// `mtls: {mode: STRICT}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PeerMtls {
    /// `UNSET`, `DISABLE`, `PERMISSIVE` or `STRICT`.
    pub mode: Option<String>,
}

/// AuthorizationPolicy spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AuthorizationPolicySpec {
    /// Workloads it applies to (absent: the namespace, or the mesh in the
    /// root namespace).
    pub selector: Option<WorkloadSelector>,
    /// `ALLOW` (default), `DENY`; `AUDIT` and `CUSTOM` are not served.
    pub action: Option<String>,
    /// Rules; an ALLOW policy without rules allows nothing.
    pub rules: Vec<Rule>,
    /// The external authorizer of a CUSTOM policy (not served).
    pub provider: Option<ExtensionProvider>,
    /// Gateway/waypoint attachment (not served: sidecars use `selector`).
    pub target_ref: Option<PolicyTargetReference>,
    /// See `target_ref`.
    pub target_refs: Vec<PolicyTargetReference>,
}

/// `targetRef`: the Gateway API object a policy attaches to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PolicyTargetReference {
    /// API group (`gateway.networking.k8s.io`).
    pub group: String,
    /// Kind (`Gateway`, `Service`, ...).
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace (defaults to the policy's).
    pub namespace: Option<String>,
}

/// `provider: {name: ...}` of a CUSTOM policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ExtensionProvider {
    /// Provider name from mesh config.
    pub name: String,
}

/// One rule: `from` (any), `to` (any) and `when` (all) must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Rule {
    /// Sources; empty matches any source.
    pub from: Vec<RuleFrom>,
    /// Operations; empty matches any operation.
    pub to: Vec<RuleTo>,
    /// Extra conditions, all required.
    pub when: Vec<Condition>,
}

/// `from: [{source: ...}]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RuleFrom {
    /// The source.
    pub source: Option<Source>,
}

/// Who is calling; the non-empty fields must all match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Source {
    /// Peer identities `<trust-domain>/ns/<ns>/sa/<sa>` (prefix or suffix `*`).
    pub principals: Vec<String>,
    /// Negated `principals`.
    pub not_principals: Vec<String>,
    /// JWT principals `<iss>/<sub>` (prefix or suffix `*`).
    pub request_principals: Vec<String>,
    /// Negated `request_principals`.
    pub not_request_principals: Vec<String>,
    /// Peer namespaces (from the peer's identity).
    pub namespaces: Vec<String>,
    /// Negated `namespaces`.
    pub not_namespaces: Vec<String>,
    /// Peer address CIDRs (`1.2.3.4` or `1.2.3.0/24`).
    pub ip_blocks: Vec<String>,
    /// Negated `ip_blocks`.
    pub not_ip_blocks: Vec<String>,
    /// Original client CIDRs (X-Forwarded-For aware).
    pub remote_ip_blocks: Vec<String>,
    /// Negated `remote_ip_blocks`.
    pub not_remote_ip_blocks: Vec<String>,
}

/// `to: [{operation: ...}]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RuleTo {
    /// The operation.
    pub operation: Option<Operation>,
}

/// What is being called; the non-empty fields must all match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Operation {
    /// `Host`/`:authority` values (HTTP only).
    pub hosts: Vec<String>,
    /// Negated `hosts`.
    pub not_hosts: Vec<String>,
    /// Destination ports, as strings (`"8080"`).
    pub ports: Vec<String>,
    /// Negated `ports`.
    pub not_ports: Vec<String>,
    /// HTTP methods (HTTP only).
    pub methods: Vec<String>,
    /// Negated `methods`.
    pub not_methods: Vec<String>,
    /// Paths, exact or with a prefix/suffix `*` (HTTP only).
    pub paths: Vec<String>,
    /// Negated `paths`.
    pub not_paths: Vec<String>,
}

/// `when: [{key: request.headers[x-token], values: [...]}]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Condition {
    /// Attribute: `request.headers[<name>]`, `source.ip`, `source.namespace`,
    /// `source.principal`, `destination.port`, ...
    pub key: String,
    /// Accepted values (any).
    pub values: Vec<String>,
    /// Rejected values.
    pub not_values: Vec<String>,
}

/// RequestAuthentication spec: which end-user JWTs a workload accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RequestAuthenticationSpec {
    /// Workloads it applies to (absent: the namespace, or the mesh in the
    /// root namespace).
    pub selector: Option<WorkloadSelector>,
    /// Gateway/waypoint attachment (not served: sidecars and gateways use
    /// `selector`).
    pub target_ref: Option<PolicyTargetReference>,
    /// See `target_ref`.
    pub target_refs: Vec<PolicyTargetReference>,
    /// The issuers it accepts, one rule each.
    pub jwt_rules: Vec<JwtRule>,
}

/// One JWT issuer and how to find and check its tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct JwtRule {
    /// The `iss` a token must carry (required).
    pub issuer: String,
    /// Accepted `aud` values (empty: any audience).
    pub audiences: Vec<String>,
    /// Where pilot fetches the JSON Web Key Set.
    pub jwks_uri: Option<String>,
    /// The JSON Web Key Set itself (JSON text).
    pub jwks: Option<String>,
    /// Headers the token may come in (default `Authorization: Bearer`).
    pub from_headers: Vec<JwtHeader>,
    /// Query parameters the token may come in.
    pub from_params: Vec<String>,
    /// Cookies the token may come in.
    pub from_cookies: Vec<String>,
    /// Header to write the verified payload to (base64url JSON).
    pub output_payload_to_header: Option<String>,
    /// Keep the token in the request forwarded upstream.
    pub forward_original_token: bool,
    /// Claims copied to request headers.
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// Timeout of the JWKS fetch (Go duration, default 5s).
    pub timeout: Option<String>,
}

/// `fromHeaders: [{name: x-jwt, prefix: "Bearer "}]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct JwtHeader {
    /// Header name.
    pub name: String,
    /// Prefix before the token (`Bearer `).
    pub prefix: Option<String>,
}

/// `outputClaimToHeaders: [{header: x-sub, claim: sub}]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ClaimToHeader {
    /// Header name.
    pub header: String,
    /// Claim name (top-level; `a.b` for nested).
    pub claim: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Resource;

    #[test]
    fn peer_authentication_parses_istio_shape() {
        let yaml = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: foo}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  mtls: {mode: STRICT}\n  portLevelMtls:\n    8080: {mode: DISABLE}\n";
        let pa: Resource<PeerAuthenticationSpec> = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(pa.spec.selector.unwrap().match_labels["app"], "reviews");
        assert_eq!(pa.spec.mtls.unwrap().mode.as_deref(), Some("STRICT"));
        assert_eq!(
            pa.spec.port_level_mtls[&8080].mode.as_deref(),
            Some("DISABLE")
        );
        // The Kubernetes source hands JSON, where map keys are strings.
        let json = serde_json::json!({"portLevelMtls": {"9080": {"mode": "PERMISSIVE"}}});
        let pa: PeerAuthenticationSpec = serde_json::from_value(json).unwrap();
        assert_eq!(
            pa.port_level_mtls[&9080].mode.as_deref(),
            Some("PERMISSIVE")
        );
    }

    #[test]
    fn authorization_policy_parses_istio_shape() {
        let yaml = r#"
selector: {matchLabels: {app: httpbin}}
action: ALLOW
rules:
- from:
  - source: {principals: ["cluster.local/ns/default/sa/sleep"], namespaces: [test], ipBlocks: [10.0.0.0/8]}
  to:
  - operation: {methods: [GET], paths: ["/info*"], ports: ["8080"]}
  when:
  - {key: "request.headers[version]", values: [v1], notValues: [v2]}
"#;
        let ap: AuthorizationPolicySpec = serde_saphyr::from_str(yaml).unwrap();
        let r = &ap.rules[0];
        assert_eq!(
            r.from[0].source.as_ref().unwrap().principals,
            ["cluster.local/ns/default/sa/sleep"]
        );
        assert_eq!(r.to[0].operation.as_ref().unwrap().ports, ["8080"]);
        assert_eq!(r.when[0].not_values, ["v2"]);
        let empty: AuthorizationPolicySpec = serde_saphyr::from_str("{}").unwrap();
        assert!(empty.rules.is_empty() && empty.action.is_none());
    }

    #[test]
    fn unknown_security_fields_are_errors_naming_them() {
        let err = serde_saphyr::from_str::<AuthorizationPolicySpec>(
            "rules:\n- from:\n  - source: {principal: [x]}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("principal"), "{err}");
        let err = serde_saphyr::from_str::<PeerAuthenticationSpec>("mtls: {mod: STRICT}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mod"), "{err}");
    }
}
