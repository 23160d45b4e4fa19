//! PeerAuthentication and AuthorizationPolicy through the registry: one table
//! row per validation rule (exact field and message, object rejected), the
//! warnings Istio would give, and compiled policies in the snapshot.

mod common;

use common::{errors, objects, validate, warnings};
use pretty_assertions::assert_eq;
use rudder_model::{AuthzAction, Labels, MtlsMode};
use rudder_registry::build::build_snapshot;

const PA: &str = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: default}\nspec:\n";
const AP: &str = "apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: default}\nspec:\n";

fn rule(r: &str) -> String {
    format!("{AP}  rules:\n  - {r}\n")
}

#[test]
fn each_security_rule_reports_field_and_reason() {
    let src = |s: &str| rule(&format!("from: [{{source: {s}}}]"));
    let op = |o: &str| rule(&format!("to: [{{operation: {o}}}]"));
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("misspelled mode", format!("{PA}  mtls: {{mode: STRIC}}\n"), "spec.mtls.mode", "unknown mTLS mode \"STRIC\" (expected UNSET, DISABLE, PERMISSIVE or STRICT)"),
        ("port mode misspelled", format!("{PA}  selector: {{matchLabels: {{app: a}}}}\n  portLevelMtls:\n    8080: {{mode: strict}}\n"), "spec.portLevelMtls[8080].mode", "unknown mTLS mode \"strict\" (expected UNSET, DISABLE, PERMISSIVE or STRICT)"),
        ("port level without selector", format!("{PA}  portLevelMtls:\n    8080: {{mode: STRICT}}\n"), "spec.portLevelMtls", "portLevelMtls requires a workload selector"),
        ("port level out of range", format!("{PA}  selector: {{matchLabels: {{app: a}}}}\n  portLevelMtls:\n    70000: {{mode: STRICT}}\n"), "spec.portLevelMtls[70000]", "port 70000 must be between 1 and 65535"),
        ("unknown action", format!("{AP}  action: ALOW\n"), "spec.action", "unknown action \"ALOW\" (expected ALLOW, DENY, AUDIT or CUSTOM)"),
        ("principal without trust domain", src("{principals: [ns/default/sa/sleep]}"), "spec.rules[0].from[0].source.principals[0]", "\"ns/default/sa/sleep\" is not a principal of the form <trust-domain>/ns/<namespace>/sa/<serviceaccount>"),
        ("principal with scheme", src("{principals: [\"spiffe://cluster.local/ns/default/sa/sleep\"]}"), "spec.rules[0].from[0].source.principals[0]", "\"spiffe://cluster.local/ns/default/sa/sleep\" is not a principal of the form <trust-domain>/ns/<namespace>/sa/<serviceaccount> (without the spiffe:// scheme)"),
        ("star in the middle", src("{notPrincipals: [\"cluster.local/*/sa/sleep\"]}"), "spec.rules[0].from[0].source.notPrincipals[0]", "\"cluster.local/*/sa/sleep\": only a single leading or trailing * is allowed"),
        ("bad CIDR", src("{ipBlocks: [10.0.0.0/33]}"), "spec.rules[0].from[0].source.ipBlocks[0]", "\"10.0.0.0/33\" is not a valid IP address or CIDR block"),
        ("bad negated CIDR", src("{notIpBlocks: [10.0.0]}"), "spec.rules[0].from[0].source.notIpBlocks[0]", "\"10.0.0\" is not a valid IP address or CIDR block"),
        ("empty source", src("{}"), "spec.rules[0].from[0].source", "source must set at least one field"),
        ("port not a number", op("{ports: [http]}"), "spec.rules[0].to[0].operation.ports[0]", "\"http\" is not a port number"),
        ("port out of range", op("{notPorts: [\"0\"]}"), "spec.rules[0].to[0].operation.notPorts[0]", "port 0 must be between 1 and 65535"),
        ("path template", op("{paths: [\"/a/{*}\"]}"), "spec.rules[0].to[0].operation.paths[0]", "\"/a/{*}\": path templates ({*}, {**}) are not supported by Rudder"),
        ("empty operation", op("{}"), "spec.rules[0].to[0].operation", "operation must set at least one field"),
        ("unknown when key", rule("when: [{key: request.foo, values: [x]}]"), "spec.rules[0].when[0].key", "unknown attribute \"request.foo\""),
        ("when without values", rule("when: [{key: source.ip}]"), "spec.rules[0].when[0]", "at least one of values or notValues is required"),
        ("when bad ip", rule("when: [{key: source.ip, values: [nope]}]"), "spec.rules[0].when[0].values[0]", "\"nope\" is not a valid IP address or CIDR block"),
        ("when bad principal", rule("when: [{key: source.principal, notValues: [sleep]}]"), "spec.rules[0].when[0].notValues[0]", "\"sleep\" is not a principal of the form <trust-domain>/ns/<namespace>/sa/<serviceaccount>"),
        ("provider without CUSTOM", format!("{AP}  provider: {{name: ext}}\n"), "spec.provider", "provider is only allowed with action CUSTOM"),
        ("custom", format!("{AP}  action: CUSTOM\n  provider: {{name: ext}}\n"), "spec.action", "CUSTOM (external authorization) is not served by Rudder; dropping the policy would let through what it should check, so it is refused"),
        ("when request.auth claims without a name", rule("when: [{key: \"request.auth.claims\", values: [x]}]"), "spec.rules[0].when[0].key", "\"request.auth.claims\": expected request.auth.claims[<name>] or nested request.auth.claims[<a>][<b>]"),
        ("when request.auth claims empty name", rule("when: [{key: \"request.auth.claims[a][]\", values: [x]}]"), "spec.rules[0].when[0].key", "\"request.auth.claims[a][]\": expected request.auth.claims[<name>] or nested request.auth.claims[<a>][<b>]"),
        ("when unknown request.auth", rule("when: [{key: request.auth.issuer, values: [x]}]"), "spec.rules[0].when[0].key", "unknown attribute \"request.auth.issuer\""),
        ("request principal with a star inside", src("{requestPrincipals: [\"iss/*/sub\"]}"), "spec.rules[0].from[0].source.requestPrincipals[0]", "\"iss/*/sub\": only a single leading or trailing * is allowed"),
        ("when destination.ip not an ip", rule("when: [{key: destination.ip, values: [x]}]"), "spec.rules[0].when[0].values[0]", "\"x\" is not a valid IP address or CIDR block"),
        ("target group", format!("{AP}  targetRefs: [{{group: example.com, kind: Gateway, name: gw}}]\n"), "spec.targetRefs[0].group", "group \"example.com\": expected gateway.networking.k8s.io, \"\" (core) or networking.istio.io"),
        ("target kind", format!("{AP}  targetRef: {{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}}\n"), "spec.targetRef.kind", "kind \"HTTPRoute\" of group \"gateway.networking.k8s.io\": expected Gateway, GatewayClass, Service or ServiceEntry"),
        ("target namespace", format!("{AP}  targetRefs: [{{group: \"\", kind: Service, name: web, namespace: other}}]\n"), "spec.targetRefs[0].namespace", "a target in another namespace; it must be the policy's own (default)"),
    ];
    for (name, yaml, field, message) in cases {
        let r = validate(&[("policy.yaml", &yaml)]);
        let errs = errors(&r);
        assert_eq!(errs.len(), 1, "{name}: {:#?}", r.diagnostics);
        assert_eq!(
            (errs[0].field.as_str(), errs[0].message.as_str()),
            (field, message),
            "{name}"
        );
        assert_eq!(errs[0].file.as_deref(), Some("policy.yaml:1"), "{name}");
        assert_eq!(r.objects, 0, "{name}: the object must be rejected");
    }
}

