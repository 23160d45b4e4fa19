//! PeerAuthentication → [`PeerAuthn`], AuthorizationPolicy → [`AuthzPolicy`],
//! RequestAuthentication → [`RequestAuthn`],
//! with Istio's validation rules: modes spelled as Istio spells them,
//! principals `<trust-domain>/ns/<ns>/sa/<sa>` (or with one leading or
//! trailing `*`), valid CIDRs, ports in range, known `when` keys.
//! Unsupported-but-valid Istio features are warnings, never silent.

use rudder_config::security::{
    self as sec, AuthorizationPolicySpec, PeerAuthenticationSpec, RequestAuthenticationSpec,
};
use rudder_model::{
    identity::SpiffeId, AuthzAction, AuthzPolicy, AuthzRule, Cidr, Condition, JwksSource, JwtRule,
    Labels, MtlsMode, OperationMatch, Pattern, PeerAuthn, PrincipalMatch, RequestAuthn, RuleRef,
    SourceMatch, Values,
};

use crate::{check::Checker, object::ObjectKey};

/// Compiles a PeerAuthentication; `None` when it has errors. `root_namespace`
/// (when known) turns on the "selector in the root namespace" warning.
pub fn peer_authentication(
    spec: &PeerAuthenticationSpec,
    key: &ObjectKey,
    root_namespace: Option<&str>,
    ck: &mut Checker,
) -> Option<PeerAuthn> {
    let selector = selector(spec.selector.as_ref(), "spec.selector", ck);
    let mode = spec
        .mtls
        .as_ref()
        .map_or(MtlsMode::Unset, |m| parse_mode(m, "spec.mtls.mode", ck));
    if selector.is_some() && root_namespace == Some(key.namespace.as_str()) {
        ck.warn(
            "spec.selector",
            format!(
                "a selector in the root namespace {} selects workloads of that namespace only, not mesh-wide",
                key.namespace
            ),
        );
    }
    let mut port_level = std::collections::BTreeMap::new();
    if !spec.port_level_mtls.is_empty() && selector.is_none() {
        ck.error(
            "spec.portLevelMtls",
            "portLevelMtls requires a workload selector",
        );
    }
    for (port, m) in &spec.port_level_mtls {
        let at = format!("spec.portLevelMtls[{port}]");
        let p = ck.port(&at, i64::from(*port));
        let mode = parse_mode(m, &format!("{at}.mode"), ck);
        if let Some(p) = p {
            port_level.insert(p, mode);
        }
    }
    if ck.has_errors() {
        return None;
    }
    Some(PeerAuthn {
        source: rule_ref("PeerAuthentication", key),
        selector,
        mode,
        port_level,
    })
}

/// Compiles an AuthorizationPolicy; `None` when it has errors or is of a kind
/// Rudder does not serve (CUSTOM is refused; one with a target applies to no
/// sidecar, as in Istio).
pub fn authorization_policy(
    spec: &AuthorizationPolicySpec,
    key: &ObjectKey,
    ck: &mut Checker,
) -> Option<AuthzPolicy> {
    let selector = selector(spec.selector.as_ref(), "spec.selector", ck);
    let action = match spec.action.as_deref().unwrap_or("ALLOW") {
        "ALLOW" => Some(AuthzAction::Allow),
        "DENY" => Some(AuthzAction::Deny),
        "AUDIT" => Some(AuthzAction::Audit),
        "CUSTOM" => {
            ck.error(
                "spec.action",
                "CUSTOM (external authorization) is not served by Rudder; dropping the policy would let through what it should check, so it is refused",
            );
            None
        }
        other => {
            ck.error(
                "spec.action",
                format!("unknown action {other:?} (expected ALLOW, DENY, AUDIT or CUSTOM)"),
            );
            None
        }
    };
    if spec.provider.is_some() && spec.action.as_deref() != Some("CUSTOM") {
        ck.error(
            "spec.provider",
            "provider is only allowed with action CUSTOM",
        );
    }
    if spec.target_ref.is_some() || !spec.target_refs.is_empty() {
        let field = if spec.target_ref.is_some() {
            "spec.targetRef"
        } else {
            "spec.targetRefs"
        };
        ck.warn(field, "a policy with a target applies to gateways and waypoints, never to sidecars (as in Istio): no sidecar gets it");
        if selector.is_some() {
            ck.error(field, "targetRef and selector are mutually exclusive");
        }
        if spec.target_ref.is_some() && !spec.target_refs.is_empty() {
            ck.error(
                field,
                "set targetRefs only (targetRef is its deprecated single form)",
            );
        }
        let refs = spec
            .target_ref
            .iter()
            .map(|r| (r, "spec.targetRef".to_string()));
        let list = spec.target_refs.iter().enumerate();
        for (r, at) in refs.chain(list.map(|(i, r)| (r, format!("spec.targetRefs[{i}]")))) {
            target_ref(r, &at, &key.namespace, ck);
        }
    }
    let rules: Vec<AuthzRule> = spec
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| rule(r, &format!("spec.rules[{i}]"), ck))
        .collect();
    if ck.has_errors() || spec.target_ref.is_some() || !spec.target_refs.is_empty() {
        return None;
    }
    Some(AuthzPolicy {
        source: rule_ref("AuthorizationPolicy", key),
        selector,
        action: action?,
        rules,
    })
}

