//! Golden tests of end-user JWT (issue 18): a RequestAuthentication becomes
//! a `jwt_authn` filter before RBAC on the inbound HTTP chains (inline keys,
//! keys pilot fetched, Istio's fake key for a `jwksUri` never fetched), and
//! AuthorizationPolicy `requestPrincipals`, `notRequestPrincipals` and
//! `request.auth.*` conditions become RBAC matchers on the filter's dynamic
//! metadata. Each case is accepted by `envoy --mode validate`.

mod support;

use rudder_config::{AuthorizationPolicySpec, RequestAuthenticationSpec};
use rudder_model::*;
use rudder_registry::{check::Checker, compile::security, Kind, ObjectKey, Origin};
use rudder_xds::fixtures::*;
use serde_json::{json, Value};
use support::*;

const KEYS_A: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","kid":"a","x":"mSh6XLlDMPyAUHK-eCOzBbPrnJgRT5ltjR4IyTh20M8","y":"4nCFIv5huYpo0x9EjPzTAqS9BWNw9hVN3qp24V2t83M"}]}"#;
const KEYS_B: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","kid":"b","x":"3HtfH8Ae9i205jd9y_3Bz4djZKWvAMXQxbVaHdrl3Ks","y":"ccrjSLDZPd4vbfxI3egdGLTh00KDfiO-n4CUOcRw4NY"}]}"#;
const FETCHED: &str = "https://issuer-b.example/jwks.json";
const NEVER_FETCHED: &str = "https://issuer-c.example/jwks.json";

/// httpbin (HTTP 8000) and tcp-echo (TCP 9000) in one pod's labels each.
fn mesh() -> SnapshotBuilder {
    SnapshotBuilder::new()
        .service(mk_service(
            "httpbin",
            NS,
            "198.19.1.1",
            vec![mk_port("http", 8000, 8000), mk_port("tcp", 9000, 9000)],
            &[("app", "httpbin")],
        ))
        .pod(mk_pod(
            "httpbin-v1",
            NS,
            "198.18.1.1",
            &[("app", "httpbin")],
        ))
        .pod(mk_pod("other", NS, "198.18.1.2", &[("app", "other")]))
}

fn request_authn(yaml: &str) -> RequestAuthn {
    let spec: RequestAuthenticationSpec = serde_saphyr::from_str(yaml).expect("YAML parses");
    let key = ObjectKey::new(Kind::RequestAuthentication, NS, "jwt");
    let mut ck = Checker::new(&key, &Origin::default());
    let p = security::request_authentication(&spec, &key, &mut ck);
    assert!(!ck.has_errors(), "{:#?}", ck.diagnostics);
    p.expect("policy compiles")
}

fn authz(name: &str, yaml: &str) -> AuthzPolicy {
    let spec: AuthorizationPolicySpec = serde_saphyr::from_str(yaml).expect("YAML parses");
    let key = ObjectKey::new(Kind::AuthorizationPolicy, NS, name);
    let mut ck = Checker::new(&key, &Origin::default());
    let p = security::authorization_policy(&spec, &key, &mut ck);
    assert!(!ck.has_errors(), "{:#?}", ck.diagnostics);
    p.expect("policy compiles")
}

fn http_filters(chain: &Value) -> Vec<Value> {
    chain["filters"][0]["typedConfig"]["httpFilters"]
        .as_array()
        .unwrap()
        .clone()
}