#[test]
fn unknown_fields_are_errors_naming_them() {
    for (yaml, field, word) in [
        (
            rule("from: [{source: {principal: [a]}}]"),
            "spec.rules[0].from[0].source",
            "principal",
        ),
        (format!("{PA}  mtls: {{mod: STRICT}}\n"), "spec.mtls", "mod"),
    ] {
        let r = validate(&[("policy.yaml", &yaml)]);
        let errs = errors(&r);
        assert_eq!(errs.len(), 1, "{:#?}", r.diagnostics);
        assert!(errs[0].field.starts_with(field), "{errs:?}");
        assert!(
            errs[0].message.contains(&format!("unknown field `{word}`")),
            "{errs:?}"
        );
        assert_eq!(r.objects, 0);
    }
}

#[test]
fn istio_accepts_these_policies() {
    for yaml in [
        format!("{AP}  {{}}\n"),
        format!("{AP}  rules: [{{}}]\n"),
        format!("{AP}  action: DENY\n  rules:\n  - from: [{{source: {{principals: [\"*\", \"cluster.local/ns/a/*\", \"*/sa/b\"], namespaces: [\"*\"], ipBlocks: [10.0.0.1, \"2001:db8::/32\"]}}}}]\n    to: [{{operation: {{methods: [GET], paths: [\"*.html\", \"/api*\"], ports: [\"8080\"], hosts: [\"*.example.com\"]}}}}]\n    when: [{{key: \"request.headers[x-a]\", values: [\"*\"]}}, {{key: destination.port, values: [\"80\"]}}, {{key: source.namespace, notValues: [foo]}}]\n"),
        format!("{AP}  action: AUDIT\n  rules:\n  - when: [{{key: destination.ip, values: [10.0.0.0/8]}}, {{key: connection.sni, notValues: [\"*.internal\"]}}]\n"),
        format!("{AP}  rules:\n  - from: [{{source: {{requestPrincipals: [\"*\", \"https://a.example/*\", \"*/sub\"], notRequestPrincipals: [\"bad/x\"]}}}}]\n    when: [{{key: request.auth.principal, values: [\"iss/sub\"]}}, {{key: request.auth.audiences, values: [a]}}, {{key: request.auth.presenter, notValues: [p]}}, {{key: \"request.auth.claims[groups]\", values: [admin]}}, {{key: \"request.auth.claims[realm][role]\", values: [\"dev*\"]}}]\n"),
        format!("{PA}  mtls: {{mode: UNSET}}\n"),
        format!("{PA}  selector: {{matchLabels: {{app: a}}}}\n  portLevelMtls:\n    8080: {{mode: PERMISSIVE}}\n"),
    ] {
        let r = validate(&[("policy.yaml", &yaml)]);
        assert!(errors(&r).is_empty(), "{yaml}: {:?}", r.diagnostics);
        assert_eq!(r.objects, 1, "{yaml}");
    }
}

