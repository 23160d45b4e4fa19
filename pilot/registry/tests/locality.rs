//! Localities and `localityLbSetting` (issue 14): a pod's locality from its
//! own labels (`istio-locality`, else its topology labels; nodes are not
//! watched), an EndpointSlice's zone for endpoints without one, and the
//! setting validated as Istio validates it, each error at its path.

mod common;

use common::{errors, objects, validate};
use pretty_assertions::assert_eq;
use rudder_model::{Locality, LocalityLb, Snapshot};
use rudder_registry::Store;

const HOST: &str = "reviews.default.svc.cluster.local";

fn pod(name: &str, ip: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default, labels: {{app: reviews{labels}}}}}\nspec:\n  containers: [{{name: app}}]\nstatus:\n  phase: Running\n  podIP: {ip}\n  conditions: [{{type: Ready, status: \"True\"}}]\n"
    )
}

fn service(selector: bool) -> String {
    let sel = if selector {
        "  selector: {app: reviews}\n"
    } else {
        ""
    };
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  clusterIP: 198.19.0.1\n{sel}  ports:\n  - {{name: http, port: 9080, targetPort: 9080}}\n")
}

fn snapshot(yaml: &[String]) -> Snapshot {
    let mut store = Store::new();
    for o in objects(&yaml.join("---\n")) {
        store.apply(o);
    }
    store.snapshot()
}

fn localities(s: &Snapshot) -> Vec<(String, Locality)> {
    let mut out: Vec<(String, Locality)> = s
        .endpoints_of(HOST, 9080)
        .iter()
        .map(|e| (e.address.to_string(), e.locality.clone()))
        .collect();
    out.sort();
    out
}

#[test]
fn pod_localities_come_from_its_labels() {
    let s = snapshot(&[
        service(true),
        pod(
            "a",
            "10.0.0.1",
            ", istio-locality: us-east.us-east-1a.rack1, topology.kubernetes.io/region: eu",
        ),
        pod(
            "b",
            "10.0.0.2",
            ", topology.kubernetes.io/region: eu, topology.kubernetes.io/zone: eu-1b, topology.istio.io/subzone: s2",
        ),
        pod("c", "10.0.0.3", ""),
    ]);
    assert_eq!(
        localities(&s),
        vec![
            (
                "10.0.0.1".into(),
                Locality::new("us-east", "us-east-1a", "rack1")
            ),
            ("10.0.0.2".into(), Locality::new("eu", "eu-1b", "s2")),
            ("10.0.0.3".into(), Locality::default()),
        ]
    );
}

#[test]
fn endpoint_slices_give_their_zone_where_the_pod_gives_none() {
    let slice = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: reviews-x, namespace: default, labels: {kubernetes.io/service-name: reviews}}\naddressType: IPv4\nports: [{name: http, port: 9080}]\nendpoints:\n- addresses: [10.0.0.1]\n  zone: us-east-1a\n  targetRef: {kind: Pod, name: a, namespace: default}\n- addresses: [10.0.0.9]\n  zone: us-east-1c\n".to_string();
    let s = snapshot(&[
        service(false),
        pod("a", "10.0.0.1", ", istio-locality: us-west.us-west-1a"),
        slice,
    ]);
    assert_eq!(
        localities(&s),
        vec![
            (
                "10.0.0.1".into(),
                Locality::new("us-west", "us-west-1a", "")
            ),
            ("10.0.0.9".into(), Locality::new("", "us-east-1c", "")),
        ]
    );
}

fn dr(spec: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  host: reviews\n{spec}")
}

