//! AuthorizationPolicy → Envoy RBAC, as Istio builds it.
//!
//! ```text
//!  inbound HCM:  [ rbac (DENY policies) ][ rbac (ALLOW policies) ] fault router
//!  inbound TCP:  [ rbac (DENY policies) ][ rbac (ALLOW policies) ] tcp_proxy
//! ```
//!
//! DENY is evaluated first; an ALLOW filter exists as soon as one ALLOW policy
//! applies (so an ALLOW policy without rules denies everything); with no
//! policy there is no filter and everything is allowed. Each rule becomes one
//! Envoy policy named `ns[<ns>]-policy[<name>]-rule[<i>]`, so
//! `/config_dump` shows which policy guards which chain. Sources become
//! principals (peer certificate URI SAN, addresses), operations and HTTP
//! conditions become permissions. On TCP, Istio drops an ALLOW rule that uses
//! HTTP-only fields (it can never match) and drops the HTTP-only fields of a
//! DENY rule (it denies more): so does this module.

use envoy_types::pb::envoy::{
    config::{
        core::v3::CidrRange,
        listener::v3::Filter,
        rbac::v3::{
            permission, principal, rbac::Action, MetadataSource, Permission, Policy, Principal,
            Rbac, SourcedMetadata,
        },
        route::v3::{header_matcher::HeaderMatchSpecifier, HeaderMatcher},
    },
    extensions::filters::{
        http::rbac::v3::Rbac as HttpRbac,
        network::{
            http_connection_manager::v3::{http_filter, HttpFilter},
            rbac::v3::Rbac as NetworkRbac,
        },
    },
    r#type::matcher::v3::{
        list_matcher,
        metadata_matcher::{path_segment, PathSegment},
        path_matcher,
        string_matcher::MatchPattern,
        value_matcher, ListMatcher, MetadataMatcher, OrMatcher, PathMatcher, RegexMatcher,
        StringMatcher, ValueMatcher,
    },
};
use rudder_model::{
    AuthzAction, AuthzPolicy, AuthzRule, Cidr, Condition, OperationMatch, Pattern, PrincipalMatch,
    SourceMatch, Values,
};

use crate::{
    common::{any, network_filter, u32v},
    jwt::{JWT_AUTHN_FILTER, PAYLOAD_KEY},
};

/// Envoy's name of the HTTP RBAC filter.
pub(crate) const HTTP_RBAC_FILTER: &str = "envoy.filters.http.rbac";
/// Envoy's name of the network RBAC filter.
pub(crate) const NETWORK_RBAC_FILTER: &str = "envoy.filters.network.rbac";

/// The RBAC HTTP filters for the policies applying to a workload (DENY first).
pub(crate) fn http_filters(policies: &[&AuthzPolicy]) -> Vec<HttpFilter> {
    rbac_configs(policies, false)
        .into_iter()
        .map(|(_, rules)| HttpFilter {
            name: HTTP_RBAC_FILTER.into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(any(&HttpRbac {
                rules: Some(rules),
                ..Default::default()
            }))),
            ..Default::default()
        })
        .collect()
}

/// The RBAC network filters for a TCP chain (DENY first).
pub(crate) fn network_filters(policies: &[&AuthzPolicy]) -> Vec<Filter> {
    rbac_configs(policies, true)
        .into_iter()
        .map(|(action, rules)| {
            let stat_prefix = match action {
                AuthzAction::Deny => "tcp.rbac_deny.",
                AuthzAction::Allow => "tcp.rbac_allow.",
                AuthzAction::Audit => "tcp.rbac_audit.",
            };
            network_filter(
                NETWORK_RBAC_FILTER,
                &NetworkRbac {
                    rules: Some(rules),
                    stat_prefix: stat_prefix.into(),
                    ..Default::default()
                },
            )
        })
        .collect()
}

