//! Field coverage: `docs/fields.md` held to the spec types and the generator.
//!
//! ```text
//!  spec types ─► JSON schema ─► leaf field paths ══ rows of docs/fields.md
//!  each row:  platform + base rule (+ `with`)          ─► Snapshot ─► xDS of every pod ─┐
//!             platform + base rule (+ `with`) + field  ─► Snapshot ─► xDS of every pod ─┴► served: differ
//!                                                          └► diagnostics: warned / refused name the field
//! ```
//!
//! A field that is deserialized but reaches neither a generator nor a
//! diagnostic fails here: Istio's rule is that a field is served as Istio
//! serves it or refused with its path, never accepted and ignored.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    sync::Arc,
};

use rudder_model::{NodeId, NodeMetadata, Severity, Snapshot};
use rudder_registry::{load::load_str, Store};
use rudder_xds::{check_consistency, to_json, Generator};
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

const DOC: &str = "docs/fields.md";

/// The key set of the base RequestAuthentication (a P-256 public key).
const COVERAGE_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","kid":"a","x":"mSh6XLlDMPyAUHK-eCOzBbPrnJgRT5ltjR4IyTh20M8","y":"4nCFIv5huYpo0x9EjPzTAqS9BWNw9hVN3qp24V2t83M"}]}"#;

/// What a row says of its field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Served,
    Warned,
    Refused,
}

/// One row of the table.
#[derive(Debug)]
struct Row {
    kind: String,
    field: String,
    example: Value,
    with: Option<Value>,
    fate: Fate,
    line: usize,
}