#[test]
fn unsupported_features_are_warnings() {
    let root_pa = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: rudder-system}\nspec:\n  selector: {matchLabels: {app: a}}\n  mtls: {mode: STRICT}\n";
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("targetRef", format!("{AP}  targetRef: {{group: gateway.networking.k8s.io, kind: Gateway, name: gw}}\n"), "spec.targetRef", "a policy with a target applies to gateways and waypoints, never to sidecars (as in Istio): no sidecar gets it"),
        ("selector in root namespace", root_pa.to_string(), "spec.selector", "a selector in the root namespace rudder-system selects workloads of that namespace only, not mesh-wide"),
    ];
    for (name, yaml, field, message) in cases {
        let r = validate(&[("policy.yaml", &yaml)]);
        assert!(errors(&r).is_empty(), "{name}: {:?}", r.diagnostics);
        let w = warnings(&r);
        assert_eq!(w.len(), 1, "{name}: {w:#?}");
        assert_eq!(
            (w[0].field.as_str(), w[0].message.as_str()),
            (field, message),
            "{name}"
        );
        assert_eq!(
            r.objects, 1,
            "{name}: served (or ignored) with a warning, not rejected"
        );
    }
}

#[test]
fn http_fields_on_a_tcp_port_warn() {
    let svc = common::mk_service("db", "tcp", 5432, "5432");
    let pod = common::mk_pod("db-0", "db", "v1", "198.18.0.5", true);
    let allow = rule("to: [{operation: {paths: [/x]}}]")
        .replace("rules:", "selector: {matchLabels: {app: db}}\n  rules:");
    let deny = format!("{AP}  action: DENY\n  rules:\n  - to: [{{operation: {{methods: [GET], ports: [\"5432\"]}}}}]\n").replace("name: a,", "name: d,");
    let other_port = rule("to: [{operation: {methods: [GET], ports: [\"80\"]}}]")
        .replace("name: a,", "name: o,");
    let r = validate(&[
        ("svc.yaml", &svc),
        ("pod.yaml", &pod),
        ("allow.yaml", &allow),
        ("deny.yaml", &deny),
        ("other.yaml", &other_port),
    ]);
    let w: Vec<(String, String, String)> = warnings(&r)
        .iter()
        .map(|d| (d.object.clone(), d.field.clone(), d.message.clone()))
        .collect();
    assert_eq!(
        w,
        vec![
            ("AuthorizationPolicy default/a".into(), "spec.rules[0]".into(), "uses HTTP-only fields (paths, methods, hosts, request headers or requestPrincipals) and applies to TCP port 5432 of default/db-0: Istio ignores this ALLOW rule there (it matches nothing on TCP)".into()),
            ("AuthorizationPolicy default/d".into(), "spec.rules[0]".into(), "uses HTTP-only fields (paths, methods, hosts, request headers or requestPrincipals) and applies to TCP port 5432 of default/db-0: Istio ignores its HTTP-only fields there (the DENY rule matches more on TCP)".into()),
        ]
    );
}