fn rbac_configs(policies: &[&AuthzPolicy], tcp: bool) -> Vec<(AuthzAction, Rbac)> {
    // Istio's order: AUDIT (logs whatever follows decides), DENY, ALLOW.
    [AuthzAction::Audit, AuthzAction::Deny, AuthzAction::Allow]
        .into_iter()
        .filter(|a| policies.iter().any(|p| p.action == *a))
        .map(|action| {
            let mut rules = Rbac {
                action: match action {
                    AuthzAction::Allow => Action::Allow,
                    AuthzAction::Deny => Action::Deny,
                    AuthzAction::Audit => Action::Log,
                } as i32,
                ..Default::default()
            };
            for p in policies.iter().filter(|p| p.action == action) {
                for (i, r) in p.rules.iter().enumerate() {
                    if tcp && action != AuthzAction::Deny && r.is_http_only() {
                        continue;
                    }
                    rules.policies.insert(p.rule_name(i), policy(r, tcp));
                }
            }
            (action, rules)
        })
        .collect()
}

fn policy(r: &AuthzRule, tcp: bool) -> Policy {
    let mut permissions = Vec::new();
    let mut principals = Vec::new();
    if !r.to.is_empty() {
        permissions.push(or_rules(r.to.iter().map(|o| operation(o, tcp)).collect()));
    }
    if !r.from.is_empty() {
        principals.push(or_ids(r.from.iter().map(|s| source(s, tcp)).collect()));
    }
    for c in &r.when {
        match c {
            Condition::RequestHeader(name, v) if !tcp => {
                permissions.extend(values(
                    v,
                    |p| Permission {
                        rule: Some(permission::Rule::Header(header(name, p))),
                    },
                    or_rules,
                    not_rule,
                ));
            }
            Condition::RequestHeader(..) => {}
            Condition::DestinationPort(v) => {
                permissions.extend(values(v, |p| port(*p), or_rules, not_rule))
            }
            Condition::DestinationIp(v) => permissions.extend(values(
                v,
                |c| Permission {
                    rule: Some(permission::Rule::DestinationIp(cidr(c))),
                },
                or_rules,
                not_rule,
            )),
            Condition::ConnectionSni(v) => permissions.extend(values(
                v,
                |p| Permission {
                    rule: Some(permission::Rule::RequestedServerName(matcher(p))),
                },
                or_rules,
                not_rule,
            )),
            Condition::SourceIp(v) => principals.extend(values(v, direct_ip, or_ids, not_id)),
            Condition::RemoteIp(v) => principals.extend(values(v, remote_ip, or_ids, not_id)),
            Condition::SourceNamespace(v) => {
                principals.extend(values(v, namespace, or_ids, not_id))
            }
            Condition::SourcePrincipal(v) => principals.extend(values(v, peer, or_ids, not_id)),
            // JWT attributes are HTTP only: dropped on TCP as the other
            // HTTP-only fields (the rule itself is dropped for ALLOW).
            _ if tcp => {}
            Condition::RequestPrincipal(v) => {
                principals.extend(values(v, request_principal, or_ids, not_id))
            }
            Condition::RequestAudiences(v) => {
                principals.extend(values(v, |p| jwt_claim(&["aud"], p), or_ids, not_id))
            }
            Condition::RequestPresenter(v) => {
                principals.extend(values(v, |p| jwt_claim(&["azp"], p), or_ids, not_id))
            }
            Condition::RequestClaim(path, v) => {
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                principals.extend(values(v, |p| jwt_claim(&path, p), or_ids, not_id))
            }
        }
    }
    Policy {
        permissions: vec![and_rules(permissions)],
        principals: vec![and_ids(principals)],
        ..Default::default()
    }
}

fn operation(o: &OperationMatch, tcp: bool) -> Permission {
    let mut all = Vec::new();
    all.extend(values(&o.ports, |p| port(*p), or_rules, not_rule));
    if !tcp {
        all.extend(values(
            &o.hosts,
            |h| Permission {
                rule: Some(permission::Rule::Header(host(h))),
            },
            or_rules,
            not_rule,
        ));
        all.extend(values(
            &o.methods,
            |m| Permission {
                rule: Some(permission::Rule::Header(header(
                    ":method",
                    &Pattern::Exact(m.clone()),
                ))),
            },
            or_rules,
            not_rule,
        ));
        all.extend(values(&o.paths, path, or_rules, not_rule));
    }
    and_rules(all)
}

