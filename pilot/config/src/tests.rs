//! Round-trip and strictness tests against Istio-shaped YAML.

use crate::{
    kube,
    meta::{PresenceMatch, Resource},
    DestinationRuleSpec, RouteRuleSpec, StringMatch, VirtualServiceSpec,
};

#[test]
fn virtual_service_parses_istio_shape() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}, uri: {prefix: /api}}]
    route: [{destination: {host: reviews, subset: v2, port: {number: 9080}}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 99}
    - {destination: {host: reviews, subset: v2}, weight: 1}
    timeout: 10s
    retries: {attempts: 3, perTryTimeout: 2s}
    fault: {delay: {fixedDelay: 5s, percentage: {value: 0.5}}}
"#;
    let vs: Resource<VirtualServiceSpec> = serde_saphyr::from_str(yaml).unwrap();
    assert_eq!(vs.spec.hosts, ["reviews"]);
    let m = &vs.spec.http[0].matches[0];
    assert_eq!(
        m.headers["end-user"],
        PresenceMatch(Some(StringMatch::Exact("jason".into())))
    );
    assert_eq!(m.uri, Some(StringMatch::Prefix("/api".into())));
    assert_eq!(
        vs.spec.http[0].route[0]
            .destination
            .port
            .as_ref()
            .unwrap()
            .number,
        9080
    );
    assert_eq!(vs.spec.http[1].route[1].weight, Some(1));
    assert_eq!(
        vs.spec.http[1]
            .fault
            .as_ref()
            .unwrap()
            .delay
            .as_ref()
            .unwrap()
            .percentage
            .as_ref()
            .unwrap()
            .value,
        0.5
    );
}

#[test]
fn unknown_istio_field_is_an_error_naming_it() {
    let yaml = "hosts: [reviews]\nhttp:\n- rout: []\n";
    let err = serde_saphyr::from_str::<VirtualServiceSpec>(yaml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("rout"), "{err}");
}

#[test]
fn destination_rule_and_route_rule_parse() {
    let dr: DestinationRuleSpec = serde_saphyr::from_str(
        "host: reviews\ntrafficPolicy:\n  loadBalancer: {simple: LEAST_REQUEST}\nsubsets:\n- {name: v1, labels: {version: v1}}\n",
    )
    .unwrap();
    assert_eq!(dr.subsets[0].labels["version"], "v1");
    let rr: RouteRuleSpec = serde_saphyr::from_str(
        "destination: {name: reviews}\nprecedence: 2\nmatch: {request: {headers: {uri: {prefix: /x}}}}\nroute:\n- {labels: {version: v1}, weight: 99}\n",
    )
    .unwrap();
    assert_eq!(rr.precedence, 2);
    assert_eq!(
        rr.matches.unwrap().request.unwrap().headers["uri"],
        StringMatch::Prefix("/x".into())
    );
}

#[test]
fn kube_kinds_ignore_unknown_fields_and_accept_named_target_ports() {
    let svc: kube::Service = serde_saphyr::from_str(
        "metadata: {name: reviews}\nspec:\n  type: ClusterIP\n  clusterIP: 10.0.0.1\n  ports:\n  - {name: http, port: 9080, targetPort: web}\n  - {port: 81, targetPort: 8081}\n",
    )
    .unwrap();
    assert_eq!(
        svc.spec.ports[0].target_port,
        Some(kube::IntOrString::String("web".into()))
    );
    assert_eq!(
        svc.spec.ports[1].target_port,
        Some(kube::IntOrString::Int(8081))
    );
}

#[test]
fn schemas_generate() {
    let s = schemars::schema_for!(VirtualServiceSpec);
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("\"mirrorPercentage\""));
    assert!(json.contains("\"perTryTimeout\""));
}

#[test]
fn an_empty_header_match_is_presence_and_other_bad_matches_keep_their_errors() {
    let spec = |m: &str| {
        serde_saphyr::from_str::<VirtualServiceSpec>(&format!(
            "hosts: [r]\nhttp:\n- match: [{{headers: {{x-a: {m}}}}}]\n"
        ))
    };
    let vs = spec("{}").unwrap();
    assert_eq!(vs.http[0].matches[0].headers["x-a"], PresenceMatch(None));
    // It serialises back as `{}`.
    let json = serde_json::to_value(&vs).unwrap();
    assert_eq!(
        json["http"][0]["match"][0]["headers"]["x-a"],
        serde_json::json!({})
    );
    let vs = spec("{prefix: a}").unwrap();
    assert_eq!(
        vs.http[0].matches[0].headers["x-a"],
        PresenceMatch(Some(StringMatch::Prefix("a".into())))
    );
    let e = spec("{suffix: a}").unwrap_err().to_string();
    assert!(e.contains("unknown variant `suffix`"), "{e}");
    let e = spec("{exact: a, prefix: b}").unwrap_err().to_string();
    assert!(!e.is_empty());
}