#[test]
fn security_kinds_are_served_not_unsupported() {
    let r = validate(&[
        ("pa.yaml", &format!("{PA}  mtls: {{mode: STRICT}}\n")),
        ("ap.yaml", &format!("{AP}  {{}}\n")),
    ]);
    assert!(r.unsupported().is_empty(), "{:?}", r.unsupported());
    assert_eq!(r.objects, 2);
}

#[test]
fn snapshot_carries_compiled_policies_in_age_order() {
    let yaml = format!(
        "{}---\n{}---\n{}---\n{}",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: rudder-mesh, namespace: rudder-system}\ndata:\n  mesh: \"rootNamespace: istio-system\"\n",
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: mesh, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n",
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: young, namespace: default, creationTimestamp: \"2024-02-01T00:00:00Z\"}\nspec: {mtls: {mode: PERMISSIVE}}\n",
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: old, namespace: default, creationTimestamp: \"2024-01-01T00:00:00Z\"}\nspec: {mtls: {mode: DISABLE}}\n",
    ) + &format!("---\n{AP}  action: DENY\n  rules: [{{from: [{{source: {{principals: [cluster.local/ns/x/sa/y]}}}}]}}]\n");
    let objs = objects(&yaml);
    let snap = build_snapshot(&objs, vec![]);
    assert!(snap.diagnostics.is_empty(), "{:?}", snap.diagnostics);
    let names: Vec<&str> = snap
        .security
        .peer_authentications
        .iter()
        .map(|p| p.source.name.as_str())
        .collect();
    assert_eq!(names, ["mesh", "old", "young"]);
    assert_eq!(
        snap.mtls_mode("default", &Labels::new(), 80),
        MtlsMode::Disable,
        "the oldest namespace policy wins"
    );
    assert_eq!(
        snap.mtls_mode("other", &Labels::new(), 80),
        MtlsMode::Strict,
        "mesh-wide from the configured root namespace"
    );
    let a = &snap.security.authorization_policies[0];
    assert_eq!(a.action, AuthzAction::Deny);
    assert_eq!(a.rule_name(0), "ns[default]-policy[a]-rule[0]");
    assert_eq!(snap.authz_for("default", &Labels::new()).count(), 1);
    assert_eq!(snap.authz_for("elsewhere", &Labels::new()).count(), 0);
    let no_policy = build_snapshot(&objs[..1], vec![]);
    assert_ne!(
        no_policy.version, snap.version,
        "policies are part of the version"
    );
}

#[test]
fn validate_files_reports_security_problems_by_file_and_line() {
    let r = rudder_registry::validate_paths(&[
        common::testdata("security/policies.yaml"),
        common::testdata("security/invalid.yaml"),
    ]);
    let lines: Vec<String> = r
        .lines()
        .into_iter()
        .map(|l| l.replace(common::testdata("security").to_str().unwrap(), "security"))
        .collect();
    assert_eq!(
        lines,
        vec![
            "error: security/invalid.yaml:1: PeerAuthentication default/typo: spec.mtls.mode: unknown mTLS mode \"STRICKT\" (expected UNSET, DISABLE, PERMISSIVE or STRICT)".to_string(),
            "error: security/invalid.yaml:7: AuthorizationPolicy default/bad-principal: spec.rules[0].from[0].source.principals[0]: \"default/sleep\" is not a principal of the form <trust-domain>/ns/<namespace>/sa/<serviceaccount>".to_string(),
            lines[2].clone(),
        ]
    );
    assert!(
        lines[2].starts_with("error: security/invalid.yaml:21: AuthorizationPolicy default/unknown-field: spec.rules[0].to[0].operation")
            && lines[2].contains("unknown field `method`"),
        "{}",
        lines[2]
    );
    assert!(r.has_errors());
    assert_eq!(r.objects, 4, "the four good policies are served");
}