fn source(s: &SourceMatch, tcp: bool) -> Principal {
    let mut all = Vec::new();
    all.extend(values(&s.principals, peer, or_ids, not_id));
    if !tcp {
        all.extend(values(
            &s.request_principals,
            request_principal,
            or_ids,
            not_id,
        ));
    }
    all.extend(values(&s.namespaces, namespace, or_ids, not_id));
    all.extend(values(&s.ip_blocks, direct_ip, or_ids, not_id));
    all.extend(values(&s.remote_ip_blocks, remote_ip, or_ids, not_id));
    and_ids(all)
}

/// `values` ORed, `not_values` ORed and negated: the (0-2) matchers to AND.
fn values<T, M>(
    v: &Values<T>,
    one: impl Fn(&T) -> M,
    or: fn(Vec<M>) -> M,
    not: fn(M) -> M,
) -> Vec<M> {
    let mut out = Vec::new();
    if !v.values.is_empty() {
        out.push(or(v.values.iter().map(&one).collect()));
    }
    if !v.not_values.is_empty() {
        out.push(not(or(v.not_values.iter().map(&one).collect())));
    }
    out
}

fn and_rules(mut rules: Vec<Permission>) -> Permission {
    let rule = match rules.len() {
        0 => permission::Rule::Any(true),
        1 => return rules.remove(0),
        _ => permission::Rule::AndRules(permission::Set { rules }),
    };
    Permission { rule: Some(rule) }
}

fn or_rules(mut rules: Vec<Permission>) -> Permission {
    if rules.len() == 1 {
        return rules.remove(0);
    }
    Permission {
        rule: Some(permission::Rule::OrRules(permission::Set { rules })),
    }
}

fn not_rule(p: Permission) -> Permission {
    Permission {
        rule: Some(permission::Rule::NotRule(Box::new(p))),
    }
}

fn and_ids(mut ids: Vec<Principal>) -> Principal {
    let id = match ids.len() {
        0 => principal::Identifier::Any(true),
        1 => return ids.remove(0),
        _ => principal::Identifier::AndIds(principal::Set { ids }),
    };
    Principal {
        identifier: Some(id),
    }
}

fn or_ids(mut ids: Vec<Principal>) -> Principal {
    if ids.len() == 1 {
        return ids.remove(0);
    }
    Principal {
        identifier: Some(principal::Identifier::OrIds(principal::Set { ids })),
    }
}

fn not_id(p: Principal) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::NotId(Box::new(p))),
    }
}

fn port(p: u16) -> Permission {
    Permission {
        rule: Some(permission::Rule::DestinationPort(u32::from(p))),
    }
}

fn matcher(p: &Pattern) -> StringMatcher {
    let pattern = match p {
        Pattern::Any => MatchPattern::SafeRegex(regex(".+")),
        Pattern::Exact(s) => MatchPattern::Exact(s.clone()),
        Pattern::Prefix(s) => MatchPattern::Prefix(s.clone()),
        Pattern::Suffix(s) => MatchPattern::Suffix(s.clone()),
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ..Default::default()
    }
}

fn regex(r: &str) -> RegexMatcher {
    RegexMatcher {
        regex: r.to_string(),
        ..Default::default()
    }
}

fn header(name: &str, p: &Pattern) -> HeaderMatcher {
    let spec = match p {
        Pattern::Any => HeaderMatchSpecifier::PresentMatch(true),
        p => HeaderMatchSpecifier::StringMatch(matcher(p)),
    };
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(spec),
        ..Default::default()
    }
}

/// Hosts compare case-insensitively, as Istio does.
fn host(p: &Pattern) -> HeaderMatcher {
    let spec = match p {
        Pattern::Any => HeaderMatchSpecifier::PresentMatch(true),
        p => HeaderMatchSpecifier::StringMatch(StringMatcher {
            ignore_case: true,
            ..matcher(p)
        }),
    };
    HeaderMatcher {
        name: ":authority".into(),
        header_match_specifier: Some(spec),
        ..Default::default()
    }
}

fn path(p: &Pattern) -> Permission {
    let rule = match p {
        Pattern::Any => permission::Rule::Any(true),
        p => permission::Rule::UrlPath(PathMatcher {
            rule: Some(path_matcher::Rule::Path(matcher(p))),
        }),
    };
    Permission { rule: Some(rule) }
}