impl Row {
    fn at(&self) -> String {
        format!("{DOC}:{}: {} {}", self.line, self.kind, self.field)
    }
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn flow(text: &str, at: &str) -> Result<Value, String> {
    let text = text.trim().trim_matches('`');
    serde_saphyr::from_str::<Value>(text).map_err(|e| format!("{at}: `{text}` is not YAML: {e}"))
}

/// The rows of `docs/fields.md`, by section (`## Kind`).
fn rows(text: &str) -> Result<Vec<Row>, Vec<String>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut kind = String::new();
    for (i, line) in text.lines().enumerate() {
        let at = format!("{DOC}:{}", i + 1);
        if let Some(k) = line.strip_prefix("## ") {
            kind = k.trim().to_string();
            continue;
        }
        if !line.starts_with('|') || line.starts_with("| field") || line.starts_with("|---") {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        let [field, example, with, fate] = cells[..] else {
            errors.push(format!("{at}: want 4 cells, found {}", cells.len()));
            continue;
        };
        let fate = match fate.split(':').next().unwrap_or("") {
            "served" => Fate::Served,
            "warned" => Fate::Warned,
            "refused" => Fate::Refused,
            other => {
                errors.push(format!("{at}: fate `{other}` is not served/warned/refused"));
                continue;
            }
        };
        let with = match with {
            "-" => Ok(None),
            w => flow(w, &at).map(Some),
        };
        match (flow(example, &at), with) {
            (Ok(example), Ok(with)) => out.push(Row {
                kind: kind.clone(),
                field: field.trim_matches('`').to_string(),
                example,
                with,
                fate,
                line: i + 1,
            }),
            (Err(e), _) | (_, Err(e)) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

// ---- the spec types' fields, from their JSON schema ----

/// Follows `$ref` and `Option`'s `anyOf [T, null]` to the schema of `T`.
fn resolve<'a>(defs: &'a Value, mut node: &'a Value) -> &'a Value {
    loop {
        if let Some(r) = node.get("$ref").and_then(Value::as_str) {
            let name = r.rsplit('/').next().unwrap_or(r);
            node = &defs[name];
            continue;
        }
        let branches = node
            .get("anyOf")
            .or_else(|| node.get("oneOf"))
            .and_then(Value::as_array);
        if let Some(b) = branches {
            let real: Vec<&Value> = b.iter().filter(|s| s["type"] != "null").collect();
            if let [one] = real[..] {
                node = one;
                continue;
            }
        }
        return node;
    }
}

/// A struct: named properties (not a map, not a one-of).
fn is_struct(node: &Value) -> bool {
    node.get("properties").is_some() && node.get("oneOf").is_none()
}

fn walk(defs: &Value, node: &Value, prefix: &str, out: &mut BTreeSet<String>, depth: usize) {
    assert!(depth < 16, "schema nests too deep at {prefix}");
    let Some(props) = node["properties"].as_object() else {
        return;
    };
    for (name, sub) in props {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let sub = resolve(defs, sub);
        let items = sub.get("items").map(|i| resolve(defs, i));
        if is_struct(sub) {
            walk(defs, sub, &path, out, depth + 1);
        } else if let Some(items) = items.filter(|i| is_struct(i)) {
            walk(defs, items, &format!("{path}[]"), out, depth + 1);
        } else {
            out.insert(path);
        }
    }
}

fn fields_of<T: JsonSchema>() -> BTreeSet<String> {
    let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap();
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    let mut out = BTreeSet::new();
    walk(&defs, resolve(&defs, &schema), "", &mut out, 0);
    out
}

/// The kinds of the table: their spec's fields, where their objects come
/// from, and the rule each row is applied to.
struct KindSpec {
    fields: BTreeSet<String>,
    api_version: &'static str,
    base: Value,
    /// Specs of other objects of the kind beside the rule (`precedence` needs one).
    others: Vec<Value>,
    /// Whole objects of other kinds beside the rule (routes to a subset, for
    /// subset-level settings that live on routes).
    context: Vec<Value>,
}

fn kinds() -> BTreeMap<&'static str, KindSpec> {
    use rudder_config as c;
    let mut m = BTreeMap::new();
    let mut add = |kind, fields, api_version, base| {
        m.insert(
            kind,
            KindSpec {
                fields,
                api_version,
                base,
                others: Vec::new(),
                context: Vec::new(),
            },
        );
    };
    add(
        "VirtualService",
        fields_of::<c::VirtualServiceSpec>(),
        "networking.istio.io/v1",
        json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]}),
    );
    add(
        "DestinationRule",
        fields_of::<c::DestinationRuleSpec>(),
        "networking.istio.io/v1",
        json!({"host": "reviews", "subsets": [
            {"name": "v1", "labels": {"version": "v1"}},
            {"name": "v2", "labels": {"version": "v2"}},
            {"name": "v3", "labels": {"version": "v3"}}]}),
    );
    add(
        "Sidecar",
        fields_of::<c::SidecarSpec>(),
        "networking.istio.io/v1",
        json!({"egress": [{"hosts": ["./reviews.default.svc.cluster.local"]}]}),
    );
    add(
        "PeerAuthentication",
        fields_of::<c::PeerAuthenticationSpec>(),
        "security.istio.io/v1",
        json!({"mtls": {"mode": "STRICT"}}),
    );
    add(
        "AuthorizationPolicy",
        fields_of::<c::AuthorizationPolicySpec>(),
        "security.istio.io/v1",
        json!({"selector": {"matchLabels": {"app": "reviews"}},
               "rules": [{"from": [{"source": {"namespaces": ["default"]}}]}]}),
    );
    add(
        "RequestAuthentication",
        fields_of::<c::RequestAuthenticationSpec>(),
        "security.istio.io/v1",
        json!({"selector": {"matchLabels": {"app": "reviews"}},
               "jwtRules": [{"issuer": "https://issuer.example", "jwks": COVERAGE_JWKS}]}),
    );
    add(
        "RouteRule",
        fields_of::<c::RouteRuleSpec>(),
        "config.istio.io/v1alpha2",
        json!({"destination": {"name": "reviews"}, "route": [{"labels": {"version": "v1"}}]}),
    );
    add(
        "DestinationPolicy",
        fields_of::<c::DestinationPolicySpec>(),
        "config.istio.io/v1alpha2",
        json!({"destination": {"name": "reviews"}, "loadBalancing": {"name": "RANDOM"}}),
    );
    add(
        "ServiceEntry",
        fields_of::<c::ServiceEntrySpec>(),
        "networking.istio.io/v1",
        json!({"hosts": ["api.example.com"],
               "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
               "resolution": "STATIC",
               "endpoints": [{"address": "203.0.113.1"}]}),
    );
    add(
        "WorkloadEntry",
        fields_of::<c::WorkloadEntrySpec>(),
        "networking.istio.io/v1",
        json!({"address": "10.1.0.1", "labels": {"app": "vm"}}),
    );
    add(
        "Gateway",
        fields_of::<c::GatewaySpec>(),
        "networking.istio.io/v1",
        json!({"selector": {"istio": "ingressgateway"},
               "servers": [{"port": {"number": 8080, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}),
    );
    // The Gateway API: a Gateway `gw` (HTTP 8080 from every namespace, TCP
    // 27017, TLS passthrough 8443) served by the platform's Gateway API
    // gateway pod, beside each route kind under test.
    let gw = json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "default"},
        "spec": {"gatewayClassName": "rudder", "listeners": [
            {"name": "http", "port": 8080, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}},
            {"name": "tcp", "port": 27017, "protocol": "TCP"},
            {"name": "tls", "port": 8443, "protocol": "TLS", "tls": {"mode": "Passthrough"}}]}});
    add(
        "GatewayClass",
        fields_of::<c::gateway_api::GatewayClassSpec>(),
        "gateway.networking.k8s.io/v1",
        json!({"controllerName": "rudder.io/gateway-controller"}),
    );
    add(
        "Gateway (Gateway API)",
        fields_of::<c::gateway_api::KubeGatewaySpec>(),
        "gateway.networking.k8s.io/v1",
        json!({"gatewayClassName": "rudder", "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]}),
    );
    add(
        "HTTPRoute",
        fields_of::<c::gateway_api::HttpRouteSpec>(),
        "gateway.networking.k8s.io/v1",
        json!({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "reviews", "port": 9080}]}]}),
    );
    add(
        "GRPCRoute",
        fields_of::<c::gateway_api::GrpcRouteSpec>(),
        "gateway.networking.k8s.io/v1",
        json!({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "reviews", "port": 9080}]}]}),
    );
    add(
        "TCPRoute",
        fields_of::<c::gateway_api::TcpRouteSpec>(),
        "gateway.networking.k8s.io/v1alpha2",
        json!({"parentRefs": [{"name": "gw", "sectionName": "tcp"}], "rules": [{"backendRefs": [{"name": "mongodb", "port": 27017}]}]}),
    );
    add(
        "TLSRoute",
        fields_of::<c::gateway_api::TlsRouteSpec>(),
        "gateway.networking.k8s.io/v1alpha2",
        json!({"parentRefs": [{"name": "gw", "sectionName": "tls"}], "hostnames": ["secure.example.com"],
               "rules": [{"backendRefs": [{"name": "secure", "port": 443}]}]}),
    );
    add(
        "ReferenceGrant",
        fields_of::<c::gateway_api::ReferenceGrantSpec>(),
        "gateway.networking.k8s.io/v1beta1",
        json!({"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "other"}],
               "to": [{"group": "", "kind": "Service"}]}),
    );
    for kind in [
        "HTTPRoute",
        "GRPCRoute",
        "TCPRoute",
        "TLSRoute",
        "ReferenceGrant",
    ] {
        m.get_mut(kind).unwrap().context.push(gw.clone());
    }
    // A Gateway of the class under test; a route onto the Gateway under test;
    // a route of namespace `other` to reviews (the grant under test allows it).
    let mut of_class = gw.clone();
    of_class["metadata"]["name"] = json!("gw-class");
    of_class["spec"]["gatewayClassName"] = json!("coverage");
    m.get_mut("GatewayClass").unwrap().context.push(of_class);
    let route = |name: &str, ns: &str, parent: &str| {
        json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"parentRefs": [{"name": parent, "namespace": "default"}],
                 "rules": [{"backendRefs": [{"name": "reviews", "namespace": "default", "port": 9080}]}]}})
    };
    m.get_mut("GatewayClass")
        .unwrap()
        .context
        .push(route("to-class", "default", "gw-class"));
    // Onto the Gateway under test: its own namespace's route and namespace
    // `other`'s, both by listener name.
    for (name, ns) in [("to-coverage", "default"), ("other-to-coverage", "other")] {
        let mut r = route(name, ns, "coverage");
        r["spec"]["parentRefs"][0]["sectionName"] = json!("http");
        m.get_mut("Gateway (Gateway API)").unwrap().context.push(r);
    }
    m.get_mut("ReferenceGrant")
        .unwrap()
        .context
        .push(route("from-other", "other", "gw"));
    // Subsets of the ServiceEntry's host, for endpoint labels.
    m.get_mut("ServiceEntry").unwrap().context.push(json!({
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "api", "namespace": "default"},
        "spec": {"host": "api.example.com", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}}));
    // The ServiceEntry whose workloadSelector picks the WorkloadEntry.
    m.get_mut("WorkloadEntry").unwrap().context.push(json!({
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "vm", "namespace": "default"},
        "spec": {"hosts": ["vm.example.com"], "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
                 "resolution": "STATIC", "workloadSelector": {"labels": {"app": "vm"}}}}));
    // A VirtualService bound to the Gateway (the rule is `coverage`), so its
    // servers have routes.
    m.get_mut("Gateway").unwrap().context.push(json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "via-gateway", "namespace": "default"},
        "spec": {"hosts": ["*"], "gateways": ["coverage"],
                 "http": [{"route": [{"destination": {"host": "reviews", "port": {"number": 9080}}}]}]}}));
    // Routes to subset v1, for the settings of a subset that live on its
    // routes (consistent-hash cookies).
    m.get_mut("DestinationRule").unwrap().context.push(json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "to-v1", "namespace": "default"},
        "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]}}));
    // A second RouteRule for reviews, so precedence has something to order.
    m.get_mut("RouteRule").unwrap().others.push(json!({
        "destination": {"name": "reviews"}, "precedence": 1,
        "match": {"request": {"headers": {"x-other": {"exact": "1"}}}},
        "route": [{"labels": {"version": "v2"}}]}));
    m
}