#[test]
fn settings_compile_at_every_level() {
    let s = snapshot(&[
        service(true),
        dr("  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        distribute: [{from: us-east/*, to: {us-east/*: 80, us-west/*: 20}}]
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {localityLbSetting: {enabled: false}}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        localityLbSetting: {failover: [{from: us-east, to: us-west}], failoverPriority: [version]}
"),
    ]);
    let p = s.destination_rules.all().next().expect("the rule");
    assert_eq!(
        p.traffic_policy.locality_lb,
        Some(LocalityLb {
            enabled: true,
            distribute: vec![(
                "us-east/*".into(),
                [("us-east/*".into(), 80), ("us-west/*".into(), 20)].into()
            )],
            ..Default::default()
        })
    );
    assert!(p.traffic_policy.for_port(9080).locality_lb().is_none());
    let v1 = p.subsets["v1"].traffic_policy.as_ref().unwrap();
    assert_eq!(
        v1.locality_lb,
        Some(LocalityLb {
            enabled: true,
            failover: vec![("us-east".into(), "us-west".into())],
            failover_priority: vec!["version".into()],
            ..Default::default()
        })
    );
}

#[test]
fn invalid_settings_are_refused_at_their_path() {
    let at = "spec.trafficPolicy.loadBalancer.localityLbSetting";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "{distribute: [{from: us-east/*, to: {us-west/*: 100}}], failover: [{from: us-east, to: us-west}]}",
            format!("{at}.failover"),
            "can not simultaneously specify 'distribute' and 'failover'",
        ),
        (
            "{distribute: [{from: us-east/*, to: {us-west/*: 60, us-east/*: 30}}]}",
            format!("{at}.distribute[0].to"),
            "total locality weight 90 != 100",
        ),
        (
            "{distribute: [{from: us-east/*, to: {us-west/*: 0, us-east/*: 100}}]}",
            format!("{at}.distribute[0].to"),
            "must be in range [1, 100]",
        ),
        (
            "{distribute: [{from: us-east/*/a, to: {us-west/*: 100}}]}",
            format!("{at}.distribute[0].from"),
            "wildcard '*'",
        ),
        (
            "{distribute: [{from: us-east/*, to: {us-west/*: 50, us-west/a: 50}}]}",
            format!("{at}.distribute[0].to"),
            "overlaps",
        ),
        (
            "{distribute: [{from: us-east/*, to: {us-west: 100}}, {from: us-east/a, to: {us-west: 100}}]}",
            format!("{at}.distribute[1].from"),
            "overlaps",
        ),
        (
            "{failover: [{from: us-east, to: us-east}]}",
            format!("{at}.failover[0]"),
            "different regions",
        ),
        (
            "{failover: [{from: us-east/a, to: us-west}]}",
            format!("{at}.failover[0].from"),
            "only specify region",
        ),
        (
            "{failover: [{from: us-east, to: 'us-*'}]}",
            format!("{at}.failover[0].to"),
            "'*' wildcard",
        ),
        (
            "{failover: [{from: us-east, to: us-west}], failoverPriority: [version, topology.kubernetes.io/zone]}",
            format!("{at}.failoverPriority[1]"),
            "topology label 'topology.kubernetes.io/zone'",
        ),
    ];
    for (setting, field, why) in cases {
        let spec = format!("  trafficPolicy: {{loadBalancer: {{localityLbSetting: {setting}}}}}\n");
        let r = validate(&[("platform.yaml", &service(true)), ("dr.yaml", &dr(&spec))]);
        let errs = errors(&r);
        assert!(
            errs.iter()
                .any(|d| d.field == field && d.message.contains(why)),
            "{setting}: expected {field}: {why}, got {errs:?}"
        );
    }
    // Valid settings: no error.
    for setting in [
        "{enabled: true}",
        "{enabled: false}",
        "{distribute: [{from: 'us-east/*', to: {'us-east/*': 80, 'us-west/*': 20}}]}",
        "{failover: [{from: us-east, to: us-west}], failoverPriority: [version]}",
        "{failoverPriority: [topology.kubernetes.io/region, 'version=v1']}",
    ] {
        let spec = format!("  trafficPolicy: {{loadBalancer: {{localityLbSetting: {setting}}}}}\n");
        let r = validate(&[("platform.yaml", &service(true)), ("dr.yaml", &dr(&spec))]);
        assert!(errors(&r).is_empty(), "{setting}: {:?}", errors(&r));
    }
}