fn names(filters: &[Value]) -> Vec<String> {
    filters
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

fn snapshot() -> std::sync::Arc<Snapshot> {
    let ra = request_authn(&format!(
        r#"
selector: {{matchLabels: {{app: httpbin}}}}
jwtRules:
- issuer: issuer-a
  audiences: [httpbin]
  jwks: '{KEYS_A}'
  fromHeaders: [{{name: X-Jwt, prefix: "Bearer "}}]
  fromParams: [token]
  fromCookies: [session]
  forwardOriginalToken: true
  outputPayloadToHeader: x-jwt-payload
  outputClaimToHeaders: [{{header: x-sub, claim: sub}}]
- issuer: https://issuer-b.example
  jwksUri: {FETCHED}
  timeout: 2s
- issuer: issuer-c
  jwksUri: {NEVER_FETCHED}
"#
    ));
    let require = authz(
        "require-jwt",
        r#"
selector: {matchLabels: {app: httpbin}}
rules:
- from:
  - source: {requestPrincipals: ["*"], notRequestPrincipals: ["issuer-a/blocked*"]}
  when:
  - {key: "request.auth.claims[groups]", values: [admins]}
  - {key: "request.auth.claims[realm][role]", values: ["dev*"]}
  - {key: request.auth.audiences, values: [httpbin]}
  - {key: request.auth.presenter, notValues: [evil]}
  - {key: request.auth.principal, values: ["https://issuer-b.example/*"]}
"#,
    );
    mesh()
        .request_authentication(ra)
        .authorization_policy(require)
        .jwks(FETCHED, KEYS_B)
        .build()
}

#[test]
fn request_authentication_adds_jwt_authn_before_rbac() {
    let s = snapshot();
    let j = golden("jwt_request_authn", &s, &proxy(&s, "httpbin-v1"));
    let filters = http_filters(chain(&j, "virtual", "inbound|8000"));
    assert_eq!(
        names(&filters)[..3],
        [
            "envoy.filters.http.jwt_authn",
            "envoy.filters.http.rbac",
            "envoy.filters.http.fault"
        ]
    );
    let cfg = &filters[0]["typedConfig"];
    let a = &cfg["providers"]["origins-0"];
    assert_eq!(a["issuer"], "issuer-a");
    assert_eq!(a["audiences"], json!(["httpbin"]));
    assert_eq!(a["localJwks"]["inlineString"], KEYS_A);
    assert_eq!(
        a["fromHeaders"],
        json!([{"name": "x-jwt", "valuePrefix": "Bearer "}])
    );
    assert_eq!(a["fromParams"], json!(["token"]));
    assert_eq!(a["fromCookies"], json!(["session"]));
    assert_eq!(a["forward"], true);
    assert_eq!(a["forwardPayloadHeader"], "x-jwt-payload");
    assert_eq!(
        a["claimToHeaders"],
        json!([{"headerName": "x-sub", "claimName": "sub"}])
    );
    assert_eq!(a["payloadInMetadata"], "payload");
    // The fetched key set is inlined; a URI never fetched gets the fake key.
    assert_eq!(
        cfg["providers"]["origins-1"]["localJwks"]["inlineString"],
        KEYS_B
    );
    assert_eq!(
        cfg["providers"]["origins-2"]["localJwks"]["inlineString"],
        rudder_xds::FAKE_JWKS
    );
    // Several providers: any one of them, or all of {provider or missing}.
    let any = &cfg["rules"][0]["requires"]["requiresAny"]["requirements"];
    assert_eq!(any[0], json!({"providerName": "origins-0"}));
    assert_eq!(
        any[3]["requiresAll"]["requirements"][1],
        json!({"requiresAny": {"requirements": [{"providerName": "origins-1"}, {"allowMissing": {}}]}})
    );
    assert_eq!(cfg["rules"][0]["match"], json!({"prefix": "/"}));
    assert_eq!(cfg["bypassCorsPreflight"], true);

    // TCP chains have no JWT filter, and the HTTP-only ALLOW rule is dropped there.
    let tcp = chain(&j, "virtual", "inbound|9000");
    assert_eq!(tcp["filters"][0]["name"], "envoy.filters.network.rbac");
    assert_eq!(
        tcp["filters"][0]["typedConfig"]["rules"]["policies"],
        Value::Null
    );
    // A workload no policy selects has no JWT filter.
    let other = golden("jwt_not_selected", &s, &proxy(&s, "other"));
    let pass = chain(&other, "virtual", "inbound-passthrough");
    assert_ne!(pass["filters"][0]["name"], "envoy.filters.http.jwt_authn");
}

#[test]
fn request_principals_and_claims_become_metadata_matchers() {
    let s = snapshot();
    let j = golden("jwt_request_authn", &s, &proxy(&s, "httpbin-v1"));
    let filters = http_filters(chain(&j, "virtual", "inbound|8000"));
    let policy =
        &filters[1]["typedConfig"]["rules"]["policies"]["ns[default]-policy[require-jwt]-rule[0]"];
    let md = |path: &[&str], value: Value| {
        let path: Vec<Value> = std::iter::once("payload")
            .chain(path.iter().copied())
            .map(|k| json!({"key": k}))
            .collect();
        json!({"sourcedMetadata": {"metadataMatcher": {
            "filter": "envoy.filters.http.jwt_authn", "path": path, "value": value}}})
    };
    let s_ = |m: Value| json!({"stringMatch": m});
    let any = json!({"safeRegex": {"regex": ".+"}});
    let claim = |path: &[&str], m: Value| {
        md(
            path,
            json!({"orMatch": {"valueMatchers": [s_(m.clone()), {"listMatch": {"oneOf": s_(m)}}]}}),
        )
    };
    let principal = |iss: Value, sub: Value| json!({"andIds": {"ids": [md(&["iss"], s_(iss)), md(&["sub"], s_(sub))]}});
    let ids = policy["principals"][0]["andIds"]["ids"].as_array().unwrap();
    // from: requestPrincipals "*" (any iss and sub) AND NOT "issuer-a/blocked*".
    assert_eq!(
        ids[0],
        json!({"andIds": {"ids": [
            principal(any.clone(), any.clone()),
            {"notId": principal(json!({"exact": "issuer-a"}), json!({"prefix": "blocked"}))}
        ]}})
    );
    assert_eq!(ids[1], claim(&["groups"], json!({"exact": "admins"})));
    assert_eq!(ids[2], claim(&["realm", "role"], json!({"prefix": "dev"})));
    assert_eq!(ids[3], claim(&["aud"], json!({"exact": "httpbin"})));
    assert_eq!(
        ids[4],
        json!({"notId": claim(&["azp"], json!({"exact": "evil"}))})
    );
    // `<iss>/*`: the issuer (a URL, split at its last `/`) exactly, any subject.
    assert_eq!(
        ids[5],
        principal(json!({"exact": "https://issuer-b.example"}), any)
    );
}

/// A RequestAuthentication selecting the ingress gateway's pods puts the
/// same filter on the gateway's HTTP chains (Istio applies it there too).
#[test]
fn request_authentication_on_a_gateway() {
    let read = |f: &str| {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/gateway")
            .join(f);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let ra = format!(
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: gw-jwt, namespace: istio-system}}\nspec:\n  selector: {{matchLabels: {{istio: ingressgateway}}}}\n  jwtRules:\n  - {{issuer: issuer-a, jwks: '{KEYS_A}'}}\n"
    );
    let mut objects = Vec::new();
    for (i, text) in [read("platform.yaml"), read("bookinfo-gateway.yaml"), ra]
        .iter()
        .enumerate()
    {
        let l = rudder_registry::load::load_str(text, &format!("f{i}.yaml"), &format!("f{i}.yaml"));
        assert!(
            l.rejected.is_empty() && l.problems.is_empty(),
            "{:?}",
            l.rejected
        );
        objects.extend(l.objects);
    }
    let s = std::sync::Arc::new(rudder_registry::build::build_snapshot(&objects, vec![]));
    assert_eq!(
        s.security.request_authentications.len(),
        1,
        "{:?}",
        s.diagnostics
    );
    let proxy = rudder_xds::resolve_proxy(
        &s,
        NodeId::router(
            "198.18.3.2".parse().unwrap(),
            "istio-ingressgateway-0",
            "istio-system",
        ),
        &NodeMetadata::default(),
    );
    let j = golden("jwt_gateway", &s, &proxy);
    let chain = &j["lds"]["0.0.0.0_8080"]["filterChains"][0];
    let filters = http_filters(chain);
    assert_eq!(names(&filters)[0], "envoy.filters.http.jwt_authn");
    assert_eq!(
        filters[0]["typedConfig"]["providers"]["origins-0"]["issuer"],
        "issuer-a"
    );
}