// ---- applying a row ----

/// Deep merge: objects key by key, lists element by element.
fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                if v.is_null() {
                    a.remove(k);
                } else {
                    merge(a.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, v) in b.iter().enumerate() {
                if i < a.len() {
                    merge(&mut a[i], v);
                } else {
                    a.push(v.clone());
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

/// The object at `path` (`a[].b`: first element of `a`), created as needed.
fn parent_mut<'a>(mut node: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    for seg in path {
        let (name, list) = match seg.strip_suffix("[]") {
            Some(n) => (n, true),
            None => (*seg, false),
        };
        let obj = node.as_object_mut().expect("path through an object");
        let slot =
            obj.entry(name.to_string()).or_insert_with(
                || {
                    if list {
                        json!([{}])
                    } else {
                        json!({})
                    }
                },
            );
        node = if list {
            let items = slot.as_array_mut().expect("a list");
            if items.is_empty() {
                items.push(json!({}));
            }
            &mut items[0]
        } else {
            slot
        };
    }
    node.as_object_mut().expect("parent is an object")
}

/// The rule without the field (base + `with`) and with it.
fn variants(base: &Value, row: &Row) -> (Value, Value) {
    let segs: Vec<&str> = row.field.split('.').collect();
    let (leaf, parent) = segs.split_last().unwrap();
    let mut without = base.clone();
    if let Some(root) = row.with.as_ref().and_then(|w| w.get("spec")) {
        merge(&mut without, root);
    } else if let Some(w) = &row.with {
        let p = parent_mut(&mut without, parent);
        let mut obj = Value::Object(std::mem::take(p));
        merge(&mut obj, w);
        *p = obj.as_object().unwrap().clone();
    }
    let mut with = without.clone();
    parent_mut(&mut with, parent).insert(leaf.to_string(), row.example.clone());
    if let Some(after) = row.with.as_ref().and_then(|w| w.get("after")) {
        merge(&mut with, after);
    }
    (without, with)
}

// ---- building and generating ----

/// The golden platform (bookinfo) plus a TCP service; for DestinationRule
/// rows its own `reviews` rule is left out (the base rule replaces it).
fn platform(kind: &str) -> String {
    let text =
        std::fs::read_to_string(repo_root().join("pilot/testdata/golden/inputs/platform.yaml"))
            .unwrap();
    let docs = text.split("\n---\n").filter(|d| {
        !(kind == "DestinationRule"
            && d.contains("kind: DestinationRule")
            && d.contains("host: reviews"))
    });
    let mut docs: Vec<&str> = docs.collect();
    docs.push(MONGODB);
    docs.join("\n---\n")
}

/// A TCP and a TLS service beside bookinfo's HTTP ones, for `tcp` and `tls`
/// routes and TCP settings; an ingress gateway pod (a `router` node, for
/// Gateway rows); and Gateway API gateway pods (Gateways `gw`, `gw-class`
/// and `coverage`).
const MONGODB: &str = "apiVersion: v1
kind: Service
metadata: {name: secure, namespace: default}
spec:
  clusterIP: 198.19.0.41
  selector: {app: secure}
  ports: [{name: https, port: 443, targetPort: 8443}]
---
apiVersion: v1
kind: Service
metadata: {name: mongodb, namespace: default}
spec:
  clusterIP: 198.19.0.40
  selector: {app: mongodb}
  ports: [{name: tcp-mongo, port: 27017, targetPort: 27017}]
---
apiVersion: v1
kind: Pod
metadata: {name: mongodb-v1, namespace: default, labels: {app: mongodb, version: v1}}
spec: {serviceAccountName: bookinfo-mongodb}
status:
  phase: Running
  podIP: 198.18.0.40
  conditions: [{type: Ready, status: \"True\"}]
---
apiVersion: v1
kind: Pod
metadata: {name: ingressgateway, namespace: default, labels: {istio: ingressgateway}}
spec: {serviceAccountName: ingressgateway}
status:
  phase: Running
  podIP: 198.18.0.50
  conditions: [{type: Ready, status: \"True\"}]
---
apiVersion: v1
kind: Namespace
metadata: {name: other, labels: {team: other}}
---
apiVersion: v1
kind: Pod
metadata: {name: gwapi-gw, namespace: default, labels: {gateway.networking.k8s.io/gateway-name: gw}}
spec: {serviceAccountName: gw}
status:
  phase: Running
  podIP: 198.18.0.51
  conditions: [{type: Ready, status: \"True\"}]
---
apiVersion: v1
kind: Pod
metadata: {name: gwapi-class, namespace: default, labels: {gateway.networking.k8s.io/gateway-name: gw-class}}
spec: {serviceAccountName: gw}
status:
  phase: Running
  podIP: 198.18.0.52
  conditions: [{type: Ready, status: \"True\"}]
---
apiVersion: v1
kind: Pod
metadata: {name: gwapi-coverage, namespace: default, labels: {gateway.networking.k8s.io/gateway-name: coverage}}
spec: {serviceAccountName: gw}
status:
  phase: Running
  podIP: 198.18.0.53
  conditions: [{type: Ready, status: \"True\"}]";

struct Built {
    snapshot: Arc<Snapshot>,
    /// Severity, field path (`spec.http[0].timeout`), the whole text.
    diagnostics: Vec<(Severity, String, String)>,
}

fn build(kind: &str, k: &KindSpec, spec: &Value) -> Built {
    let object = |name: String, spec: &Value| {
        let o = json!({
            "apiVersion": k.api_version,
            "kind": kind.split(" (").next().unwrap(),
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec,
        });
        serde_json::to_string(&o).unwrap()
    };
    let others = k.others.iter().enumerate();
    let mut others: Vec<String> = others
        .map(|(i, s)| object(format!("other-{i}"), s))
        .collect();
    others.extend(k.context.iter().map(|o| serde_json::to_string(o).unwrap()));
    let mut store = Store::new();
    for (name, text) in [
        ("platform.yaml", platform(kind)),
        ("others.yaml", others.join("\n---\n")),
        ("rule.yaml", object("coverage".into(), spec)),
    ] {
        let loaded = load_str(&text, name, name);
        store.reset(name, loaded.into_batch());
    }
    let snap = store.snapshot();
    let diagnostics = snap
        .diagnostics
        .iter()
        .map(|d| (d.severity, d.field.clone(), d.to_string()))
        .collect();
    Built {
        snapshot: Arc::new(snap),
        diagnostics,
    }
}

/// What every pod of the platform receives, keyed by pod.
fn xds(snapshot: &Arc<Snapshot>) -> Result<Value, String> {
    let mut out = Map::new();
    let generator = Generator::new(snapshot.clone());
    for w in snapshot.workloads.values() {
        // The gateway pod runs a gateway (`router` node), the others sidecars.
        let gateway_api = w
            .labels
            .contains_key("gateway.networking.k8s.io/gateway-name");
        let node = if gateway_api || w.labels.get("istio").is_some_and(|v| v == "ingressgateway") {
            NodeId::router(w.ips[0], &w.name, &w.namespace)
        } else {
            NodeId::sidecar(w.ips[0], &w.name, &w.namespace)
        };
        let proxy = rudder_xds::resolve_proxy(snapshot, node, &NodeMetadata::default());
        let res = generator.generate(&proxy);
        check_consistency(&res).map_err(|p| format!("{}: {}", w.name, p.join("; ")))?;
        out.insert(w.name.clone(), to_json(&res));
    }
    Ok(Value::Object(out))
}

fn errors(b: &Built) -> Vec<&str> {
    b.diagnostics
        .iter()
        .filter(|(s, _, _)| *s == Severity::Error)
        .map(|(_, _, t)| t.as_str())
        .collect()
}

/// The field's own name (`retryOn` of `http[].retries.retryOn`).
fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap().trim_end_matches("[]")
}

/// Whether a diagnostic at `field` saying `text` is about the row's field:
/// its path is the field's, one inside it, or an enclosing object refused as
/// a whole (not the spec itself); or its text names the field (a parse error).
fn names(row_field: &str, field: &str, text: &str) -> bool {
    let path = format!("spec.{}", row_field.replace("[]", "[0]"));
    let inside = field.starts_with(&path);
    let encloses = field.len() > "spec".len() && path.starts_with(field);
    inside || encloses || text.contains(&format!("`{}`", leaf(row_field)))
}

/// Checks one row; `Err` says what the row claims and what happened.
fn check(spec: &KindSpec, row: &Row) -> Result<(), String> {
    let (without, with) = variants(&spec.base, row);
    let before = build(&row.kind, spec, &without);
    if let [e, ..] = errors(&before)[..] {
        return Err(format!(
            "the rule without the field is already refused: {e}"
        ));
    }
    let after = build(&row.kind, spec, &with);
    let names_it = |sev: Severity| {
        after
            .diagnostics
            .iter()
            .any(|(s, field, text)| *s == sev && names(&row.field, field, text))
    };
    let leaf = leaf(&row.field);
    match row.fate {
        Fate::Refused if names_it(Severity::Error) => Ok(()),
        Fate::Refused => Err(format!(
            "no error names `{leaf}`; diagnostics: {:?}",
            after.diagnostics
        )),
        Fate::Warned | Fate::Served if !errors(&after).is_empty() => {
            Err(format!("refused: {}", errors(&after).join("; ")))
        }
        Fate::Warned if !names_it(Severity::Warning) => Err(format!(
            "no warning names `{leaf}`; diagnostics: {:?}",
            after.diagnostics
        )),
        Fate::Warned | Fate::Served => {
            let (a, b) = (xds(&before.snapshot)?, xds(&after.snapshot)?);
            match (row.fate, a == b) {
                (Fate::Served, true) => Err("the field changes no sidecar's xDS".into()),
                (Fate::Warned, false) => {
                    Err("a warned field changes xDS: call it served, say how".into())
                }
                _ => Ok(()),
            }
        }
    }
}

#[test]
fn every_field_has_a_row_and_every_row_holds() {
    let text = std::fs::read_to_string(repo_root().join(DOC)).unwrap();
    let rows = rows(&text).unwrap_or_else(|e| panic!("{DOC}:\n{}", e.join("\n")));
    let kinds = kinds();
    let mut failures = Vec::new();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for row in &rows {
        let Some(spec) = kinds.get(row.kind.as_str()) else {
            failures.push(format!("{}: no such kind in the test", row.at()));
            continue;
        };
        if !seen.insert((row.kind.clone(), row.field.clone())) {
            failures.push(format!("{}: a second row for the field", row.at()));
        }
        if !spec.fields.contains(&row.field) && row.fate != Fate::Refused {
            failures.push(format!(
                "{}: not a field of the spec type (only refused rows may name Istio fields Rudder does not model)",
                row.at()
            ));
        }
        if let Err(e) = check(spec, row) {
            failures.push(format!("{}: {:?}: {e}", row.at(), row.fate));
        }
    }
    for (kind, spec) in &kinds {
        for field in &spec.fields {
            if !seen.contains(&(kind.to_string(), field.clone())) {
                failures.push(format!("{DOC}: {kind} {field}: no row"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn a_row_that_claims_too_much_fails() {
    // The check itself can fail: a field Rudder serves, claimed refused, and
    // a real field whose example changes nothing, claimed served.
    let kinds = kinds();
    let table = "## VirtualService\n\
        | `http[].timeout` | `\"3s\"` | - | refused: never |\n\
        | `http[].timeout` | `\"15s\"` | `{timeout: \"15s\"}` | served: route.timeout |\n";
    for row in rows(table).unwrap() {
        let spec = &kinds[row.kind.as_str()];
        assert!(check(spec, &row).is_err(), "{row:?} should fail");
    }
}
