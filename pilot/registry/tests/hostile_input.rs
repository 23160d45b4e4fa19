//! Hostile input for the loader and the builder (the code `pilot serve`'s
//! sources and `pilot validate` run on every file): generated YAML never
//! panics them, every problem is a diagnostic that names an object or a file,
//! and the same input always gives the same diagnostics. Two generators:
//! the repository's own YAML with random edits (a bad save, a truncated
//! upload), and objects of every served kind with arbitrary specs built from
//! the schemas' field names (so they reach deep validation paths).

use std::path::Path;

use rudder_registry::{load::load_str, validate::validate_loaded};
use rudder_test_support::hostile::{check, json, mutated};
use serde_json::json;

/// The YAML files of the repository's samples and pilot's test data.
fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut out = Vec::new();
    let mut dirs = vec![root.join("samples"), root.join("pilot/testdata")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                out.push(std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    out.sort();
    assert!(out.len() >= 5, "a corpus of the repository's YAML");
    out
}

/// Loads and validates `text`; panics propagate (the property), diagnostics
/// must be usable, and the run must be deterministic.
fn judge(text: &str) -> Result<(), proptest::test_runner::TestCaseError> {
    let run = || {
        let loaded = load_str(text, "hostile.yaml", "hostile");
        validate_loaded(vec![loaded], Vec::new()).lines()
    };
    let first = run();
    for line in &first {
        proptest::prop_assert!(
            line.contains("hostile.yaml") || line.contains(' '),
            "a diagnostic that says nothing: {line:?}"
        );
    }
    proptest::prop_assert_eq!(&first, &run(), "the same input gave other diagnostics");
    Ok(())
}

#[test]
fn edited_repository_yaml_never_panics_the_loader_or_the_builder() {
    check("registry: edited YAML", 600, mutated(corpus()), |text| {
        judge(&text)
    });
}

const KINDS: &[(&str, &str)] = &[
    ("networking.istio.io/v1", "VirtualService"),
    ("networking.istio.io/v1beta1", "DestinationRule"),
    ("networking.istio.io/v1alpha3", "Gateway"),
    ("networking.istio.io/v1", "ServiceEntry"),
    ("networking.istio.io/v1", "WorkloadEntry"),
    ("networking.istio.io/v1", "Sidecar"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("security.istio.io/v1beta1", "PeerAuthentication"),
    ("config.istio.io/v1alpha2", "RouteRule"),
    ("config.istio.io/v1alpha2", "DestinationPolicy"),
    ("v1", "Service"),
    ("v1", "Pod"),
    ("v1", "Secret"),
    ("networking.k8s.io/v1", "Ingress"),
    ("discovery.k8s.io/v1", "EndpointSlice"),
];

/// Field names of the served kinds' schemas.
const KEYS: &[&str] = &[
    "hosts",
    "gateways",
    "http",
    "tcp",
    "tls",
    "route",
    "destination",
    "host",
    "subset",
    "port",
    "number",
    "name",
    "weight",
    "match",
    "uri",
    "prefix",
    "exact",
    "regex",
    "headers",
    "method",
    "queryParams",
    "sourceLabels",
    "timeout",
    "retries",
    "attempts",
    "perTryTimeout",
    "retryOn",
    "fault",
    "delay",
    "abort",
    "fixedDelay",
    "httpStatus",
    "percentage",
    "value",
    "mirror",
    "mirrorPercentage",
    "corsPolicy",
    "allowOrigins",
    "rewrite",
    "redirect",
    "authority",
    "delegate",
    "namespace",
    "trafficPolicy",
    "loadBalancer",
    "simple",
    "consistentHash",
    "httpHeaderName",
    "connectionPool",
    "maxConnections",
    "http1MaxPendingRequests",
    "outlierDetection",
    "consecutive5xxErrors",
    "interval",
    "baseEjectionTime",
    "subsets",
    "labels",
    "mode",
    "credentialName",
    "sni",
    "subjectAltNames",
    "exportTo",
    "selector",
    "matchLabels",
    "servers",
    "bind",
    "protocol",
    "httpsRedirect",
    "addresses",
    "ports",
    "location",
    "resolution",
    "endpoints",
    "address",
    "workloadSelector",
    "egress",
    "ingress",
    "outboundTrafficPolicy",
    "rules",
    "from",
    "to",
    "when",
    "source",
    "principals",
    "namespaces",
    "ipBlocks",
    "operation",
    "paths",
    "methods",
    "key",
    "values",
    "action",
    "mtls",
    "portLevelMtls",
    "precedence",
    "spec",
    "metadata",
    "targetPort",
    "clusterIP",
    "type",
    "podIP",
    "podIPs",
    "ip",
    "conditions",
    "status",
    "phase",
    "data",
    "stringData",
    "tls.crt",
    "tls.key",
    "ingressClassName",
    "defaultBackend",
    "backend",
    "service",
    "path",
    "pathType",
    "secretName",
    "addressType",
    "conditions",
    "ready",
    "targetRef",
    "serviceAccountName",
];

#[test]
fn arbitrary_specs_of_every_served_kind_never_panic_the_builder() {
    let doc = (
        proptest::sample::select(KINDS),
        json(KEYS, 5),
        json(KEYS, 2),
    )
        .prop_map(|((api, kind), spec, extra)| {
            let mut o = json!({
                "apiVersion": api,
                "kind": kind,
                "metadata": {"name": "hostile", "namespace": "default"},
                "spec": spec,
            });
            if let Some(m) = extra.as_object() {
                for (k, v) in m {
                    o[k.as_str()] = v.clone();
                }
            }
            // JSON is YAML: one document per object.
            serde_json::to_string(&o).unwrap()
        });
    check("registry: arbitrary specs", 1500, doc, |text| judge(&text));
}

use proptest::strategy::Strategy;