fn rule_ref(kind: &str, key: &ObjectKey) -> RuleRef {
    RuleRef {
        kind: kind.into(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
    }
}

fn selector(s: Option<&sec::WorkloadSelector>, at: &str, ck: &mut Checker) -> Option<Labels> {
    let s = s?;
    for (k, v) in &s.match_labels {
        if k.is_empty() {
            ck.error(format!("{at}.matchLabels"), "label key must not be empty");
        } else if v.contains('*') {
            ck.error(
                format!("{at}.matchLabels.{k}"),
                format!("wildcard not allowed in label value {v:?}"),
            );
        }
    }
    Some(s.match_labels.clone())
}

fn parse_mode(m: &sec::PeerMtls, at: &str, ck: &mut Checker) -> MtlsMode {
    match m.mode.as_deref() {
        None => MtlsMode::Unset,
        Some(s) => MtlsMode::parse(s).unwrap_or_else(|| {
            ck.error(
                at,
                format!("unknown mTLS mode {s:?} (expected UNSET, DISABLE, PERMISSIVE or STRICT)"),
            );
            MtlsMode::Unset
        }),
    }
}

fn rule(r: &sec::Rule, at: &str, ck: &mut Checker) -> AuthzRule {
    let from = r
        .from
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let at = format!("{at}.from[{i}].source");
            match &f.source {
                Some(s) => source(s, &at, ck),
                None => {
                    ck.error(at, "source is required");
                    SourceMatch::default()
                }
            }
        })
        .collect();
    let to =
        r.to.iter()
            .enumerate()
            .map(|(i, t)| {
                let at = format!("{at}.to[{i}].operation");
                match &t.operation {
                    Some(o) => operation(o, &at, ck),
                    None => {
                        ck.error(at, "operation is required");
                        OperationMatch::default()
                    }
                }
            })
            .collect();
    let when = r
        .when
        .iter()
        .enumerate()
        .filter_map(|(i, c)| condition(c, &format!("{at}.when[{i}]"), ck))
        .collect();
    AuthzRule { from, to, when }
}

fn source(s: &sec::Source, at: &str, ck: &mut Checker) -> SourceMatch {
    let all_empty = [
        &s.principals,
        &s.not_principals,
        &s.request_principals,
        &s.not_request_principals,
        &s.namespaces,
        &s.not_namespaces,
        &s.ip_blocks,
        &s.not_ip_blocks,
        &s.remote_ip_blocks,
        &s.not_remote_ip_blocks,
    ]
    .iter()
    .all(|v| v.is_empty());
    if all_empty {
        ck.error(at, "source must set at least one field");
    }
    SourceMatch {
        principals: values(
            &s.principals,
            &s.not_principals,
            at,
            "principals",
            ck,
            principal,
        ),
        request_principals: values(
            &s.request_principals,
            &s.not_request_principals,
            at,
            "requestPrincipals",
            ck,
            pattern,
        ),
        namespaces: values(
            &s.namespaces,
            &s.not_namespaces,
            at,
            "namespaces",
            ck,
            pattern,
        ),
        ip_blocks: values(&s.ip_blocks, &s.not_ip_blocks, at, "ipBlocks", ck, cidr),
        remote_ip_blocks: values(
            &s.remote_ip_blocks,
            &s.not_remote_ip_blocks,
            at,
            "remoteIpBlocks",
            ck,
            cidr,
        ),
    }
}

