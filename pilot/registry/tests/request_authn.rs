//! RequestAuthentication through the registry: one table row per validation
//! rule (exact field and message, object rejected), the shapes Istio
//! accepts, the compiled policy in the snapshot, and the fetched key sets a
//! snapshot keeps.

mod common;

use std::collections::BTreeMap;

use common::{errors, objects, validate};
use pretty_assertions::assert_eq;
use rudder_model::{JwksSource, Labels};
use rudder_registry::build::{build_snapshot, build_snapshot_with_jwks};

const RA: &str = "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt, namespace: default}\nspec:\n";
const KEYS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"}]}"#;

fn rule(r: &str) -> String {
    format!("{RA}  jwtRules:\n  - {r}\n")
}

#[test]
fn each_request_authentication_rule_reports_field_and_reason() {
    let uri = "jwksUri: https://example.com/jwks.json";
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("issuer missing", rule(&format!("{{{uri}}}")), "spec.jwtRules[0].issuer", "issuer is required"),
        ("both jwks and jwksUri", rule(&format!("{{issuer: a, {uri}, jwks: '{KEYS}'}}")), "spec.jwtRules[0].jwks", "set only one of jwks and jwksUri"),
        ("no keys at all", rule("{issuer: a}"), "spec.jwtRules[0].jwksUri", "set jwks or jwksUri: discovering the keys from the issuer (OpenID discovery) is not served by Rudder"),
        ("jwks not JSON", rule("{issuer: a, jwks: 'nope'}"), "spec.jwtRules[0].jwks", "not a JSON Web Key Set: expected ident at line 1 column 2"),
        ("jwks without keys", rule("{issuer: a, jwks: '{\"k\": 1}'}"), "spec.jwtRules[0].jwks", "not a JSON Web Key Set: no \"keys\" array"),
        ("jwks empty", rule("{issuer: a, jwks: '{\"keys\": []}'}"), "spec.jwtRules[0].jwks", "the JSON Web Key Set has no keys"),
        ("jwk without kty", rule("{issuer: a, jwks: '{\"keys\": [{\"x\": 1}]}'}"), "spec.jwtRules[0].jwks", "key 0 of the JSON Web Key Set has no \"kty\""),
        ("jwksUri not http", rule("{issuer: a, jwksUri: 'file:///etc/keys'}"), "spec.jwtRules[0].jwksUri", "\"file:///etc/keys\" is not an http:// or https:// URL"),
        ("jwksUri without host", rule("{issuer: a, jwksUri: 'https:///keys'}"), "spec.jwtRules[0].jwksUri", "\"https:///keys\" has no host"),
        ("empty audience", rule(&format!("{{issuer: a, {uri}, audiences: [\"\"]}}")), "spec.jwtRules[0].audiences[0]", "audience must not be empty"),
        ("header without name", rule(&format!("{{issuer: a, {uri}, fromHeaders: [{{prefix: \"Bearer \"}}]}}")), "spec.jwtRules[0].fromHeaders[0].name", "header name is required"),
        ("header name with a space", rule(&format!("{{issuer: a, {uri}, fromHeaders: [{{name: \"x jwt\"}}]}}")), "spec.jwtRules[0].fromHeaders[0].name", "\"x jwt\" is not a valid HTTP header name"),
        ("empty param", rule(&format!("{{issuer: a, {uri}, fromParams: [\"\"]}}")), "spec.jwtRules[0].fromParams[0]", "parameter name must not be empty"),
        ("bad cookie", rule(&format!("{{issuer: a, {uri}, fromCookies: [\"a=b\"]}}")), "spec.jwtRules[0].fromCookies[0]", "\"a=b\" is not a cookie name"),
        ("payload header", rule(&format!("{{issuer: a, {uri}, outputPayloadToHeader: \"a:b\"}}")), "spec.jwtRules[0].outputPayloadToHeader", "\"a:b\" is not a valid HTTP header name"),
        ("claim header without claim", rule(&format!("{{issuer: a, {uri}, outputClaimToHeaders: [{{header: x-sub}}]}}")), "spec.jwtRules[0].outputClaimToHeaders[0].claim", "claim is required"),
        ("timeout", rule(&format!("{{issuer: a, {uri}, timeout: 5x}}")), "spec.jwtRules[0].timeout", "invalid duration \"5x\""),
        ("zero timeout", rule(&format!("{{issuer: a, {uri}, timeout: 0s}}")), "spec.jwtRules[0].timeout", "invalid duration \"0s\": must be at least 1ms"),
        ("duplicate issuer", format!("{RA}  jwtRules:\n  - {{issuer: a, {uri}}}\n  - {{issuer: a, {uri}}}\n"), "spec.jwtRules[1].issuer", "issuer \"a\" is already used by an earlier rule"),
        ("targetRefs", format!("{RA}  targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: gw}}]\n"), "spec.targetRefs", "a target (Gateway API gateway or waypoint) is not served by Rudder; select the workloads with spec.selector"),
        ("targetRef", format!("{RA}  targetRef: {{group: gateway.networking.k8s.io, kind: Gateway, name: gw}}\n"), "spec.targetRef", "a target (Gateway API gateway or waypoint) is not served by Rudder; select the workloads with spec.selector"),
        ("wildcard selector", format!("{RA}  selector: {{matchLabels: {{app: \"*\"}}}}\n"), "spec.selector.matchLabels.app", "wildcard not allowed in label value \"*\""),
    ];
    for (name, yaml, field, message) in cases {
        let r = validate(&[("authn.yaml", &yaml)]);
        let errs = errors(&r);
        assert_eq!(errs.len(), 1, "{name}: {:#?}", r.diagnostics);
        let got = (errs[0].field.as_str(), errs[0].message.as_str());
        if name == "timeout" || name == "jwks not JSON" {
            assert_eq!(got.0, field, "{name}");
            assert!(got.1.starts_with(&message[..12]), "{name}: {}", got.1);
        } else {
            assert_eq!(got, (field, message), "{name}");
        }
        assert_eq!(errs[0].file.as_deref(), Some("authn.yaml:1"), "{name}");
        assert_eq!(r.objects, 0, "{name}: the object must be rejected");
    }
    // Unknown fields name themselves.
    let r = validate(&[("authn.yaml", &rule("{issuer: a, jwks_uri: x}"))]);
    assert!(
        errors(&r)[0].message.contains("unknown field `jwks_uri`"),
        "{:?}",
        r.diagnostics
    );
}