fn cidr(c: &Cidr) -> CidrRange {
    CidrRange {
        address_prefix: c.address.to_string(),
        prefix_len: u32v(u32::from(c.prefix_len)),
    }
}

fn direct_ip(c: &Cidr) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::DirectRemoteIp(cidr(c))),
    }
}

fn remote_ip(c: &Cidr) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::RemoteIp(cidr(c))),
    }
}

fn authenticated(m: Option<StringMatcher>) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::Authenticated(
            principal::Authenticated { principal_name: m },
        )),
    }
}

/// The peer identity: the URI SAN of its certificate.
fn peer(p: &PrincipalMatch) -> Principal {
    let m = |pattern| StringMatcher {
        match_pattern: Some(pattern),
        ..Default::default()
    };
    authenticated(match p {
        PrincipalMatch::Any => None,
        PrincipalMatch::Exact(id) => Some(m(MatchPattern::Exact(id.to_string()))),
        PrincipalMatch::Prefix(s) => Some(m(MatchPattern::Prefix(format!("spiffe://{s}")))),
        PrincipalMatch::Suffix(s) => Some(m(MatchPattern::Suffix(s.clone()))),
    })
}

/// The peer namespace, read from its identity `spiffe://<td>/ns/<ns>/sa/<sa>`.
fn namespace(p: &Pattern) -> Principal {
    let ns = match p {
        Pattern::Any => "[^/]+".to_string(),
        Pattern::Exact(s) => escape(s),
        Pattern::Prefix(s) => format!("{}[^/]*", escape(s)),
        Pattern::Suffix(s) => format!("[^/]*{}", escape(s)),
    };
    let pattern = MatchPattern::SafeRegex(regex(&format!("spiffe://[^/]+/ns/{ns}/sa/[^/]+")));
    authenticated(Some(StringMatcher {
        match_pattern: Some(pattern),
        ..Default::default()
    }))
}

/// RE2-escapes a literal.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A claim of the verified JWT payload (`path` nested), as the `jwt_authn`
/// filter wrote it to its dynamic metadata.
fn jwt_metadata(path: &[&str], value: ValueMatcher) -> Principal {
    Principal {
        // `metadata` is deprecated for `sourced_metadata` (same matcher,
        // dynamic metadata by default).
        identifier: Some(principal::Identifier::SourcedMetadata(SourcedMetadata {
            metadata_matcher: Some(MetadataMatcher {
                filter: JWT_AUTHN_FILTER.into(),
                path: std::iter::once(PAYLOAD_KEY)
                    .chain(path.iter().copied())
                    .map(|k| PathSegment {
                        segment: Some(path_segment::Segment::Key(k.to_string())),
                    })
                    .collect(),
                value: Some(value),
                ..Default::default()
            }),
            metadata_source: MetadataSource::Dynamic as i32,
        })),
    }
}

fn string_value(m: StringMatcher) -> ValueMatcher {
    ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::StringMatch(m)),
    }
}

/// A claim that is a string matching `p`, or a list one of whose strings
/// does (`aud`, `groups`, a normalised `scope`), as Istio's
/// `MetadataListValueMatcherForJWTClaims`.
fn jwt_claim(path: &[&str], p: &Pattern) -> Principal {
    let m = matcher(p);
    jwt_metadata(
        path,
        ValueMatcher {
            match_pattern: Some(value_matcher::MatchPattern::OrMatch(OrMatcher {
                value_matchers: vec![
                    string_value(m.clone()),
                    ValueMatcher {
                        match_pattern: Some(value_matcher::MatchPattern::ListMatch(Box::new(
                            ListMatcher {
                                match_pattern: Some(list_matcher::MatchPattern::OneOf(Box::new(
                                    string_value(m),
                                ))),
                            },
                        ))),
                    },
                ],
            })),
        },
    )
}