fn operation(o: &sec::Operation, at: &str, ck: &mut Checker) -> OperationMatch {
    let all_empty = [
        &o.hosts,
        &o.not_hosts,
        &o.ports,
        &o.not_ports,
        &o.methods,
        &o.not_methods,
        &o.paths,
        &o.not_paths,
    ]
    .iter()
    .all(|v| v.is_empty());
    if all_empty {
        ck.error(at, "operation must set at least one field");
    }
    OperationMatch {
        hosts: values(&o.hosts, &o.not_hosts, at, "hosts", ck, pattern),
        ports: values(&o.ports, &o.not_ports, at, "ports", ck, port),
        methods: values(&o.methods, &o.not_methods, at, "methods", ck, |s, _, _| {
            Some(s.to_string())
        }),
        paths: values(&o.paths, &o.not_paths, at, "paths", ck, path),
    }
}

/// Istio's rules for a policy target: a Gateway or GatewayClass of the
/// Gateway API, a Service, or a ServiceEntry, in the policy's namespace.
fn target_ref(r: &sec::PolicyTargetReference, at: &str, namespace: &str, ck: &mut Checker) {
    let known = [
        ("gateway.networking.k8s.io", "Gateway"),
        ("gateway.networking.k8s.io", "GatewayClass"),
        ("", "Service"),
        ("core", "Service"),
        ("networking.istio.io", "ServiceEntry"),
    ];
    if !known.iter().any(|(g, _)| *g == r.group) {
        ck.error(
            format!("{at}.group"),
            format!("group {:?}: expected gateway.networking.k8s.io, \"\" (core) or networking.istio.io", r.group),
        );
    } else if !known.contains(&(r.group.as_str(), r.kind.as_str())) {
        ck.error(
            format!("{at}.kind"),
            format!(
                "kind {:?} of group {:?}: expected Gateway, GatewayClass, Service or ServiceEntry",
                r.kind, r.group
            ),
        );
    }
    if r.name.is_empty() {
        ck.error(format!("{at}.name"), "name is required");
    }
    if r.namespace.as_deref().is_some_and(|n| n != namespace) {
        ck.error(
            format!("{at}.namespace"),
            format!("a target in another namespace; it must be the policy's own ({namespace})"),
        );
    }
}

fn condition(c: &sec::Condition, at: &str, ck: &mut Checker) -> Option<Condition> {
    if c.values.is_empty() && c.not_values.is_empty() {
        ck.error(at, "at least one of values or notValues is required");
        return None;
    }
    let key = c.key.as_str();
    Some(match key {
        "source.ip" => {
            Condition::SourceIp(values(&c.values, &c.not_values, at, "values", ck, cidr))
        }
        "remote.ip" => {
            Condition::RemoteIp(values(&c.values, &c.not_values, at, "values", ck, cidr))
        }
        "source.namespace" => {
            Condition::SourceNamespace(values(&c.values, &c.not_values, at, "values", ck, pattern))
        }
        "source.principal" => Condition::SourcePrincipal(values(
            &c.values,
            &c.not_values,
            at,
            "values",
            ck,
            principal,
        )),
        "destination.port" => {
            Condition::DestinationPort(values(&c.values, &c.not_values, at, "values", ck, port))
        }
        "destination.ip" => {
            Condition::DestinationIp(values(&c.values, &c.not_values, at, "values", ck, cidr))
        }
        "connection.sni" => {
            Condition::ConnectionSni(values(&c.values, &c.not_values, at, "values", ck, pattern))
        }
        _ => match key
            .strip_prefix("request.headers[")
            .and_then(|k| k.strip_suffix(']'))
        {
            Some(name) if !name.is_empty() && !name.contains(['[', ']']) => {
                Condition::RequestHeader(
                    name.to_ascii_lowercase(),
                    values(&c.values, &c.not_values, at, "values", ck, pattern),
                )
            }
            Some(_) => {
                ck.error(
                    format!("{at}.key"),
                    format!("{key:?}: header name must not be empty"),
                );
                return None;
            }
            None if key.starts_with("request.auth.") => {
                return request_auth(key, c, at, ck);
            }
            None => {
                ck.error(format!("{at}.key"), format!("unknown attribute {key:?}"));
                return None;
            }
        },
    })
}