#[test]
fn istio_shapes_are_accepted_and_compiled() {
    let yaml = format!(
        "{RA}  selector: {{matchLabels: {{app: httpbin}}}}\n  jwtRules:\n  - issuer: https://a.example\n    audiences: [x, y]\n    jwksUri: https://a.example/jwks.json\n    fromHeaders: [{{name: X-Jwt, prefix: \"Bearer \"}}, {{name: x-token}}]\n    fromParams: [token]\n    fromCookies: [session]\n    forwardOriginalToken: true\n    outputPayloadToHeader: x-payload\n    outputClaimToHeaders: [{{header: x-sub, claim: sub}}]\n    timeout: 1.5s\n  - issuer: b\n    jwks: '{KEYS}'\n---\napiVersion: security.istio.io/v1beta1\nkind: RequestAuthentication\nmetadata: {{name: mesh, namespace: rudder-system}}\nspec: {{jwtRules: [{{issuer: c, jwksUri: \"http://keys.example:8080/c\"}}]}}\n"
    );
    let r = validate(&[("authn.yaml", &yaml)]);
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    assert_eq!(r.objects, 2);
    let objs = objects(&yaml);
    let fetched: BTreeMap<String, String> = [
        ("https://a.example/jwks.json".to_string(), KEYS.to_string()),
        (
            "https://unused.example/jwks.json".to_string(),
            KEYS.to_string(),
        ),
    ]
    .into();
    let snap = build_snapshot_with_jwks(&objs, vec![], &fetched);
    let ras = &snap.security.request_authentications;
    assert_eq!(ras.len(), 2);
    let p = ras.iter().find(|p| p.source.name == "jwt").unwrap();
    assert_eq!(
        p.selector,
        Some(Labels::from([("app".into(), "httpbin".into())]))
    );
    let a = &p.rules[0];
    assert_eq!(a.issuer, "https://a.example");
    assert_eq!(a.audiences, ["x", "y"]);
    assert_eq!(
        a.jwks,
        JwksSource::Uri("https://a.example/jwks.json".into())
    );
    assert_eq!(
        a.from_headers,
        [
            ("x-jwt".to_string(), "Bearer ".to_string()),
            ("x-token".to_string(), String::new())
        ]
    );
    assert_eq!(a.timeout, Some(std::time::Duration::from_millis(1500)));
    assert!(a.forward_original_token);
    assert_eq!(p.rules[1].jwks, JwksSource::Inline(KEYS.into()));
    // Only the key sets of URIs in use are kept; the root namespace's
    // policy applies to every namespace.
    assert_eq!(
        snap.security.jwks.keys().collect::<Vec<_>>(),
        ["https://a.example/jwks.json"]
    );
    let labels = Labels::from([("app".into(), "other".into())]);
    let applying: Vec<_> = snap
        .security
        .request_authn_for("rudder-system", "default", &labels)
        .map(|p| p.source.name.as_str())
        .collect();
    assert_eq!(applying, ["mesh"]);
    // A new key set changes the snapshot's version (it is configuration).
    let before = build_snapshot(&objs, vec![]);
    assert_ne!(before.version, snap.version);
    assert!(before.security.jwks.is_empty());
}