/// `requestPrincipals` / `request.auth.principal`: `<iss>/<sub>`, split at
/// the last `/` (issuers are often URLs) into an `iss` and a `sub` matcher,
/// with Istio's reading of a leading or trailing `*`.
fn request_principal(p: &Pattern) -> Principal {
    let any = || matcher(&Pattern::Any);
    let exact = |s: &str| matcher(&Pattern::Exact(s.to_string()));
    let (iss, sub) = match p {
        Pattern::Any => (any(), any()),
        Pattern::Exact(v) => match v.rsplit_once('/') {
            Some((iss, sub)) => (exact(iss), exact(sub)),
            None => (exact(v), exact("")),
        },
        // `*suffix`: with a `/`, `*<iss-suffix>/<sub>` (or `*/<sub>`: any issuer).
        Pattern::Suffix(v) => match v.rsplit_once('/') {
            Some(("", sub)) => (any(), exact(sub)),
            Some((iss, sub)) => (matcher(&Pattern::Suffix(iss.to_string())), exact(sub)),
            None => (any(), matcher(&Pattern::Suffix(v.clone()))),
        },
        // `prefix*`: with a `/`, `<iss>/<sub-prefix>*` (or `<iss>/*`: any subject).
        Pattern::Prefix(v) => match v.rsplit_once('/') {
            Some((iss, "")) => (exact(iss), any()),
            Some((iss, sub)) => (exact(iss), matcher(&Pattern::Prefix(sub.to_string()))),
            None => (matcher(&Pattern::Prefix(v.clone())), any()),
        },
    };
    and_ids(vec![
        jwt_metadata(&["iss"], string_value(iss)),
        jwt_metadata(&["sub"], string_value(sub)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The (iss, sub) string matchers of a request principal pattern.
    fn iss_sub(p: &str) -> (StringMatcher, StringMatcher) {
        let Some(principal::Identifier::AndIds(set)) =
            request_principal(&Pattern::parse(p).unwrap()).identifier
        else {
            panic!("{p}: not an AND of iss and sub");
        };
        let m = |id: &Principal| match &id.identifier {
            Some(principal::Identifier::SourcedMetadata(s)) => {
                let mm = s.metadata_matcher.as_ref().unwrap();
                assert_eq!(mm.filter, JWT_AUTHN_FILTER);
                match &mm.value.as_ref().unwrap().match_pattern {
                    Some(value_matcher::MatchPattern::StringMatch(m)) => m.clone(),
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        };
        (m(&set.ids[0]), m(&set.ids[1]))
    }

    #[test]
    fn request_principals_split_at_the_last_slash_as_istio() {
        let any = matcher(&Pattern::Any);
        let exact = |s: &str| matcher(&Pattern::Exact(s.into()));
        let cases = [
            ("*", (any.clone(), any.clone())),
            (
                "https://a.example/alice",
                (exact("https://a.example"), exact("alice")),
            ),
            (
                "https://a.example/*",
                (exact("https://a.example"), any.clone()),
            ),
            (
                "https://a.example/adm*",
                (
                    exact("https://a.example"),
                    matcher(&Pattern::Prefix("adm".into())),
                ),
            ),
            ("*/alice", (any.clone(), exact("alice"))),
            (
                "*.example/alice",
                (matcher(&Pattern::Suffix(".example".into())), exact("alice")),
            ),
            (
                "issuer-prefix*",
                (
                    matcher(&Pattern::Prefix("issuer-prefix".into())),
                    any.clone(),
                ),
            ),
            (
                "*sub-suffix",
                (any.clone(), matcher(&Pattern::Suffix("sub-suffix".into()))),
            ),
        ];
        for (p, want) in cases {
            assert_eq!(iss_sub(p), want, "{p}");
        }
    }

    #[test]
    fn not_request_principals_negate_and_tcp_drops_them() {
        let mut s = SourceMatch::default();
        s.request_principals
            .not_values
            .push(Pattern::Exact("iss/bad".into()));
        let http = source(&s, false);
        assert!(
            matches!(http.identifier, Some(principal::Identifier::NotId(_))),
            "{http:?}"
        );
        // On TCP the HTTP-only field is dropped (a DENY rule denies more).
        assert_eq!(
            source(&s, true).identifier,
            Some(principal::Identifier::Any(true))
        );
    }

    #[test]
    fn escapes_regex_metacharacters() {
        assert_eq!(escape("a.b*c"), "a\\.b\\*c");
        assert_eq!(escape("plain-ns"), "plain-ns");
    }
}