/// `request.auth.principal|audiences|presenter|claims[a][b]`, as Istio's
/// authz builder reads them.
fn request_auth(key: &str, c: &sec::Condition, at: &str, ck: &mut Checker) -> Option<Condition> {
    let v = |ck: &mut Checker| values(&c.values, &c.not_values, at, "values", ck, pattern);
    Some(match key {
        "request.auth.principal" => Condition::RequestPrincipal(v(ck)),
        "request.auth.audiences" => Condition::RequestAudiences(v(ck)),
        "request.auth.presenter" => Condition::RequestPresenter(v(ck)),
        _ => match key.strip_prefix("request.auth.claims") {
            Some(rest) => match claim_path(rest) {
                Some(path) => Condition::RequestClaim(path, v(ck)),
                None => {
                    ck.error(
                        format!("{at}.key"),
                        format!("{key:?}: expected request.auth.claims[<name>] or nested request.auth.claims[<a>][<b>]"),
                    );
                    return None;
                }
            },
            None => {
                ck.error(format!("{at}.key"), format!("unknown attribute {key:?}"));
                return None;
            }
        },
    })
}

/// `[a][b]` → `["a", "b"]`; `None` unless it is one or more non-empty
/// bracketed names.
pub fn claim_path(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        let name = &inner[..end];
        if name.is_empty() || name.contains('[') {
            return None;
        }
        out.push(name.to_string());
        rest = &inner[end + 1..];
    }
    (!out.is_empty()).then_some(out)
}

/// Parses `values` and `not_values` of `field` (and `notField`) one by one,
/// naming each bad value `at.field[i]`.
fn values<T>(
    values: &[String],
    not_values: &[String],
    at: &str,
    field: &str,
    ck: &mut Checker,
    parse: impl Fn(&str, &str, &mut Checker) -> Option<T>,
) -> Values<T> {
    let not_field = format!("not{}{}", field[..1].to_ascii_uppercase(), &field[1..]);
    let mut list = |vs: &[String], name: &str| -> Vec<T> {
        vs.iter()
            .enumerate()
            .filter_map(|(i, v)| parse(v, &format!("{at}.{name}[{i}]"), ck))
            .collect()
    };
    Values {
        values: list(values, field),
        not_values: list(not_values, &not_field),
    }
}

fn pattern(s: &str, at: &str, ck: &mut Checker) -> Option<Pattern> {
    if s.is_empty() {
        ck.error(at, "value must not be empty");
        return None;
    }
    Pattern::parse(s).or_else(|| {
        ck.error(
            at,
            format!("{s:?}: only a single leading or trailing * is allowed"),
        );
        None
    })
}

fn path(s: &str, at: &str, ck: &mut Checker) -> Option<Pattern> {
    if s.contains('{') {
        ck.error(
            at,
            format!("{s:?}: path templates ({{*}}, {{**}}) are not supported by Rudder"),
        );
        return None;
    }
    pattern(s, at, ck)
}

fn principal(s: &str, at: &str, ck: &mut Checker) -> Option<PrincipalMatch> {
    Some(match pattern(s, at, ck)? {
        Pattern::Any => PrincipalMatch::Any,
        Pattern::Prefix(p) => PrincipalMatch::Prefix(p),
        Pattern::Suffix(p) => PrincipalMatch::Suffix(p),
        Pattern::Exact(p) => match SpiffeId::parse(&format!("spiffe://{p}")) {
            Ok(id) => PrincipalMatch::Exact(id),
            Err(_) => {
                let why = if p.starts_with("spiffe://") {
                    " (without the spiffe:// scheme)"
                } else {
                    ""
                };
                ck.error(at, format!("{p:?} is not a principal of the form <trust-domain>/ns/<namespace>/sa/<serviceaccount>{why}"));
                return None;
            }
        },
    })
}

fn cidr(s: &str, at: &str, ck: &mut Checker) -> Option<Cidr> {
    Cidr::parse(s).or_else(|| {
        ck.error(at, format!("{s:?} is not a valid IP address or CIDR block"));
        None
    })
}

fn port(s: &str, at: &str, ck: &mut Checker) -> Option<u16> {
    match s.parse::<i64>() {
        Ok(p) => ck.port(at, p),
        Err(_) => {
            ck.error(at, format!("{s:?} is not a port number"));
            None
        }
    }
}

