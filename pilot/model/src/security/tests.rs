//! Precedence of PeerAuthentication levels and selection of AuthorizationPolicies.

use super::*;

const ROOT: &str = "rudder-system";

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn pa(
    ns: &str,
    name: &str,
    selector: Option<&[(&str, &str)]>,
    mode: MtlsMode,
    ports: &[(u16, MtlsMode)],
) -> PeerAuthn {
    PeerAuthn {
        source: RuleRef {
            kind: "PeerAuthentication".into(),
            namespace: ns.into(),
            name: name.into(),
        },
        selector: selector.map(labels),
        mode,
        port_level: ports.iter().copied().collect(),
    }
}

fn ap(ns: &str, name: &str, selector: Option<&[(&str, &str)]>) -> AuthzPolicy {
    AuthzPolicy {
        source: RuleRef {
            kind: "AuthorizationPolicy".into(),
            namespace: ns.into(),
            name: name.into(),
        },
        selector: selector.map(labels),
        action: AuthzAction::Allow,
        rules: vec![],
    }
}

#[test]
fn default_is_permissive() {
    let p = SecurityPolicies::default();
    assert_eq!(
        p.mtls_mode(ROOT, "default", &labels(&[]), 80),
        MtlsMode::Permissive
    );
}

#[test]
fn workload_beats_namespace_beats_mesh_and_port_beats_workload() {
    let app = labels(&[("app", "reviews")]);
    let mut p = SecurityPolicies::default();
    p.peer_authentications
        .push(pa(ROOT, "mesh", None, MtlsMode::Strict, &[]));
    assert_eq!(
        p.mtls_mode(ROOT, "default", &app, 9080),
        MtlsMode::Strict,
        "mesh-wide"
    );
    p.peer_authentications
        .push(pa("default", "ns", None, MtlsMode::Disable, &[]));
    assert_eq!(
        p.mtls_mode(ROOT, "default", &app, 9080),
        MtlsMode::Disable,
        "namespace over mesh"
    );
    assert_eq!(
        p.mtls_mode(ROOT, "other", &app, 9080),
        MtlsMode::Strict,
        "other namespaces keep the mesh mode"
    );
    p.peer_authentications.push(pa(
        "default",
        "wl",
        Some(&[("app", "reviews")]),
        MtlsMode::Permissive,
        &[(9090, MtlsMode::Strict)],
    ));
    assert_eq!(
        p.mtls_mode(ROOT, "default", &app, 9080),
        MtlsMode::Permissive,
        "workload over namespace"
    );
    assert_eq!(
        p.mtls_mode(ROOT, "default", &app, 9090),
        MtlsMode::Strict,
        "port over workload"
    );
    assert_eq!(
        p.mtls_mode(ROOT, "default", &labels(&[("app", "ratings")]), 9090),
        MtlsMode::Disable,
        "a selector that does not match leaves the namespace mode"
    );
}

#[test]
fn unset_inherits_from_the_level_above() {
    let app = labels(&[("app", "reviews")]);
    let mut p = SecurityPolicies::default();
    p.peer_authentications
        .push(pa(ROOT, "mesh", None, MtlsMode::Strict, &[]));
    p.peer_authentications
        .push(pa("default", "ns", None, MtlsMode::Unset, &[]));
    p.peer_authentications.push(pa(
        "default",
        "wl",
        Some(&[("app", "reviews")]),
        MtlsMode::Unset,
        &[(80, MtlsMode::Disable)],
    ));
    assert_eq!(p.mtls_mode(ROOT, "default", &app, 9080), MtlsMode::Strict);
    assert_eq!(p.mtls_mode(ROOT, "default", &app, 80), MtlsMode::Disable);
}

#[test]
fn oldest_policy_wins_at_one_level_and_root_selectors_stay_in_root() {
    let app = labels(&[("app", "reviews")]);
    let mut p = SecurityPolicies::default();
    p.peer_authentications
        .push(pa("default", "old", None, MtlsMode::Strict, &[]));
    p.peer_authentications
        .push(pa("default", "new", None, MtlsMode::Disable, &[]));
    // A selector in the root namespace selects only root-namespace workloads.
    p.peer_authentications.push(pa(
        ROOT,
        "sel",
        Some(&[("app", "reviews")]),
        MtlsMode::Disable,
        &[],
    ));
    assert_eq!(p.mtls_mode(ROOT, "default", &app, 9080), MtlsMode::Strict);
    assert_eq!(p.mtls_mode(ROOT, ROOT, &app, 9080), MtlsMode::Disable);
}

#[test]
fn authorization_policies_apply_by_root_namespace_and_selector() {
    let mut p = SecurityPolicies::default();
    p.authorization_policies.push(ap(ROOT, "mesh", None));
    p.authorization_policies
        .push(ap(ROOT, "mesh-reviews", Some(&[("app", "reviews")])));
    p.authorization_policies.push(ap("default", "ns", None));
    p.authorization_policies
        .push(ap("default", "ratings", Some(&[("app", "ratings")])));
    p.authorization_policies
        .push(ap("other", "elsewhere", None));
    let names = |ns: &str, l: &[(&str, &str)]| -> Vec<String> {
        let l = labels(l);
        p.authz_for(ROOT, ns, &l)
            .map(|a| a.source.name.clone())
            .collect()
    };
    assert_eq!(
        names("default", &[("app", "reviews")]),
        ["mesh", "mesh-reviews", "ns"]
    );
    assert_eq!(
        names("default", &[("app", "ratings")]),
        ["mesh", "ns", "ratings"]
    );
    assert_eq!(names("other", &[("app", "ratings")]), ["mesh", "elsewhere"]);
}

#[test]
fn patterns_and_cidrs_parse_like_istio() {
    assert_eq!(Pattern::parse("*"), Some(Pattern::Any));
    assert_eq!(
        Pattern::parse("/api*"),
        Some(Pattern::Prefix("/api".into()))
    );
    assert_eq!(
        Pattern::parse("*.html"),
        Some(Pattern::Suffix(".html".into()))
    );
    assert_eq!(Pattern::parse("/a*b"), None);
    assert_eq!(Pattern::parse("*a*"), None);
    assert!(Pattern::parse("/api*").unwrap().matches("/api/v1"));
    assert_eq!(
        Cidr::parse("10.0.0.0/8").map(|c| c.to_string()).as_deref(),
        Some("10.0.0.0/8")
    );
    assert_eq!(Cidr::parse("10.1.2.3").map(|c| c.prefix_len), Some(32));
    assert_eq!(Cidr::parse("2001:db8::/32").map(|c| c.prefix_len), Some(32));
    assert_eq!(Cidr::parse("10.0.0.0/33"), None);
    assert_eq!(Cidr::parse("10.0.0/8"), None);
}

#[test]
fn cidr_contains_within_its_family_only() {
    let net = Cidr::parse("10.1.0.0/16").unwrap();
    assert!(net.contains("10.1.255.3".parse().unwrap()));
    assert!(!net.contains("10.2.0.1".parse().unwrap()));
    assert!(!net.contains("::ffff:10.1.0.1".parse().unwrap()));
    assert!(Cidr::parse("0.0.0.0/0")
        .unwrap()
        .contains("192.0.2.1".parse().unwrap()));
    let v6 = Cidr::parse("fd00::/8").unwrap();
    assert!(v6.contains("fd12::1".parse().unwrap()));
    assert!(!v6.contains("fe80::1".parse().unwrap()));
    assert!(Cidr::parse("fd00::1")
        .unwrap()
        .contains("fd00::1".parse().unwrap()));
}