/// Warns, once per rule, when a rule with HTTP-only fields applies to a TCP
/// port of some workload the policy selects: Istio drops such an ALLOW rule
/// there (it matches nothing) and drops the HTTP-only fields of a DENY rule
/// (it denies more), and so does Rudder's xDS.
pub fn warn_http_rules_on_tcp(
    policy: &AuthzPolicy,
    snapshot: &rudder_model::Snapshot,
    root_namespace: &str,
    ck: &mut Checker,
) {
    let ns = &policy.source.namespace;
    let mut tcp_ports: Vec<(u16, String)> = Vec::new();
    for w in snapshot.workloads.values() {
        let applies = (ns == root_namespace || &w.namespace == ns)
            && policy
                .selector
                .as_ref()
                .is_none_or(|s| rudder_model::selects(s, &w.labels));
        if !applies {
            continue;
        }
        for svc in snapshot.services_for_workload(w) {
            for sp in svc.ports.iter().filter(|p| !p.protocol.is_http()) {
                let target = match &sp.target_port {
                    rudder_model::TargetPort::Number(n) => Some(*n),
                    rudder_model::TargetPort::Name(n) => w.named_ports.get(n).copied(),
                };
                if let Some(p) = target {
                    tcp_ports.push((p, format!("{}/{}", w.namespace, w.name)));
                }
            }
        }
    }
    tcp_ports.sort();
    tcp_ports.dedup();
    for (i, r) in policy.rules.iter().enumerate() {
        if !r.is_http_only() {
            continue;
        }
        let restricted: Vec<u16> =
            r.to.iter()
                .flat_map(|o| o.ports.values.iter().copied())
                .collect();
        let unrestricted = r.to.is_empty() || r.to.iter().any(|o| o.ports.values.is_empty());
        let hit = tcp_ports
            .iter()
            .find(|(p, _)| unrestricted || restricted.contains(p));
        if let Some((port, workload)) = hit {
            let what = match policy.action {
                AuthzAction::Allow => {
                    "Istio ignores this ALLOW rule there (it matches nothing on TCP)"
                }
                AuthzAction::Audit => {
                    "Istio ignores this AUDIT rule there (it matches nothing on TCP)"
                }
                AuthzAction::Deny => {
                    "Istio ignores its HTTP-only fields there (the DENY rule matches more on TCP)"
                }
            };
            ck.warn(
                format!("spec.rules[{i}]"),
                format!("uses HTTP-only fields (paths, methods, hosts, request headers or requestPrincipals) and applies to TCP port {port} of {workload}: {what}"),
            );
        }
    }
}

/// Compiles a RequestAuthentication; `None` when it has errors. A target
/// (`targetRef`/`targetRefs`: Gateway API gateways and waypoints) is not
/// served by Rudder and refused, so no policy is silently dropped.
pub fn request_authentication(
    spec: &RequestAuthenticationSpec,
    key: &ObjectKey,
    ck: &mut Checker,
) -> Option<RequestAuthn> {
    let selector = selector(spec.selector.as_ref(), "spec.selector", ck);
    if spec.target_ref.is_some() {
        ck.error("spec.targetRef", "a target (Gateway API gateway or waypoint) is not served by Rudder; select the workloads with spec.selector");
    }
    if !spec.target_refs.is_empty() {
        ck.error("spec.targetRefs", "a target (Gateway API gateway or waypoint) is not served by Rudder; select the workloads with spec.selector");
    }
    let rules: Vec<JwtRule> = spec
        .jwt_rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| jwt_rule(r, &format!("spec.jwtRules[{i}]"), ck))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for (i, r) in spec.jwt_rules.iter().enumerate() {
        if !r.issuer.is_empty() && !seen.insert(r.issuer.as_str()) {
            ck.error(
                format!("spec.jwtRules[{i}].issuer"),
                format!("issuer {:?} is already used by an earlier rule", r.issuer),
            );
        }
    }
    if ck.has_errors() {
        return None;
    }
    Some(RequestAuthn {
        source: rule_ref("RequestAuthentication", key),
        selector,
        rules,
    })
}

fn jwt_rule(r: &sec::JwtRule, at: &str, ck: &mut Checker) -> Option<JwtRule> {
    let errors = ck.error_count();
    if r.issuer.is_empty() {
        ck.error(format!("{at}.issuer"), "issuer is required");
    }
    let jwks = match (&r.jwks, &r.jwks_uri) {
        (Some(_), Some(_)) => {
            ck.error(format!("{at}.jwks"), "set only one of jwks and jwksUri");
            None
        }
        (Some(j), None) => {
            if let Err(why) = check_jwks(j) {
                ck.error(format!("{at}.jwks"), why);
            }
            Some(JwksSource::Inline(j.clone()))
        }
        (None, Some(u)) => {
            if let Err(why) = check_jwks_uri(u) {
                ck.error(format!("{at}.jwksUri"), why);
            }
            Some(JwksSource::Uri(u.clone()))
        }
        (None, None) => {
            ck.error(
                format!("{at}.jwksUri"),
                "set jwks or jwksUri: discovering the keys from the issuer (OpenID discovery) is not served by Rudder",
            );
            None
        }
    };
    for (i, a) in r.audiences.iter().enumerate() {
        if a.is_empty() {
            ck.error(format!("{at}.audiences[{i}]"), "audience must not be empty");
        }
    }
    for (i, h) in r.from_headers.iter().enumerate() {
        header_name(&h.name, &format!("{at}.fromHeaders[{i}].name"), ck);
    }
    for (i, p) in r.from_params.iter().enumerate() {
        if p.is_empty() {
            ck.error(
                format!("{at}.fromParams[{i}]"),
                "parameter name must not be empty",
            );
        }
    }
    for (i, c) in r.from_cookies.iter().enumerate() {
        if c.is_empty() || c.contains([';', '=', ' ']) {
            ck.error(
                format!("{at}.fromCookies[{i}]"),
                format!("{c:?} is not a cookie name"),
            );
        }
    }
    if let Some(h) = &r.output_payload_to_header {
        header_name(h, &format!("{at}.outputPayloadToHeader"), ck);
    }
    for (i, c) in r.output_claim_to_headers.iter().enumerate() {
        header_name(
            &c.header,
            &format!("{at}.outputClaimToHeaders[{i}].header"),
            ck,
        );
        if c.claim.is_empty() {
            ck.error(
                format!("{at}.outputClaimToHeaders[{i}].claim"),
                "claim is required",
            );
        }
    }
    let timeout = r
        .timeout
        .as_ref()
        .and_then(|t| ck.duration(format!("{at}.timeout"), t));
    if timeout.is_some() && r.jwks.is_some() && r.jwks_uri.is_none() {
        ck.warn(
            format!("{at}.timeout"),
            "timeout bounds fetching jwksUri; with inline jwks there is nothing to fetch, so it has no effect",
        );
    }
    if ck.error_count() > errors {
        return None;
    }
    Some(JwtRule {
        issuer: r.issuer.clone(),
        audiences: r.audiences.clone(),
        jwks: jwks?,
        from_headers: r
            .from_headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    h.prefix.clone().unwrap_or_default(),
                )
            })
            .collect(),
        from_params: r.from_params.clone(),
        from_cookies: r.from_cookies.clone(),
        forward_original_token: r.forward_original_token,
        output_payload_to_header: r.output_payload_to_header.clone(),
        output_claim_to_headers: r
            .output_claim_to_headers
            .iter()
            .map(|c| (c.header.clone(), c.claim.clone()))
            .collect(),
        timeout,
    })
}

fn header_name(name: &str, at: &str, ck: &mut Checker) {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() {
        ck.error(at, "header name is required");
    } else if !name.chars().all(token) {
        ck.error(at, format!("{name:?} is not a valid HTTP header name"));
    }
}

/// A JSON Web Key Set: an object with a `keys` array of objects, each with
/// a `kty`. Envoy checks the keys themselves.
pub fn check_jwks(text: &str) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not a JSON Web Key Set: {e}"))?;
    let keys = v
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("not a JSON Web Key Set: no \"keys\" array")?;
    if keys.is_empty() {
        return Err("the JSON Web Key Set has no keys".into());
    }
    for (i, k) in keys.iter().enumerate() {
        if k.get("kty").and_then(|t| t.as_str()).is_none() {
            return Err(format!("key {i} of the JSON Web Key Set has no \"kty\""));
        }
    }
    Ok(())
}

fn check_jwks_uri(u: &str) -> Result<(), String> {
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .ok_or_else(|| format!("{u:?} is not an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("{u:?} has no host"));
    }
    Ok(())
}
