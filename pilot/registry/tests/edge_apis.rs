//! Contour's HTTPProxy and Emissary's Mapping (issue 16, item 6): which
//! objects Rudder serves (class, ambassador_id), how includes compose
//! (prefix concatenation across namespaces, cycles, orphans, missing
//! includes, an fqdn claimed twice), Emissary's weights and service forms,
//! and every field Rudder does not translate refused with its path.

mod common;

use common::*;
use rudder_config::contour::MatchCondition;
use rudder_model::{RouteTable, StringMatch};
use rudder_registry::{
    build::build_snapshot,
    compile::{contour::merged_path, emissary},
};

const PLATFORM: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 198.19.0.10
  selector: {app: web}
  ports: [{name: http, port: 8000}]
---
apiVersion: v1
kind: Service
metadata: {name: blog, namespace: blog}
spec:
  clusterIP: 198.19.0.11
  selector: {app: blog}
  ports: [{name: http, port: 8080}]
";

fn proxy(ns: &str, name: &str, spec: &str) -> String {
    format!("apiVersion: projectcontour.io/v1\nkind: HTTPProxy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}")
}

fn mapping(name: &str, spec: &str) -> String {
    format!("apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n{spec}")
}

fn build(docs: &[&str]) -> rudder_model::Snapshot {
    let yaml = docs.join("\n---\n");
    build_snapshot(objects(&yaml).iter(), vec![])
}

/// Warnings on an object, as (field, message).
fn findings(s: &rudder_model::Snapshot, object: &str) -> Vec<(String, String)> {
    s.diagnostics
        .iter()
        .filter(|d| d.object == object)
        .map(|d| (d.field.clone(), d.message.clone()))
        .collect()
}

fn table<'a>(s: &'a rudder_model::Snapshot, host: &str) -> Option<&'a RouteTable> {
    s.gateway_route_tables
        .iter()
        .find(|t| t.hosts.iter().any(|h| h.as_str() == host))
}

fn uris(t: &RouteTable) -> Vec<String> {
    t.http
        .iter()
        .flat_map(|r| r.matches.iter())
        .map(|m| match &m.uri {
            Some(StringMatch::Exact(p)) => format!("={p}"),
            Some(StringMatch::Prefix(p)) => format!("^{p}"),
            Some(StringMatch::Regex(p)) => format!("~{p}"),
            other => format!("{other:?}"),
        })
        .collect()
}

const ROOT: &str = "  virtualhost: {fqdn: shop.example.com}
  routes: [{services: [{name: web, port: 8000}]}]
  includes: [{name: blog, namespace: blog, conditions: [{prefix: /blog/}]}]
";

#[test]
fn includes_concatenate_prefixes_across_namespaces_as_contour_does() {
    let child = proxy(
        "blog",
        "blog",
        "  routes:\n  - services: [{name: blog, port: 8080}]\n  - conditions: [{prefix: /posts}]\n    services: [{name: blog, port: 8080}]\n  - conditions: [{exact: /feed}]\n    services: [{name: blog, port: 8080}]\n",
    );
    let s = build(&[PLATFORM, &proxy("shop", "shop", ROOT), &child]);
    assert!(s.diagnostics.is_empty(), "{:?}", s.diagnostics);
    let t = table(&s, "shop.example.com").expect("the root's host is served");
    // `/blog/` + `/` is `/blog/` (`//` collapsed); exact decided by the last
    // path condition; longest first, exact before prefix.
    assert_eq!(uris(t), ["=/blog/feed", "^/blog/posts", "^/blog/", "^/"]);
    let blog = &t.http[2];
    assert_eq!(
        format!("{:?}", blog.action)
            .matches("blog.blog.svc.cluster.local")
            .count(),
        1,
        "the included proxy's services are of its namespace: {:?}",
        blog.action
    );
}

#[test]
fn merged_paths_follow_contour() {
    let c = |p: Option<&str>, e: Option<&str>| MatchCondition {
        prefix: p.map(str::to_string),
        exact: e.map(str::to_string),
        header: None,
    };
    let cases = [
        (vec![], ("/", false)),
        (
            vec![c(Some("/a"), None), c(Some("/b"), None)],
            ("/a/b", false),
        ),
        (
            vec![c(Some("/a/"), None), c(Some("/"), None)],
            ("/a/", false),
        ),
        (
            vec![c(Some("/a"), None), c(None, Some("/x"))],
            ("/a/x", true),
        ),
    ];
    for (conds, (path, exact)) in cases {
        let refs: Vec<&MatchCondition> = conds.iter().collect();
        assert_eq!(merged_path(&refs), (path.to_string(), exact), "{conds:?}");
    }
}

#[test]
fn include_findings_name_the_include() {
    // Missing, a root, a cycle, and an orphan.
    let root = proxy(
        "shop",
        "shop",
        "  virtualhost: {fqdn: shop.example.com}\n  includes:\n  - {name: missing}\n  - {name: other-root}\n  - {name: a}\n",
    );
    let other = proxy(
        "shop",
        "other-root",
        "  virtualhost: {fqdn: other.example.com}\n  routes: [{services: [{name: web, port: 8000}]}]\n",
    );
    let a = proxy(
        "shop",
        "a",
        "  includes: [{name: b}]\n  routes: [{services: [{name: web, port: 8000}]}]\n",
    );
    let b = proxy(
        "shop",
        "b",
        "  includes: [{name: a}]\n  routes: [{services: [{name: web, port: 8000}]}]\n",
    );
    let orphan = proxy(
        "shop",
        "orphan",
        "  routes: [{services: [{name: web, port: 8000}]}]\n",
    );
    let s = build(&[PLATFORM, &root, &other, &a, &b, &orphan]);
    let f = findings(&s, "HTTPProxy shop/shop");
    assert_eq!(f[0].0, "spec.includes[0]");
    assert!(f[0].1.contains("shop/missing not found"), "{f:?}");
    assert_eq!(f[1].0, "spec.includes[1]");
    assert!(f[1].1.contains("is a root"), "{f:?}");
    let cycle = findings(&s, "HTTPProxy shop/b");
    assert_eq!(cycle.len(), 1, "{cycle:?}");
    assert_eq!(cycle[0].0, "spec.includes[0]");
    assert!(cycle[0].1.contains("cycle"), "{cycle:?}");
    let o = findings(&s, "HTTPProxy shop/orphan");
    assert!(o[0].1.starts_with("orphaned"), "{o:?}");
    // The routes of a and b are served once each under shop.example.com.
    assert_eq!(uris(table(&s, "shop.example.com").unwrap()), ["^/", "^/"]);
}

#[test]
fn an_fqdn_claimed_twice_is_served_by_neither() {
    let a = proxy("shop", "a", ROOT);
    let b = proxy("blog", "b", ROOT);
    let s = build(&[PLATFORM, &a, &b]);
    assert!(table(&s, "shop.example.com").is_none());
    for o in ["HTTPProxy shop/a", "HTTPProxy blog/b"] {
        let f = findings(&s, o);
        assert!(
            f.iter().any(|(field, m)| field == "spec.virtualhost.fqdn"
                && m.contains("none of them is served")),
            "{o}: {f:?}"
        );
    }
}

#[test]
fn classes_decide_which_httpproxies_and_mappings_are_rudders() {
    let with = |annotation: &str, spec_class: &str| {
        format!(
            "apiVersion: projectcontour.io/v1\nkind: HTTPProxy\nmetadata: {{name: p, namespace: shop{annotation}}}\nspec:\n{spec_class}  virtualhost: {{fqdn: shop.example.com}}\n  routes: [{{services: [{{name: web, port: 8000}}]}}]\n"
        )
    };
    let cases = [
        (with("", ""), true),
        (with("", "  ingressClassName: rudder\n"), true),
        (with("", "  ingressClassName: contour\n"), false),
        (
            with(
                ", annotations: {projectcontour.io/ingress.class: istio}",
                "  ingressClassName: contour\n",
            ),
            true,
        ),
        (
            with(", annotations: {kubernetes.io/ingress.class: contour}", ""),
            false,
        ),
    ];
    for (yaml, served) in cases {
        let s = build(&[PLATFORM, &yaml]);
        assert_eq!(table(&s, "shop.example.com").is_some(), served, "{yaml}");
        if !served {
            let f = findings(&s, "HTTPProxy shop/p");
            assert!(f[0].1.contains("left to its controller"), "{f:?}");
        }
    }
    let m = |id: &str| mapping("m", &format!("  prefix: /\n  service: web:8000\n{id}"));
    for (yaml, served) in [
        (m(""), true),
        (m("  ambassador_id: [default, other]\n"), true),
        (m("  ambassador_id: other\n"), false),
    ] {
        let s = build(&[PLATFORM, &yaml]);
        assert_eq!(table(&s, "*").is_some(), served, "{yaml}");
    }
}

#[test]
fn emissary_weights_and_service_forms() {
    assert_eq!(emissary::group_weights(&[None, Some(10)]), [90, 10]);
    assert_eq!(emissary::group_weights(&[None, None, None]), [34, 33, 33]);
    assert_eq!(emissary::group_weights(&[Some(30), Some(20)]), [30, 20]);
    let svc = |s: &str| emissary::parse_service(s, "shop", "cluster.local");
    assert_eq!(svc("web"), Ok(("web.shop.svc.cluster.local".into(), 80)));
    assert_eq!(
        svc("web:8000"),
        Ok(("web.shop.svc.cluster.local".into(), 8000))
    );
    assert_eq!(
        svc("web.blog:8080"),
        Ok(("web.blog.svc.cluster.local".into(), 8080))
    );
    assert_eq!(
        svc("http://web.blog.svc:81"),
        Ok(("web.blog.svc.cluster.local".into(), 81))
    );
    assert_eq!(svc("api.example.com"), Ok(("api.example.com".into(), 80)));
    assert!(svc("https://web:443").unwrap_err().contains("not served"));
    assert!(svc("web:http").unwrap_err().contains("not a port number"));
}

#[test]
fn fields_rudder_does_not_translate_are_refused_with_their_path() {
    let p = |spec: &str| proxy("shop", "p", spec);
    let vh = "  virtualhost: {fqdn: shop.example.com}\n";
    let cases = [
        (p(&format!("{vh}  routes: [{{services: [{{name: web, port: 8000}}], loadBalancerPolicy: {{strategy: Random}}}}]\n")), "spec.routes[0]", "loadBalancerPolicy"),
        (p(&format!("{vh}  routes: [{{services: [{{name: web, port: 8000}}], timeoutPolicy: {{idle: 5s}}}}]\n")), "spec.routes[0].timeoutPolicy", "idle"),
        (p("  virtualhost: {fqdn: shop.example.com, corsPolicy: {allowOrigin: ['*']}}\n  routes: [{services: [{name: web, port: 8000}]}]\n"), "spec.virtualhost", "corsPolicy"),
        (p("  virtualhost: {fqdn: shop.example.com, tls: {secretName: other/cert}}\n  routes: [{services: [{name: web, port: 8000}]}]\n"), "spec.virtualhost.tls.secretName", "TLSCertificateDelegation"),
        (p("  virtualhost: {fqdn: shop.example.com, tls: {secretName: cert}}\n  tcpproxy: {services: [{name: web, port: 8000}]}\n"), "spec.tcpproxy", "not served"),
        (p(&format!("{vh}  routes: [{{conditions: [{{prefix: /a}}, {{prefix: /b}}], services: [{{name: web, port: 8000}}]}}]\n")), "spec.routes[0].conditions", "more than one"),
        (p(&format!("{vh}  routes: [{{conditions: [{{header: {{name: x, present: true, exact: y}}}}], services: [{{name: web, port: 8000}}]}}]\n")), "spec.routes[0].conditions[0].header", "exactly one"),
        (p(&format!("{vh}  routes: [{{services: [{{name: web, port: 8000}}], retryPolicy: {{retryOn: [sometimes]}}}}]\n")), "spec.routes[0].retryPolicy.retryOn[0]", "sometimes"),
        (p(&format!("{vh}  routes: [{{services: [{{name: web, port: 8000}}], timeoutPolicy: {{response: soon}}}}]\n")), "spec.routes[0].timeoutPolicy.response", "soon"),
        (p(&format!("{vh}  includes: [{{name: c, conditions: [{{exact: /x}}]}}]\n")), "spec.includes[0].conditions[0].exact", "not allowed"),
        (p(&format!("{vh}  routes: [{{services: [{{name: web, port: 0}}]}}]\n")), "spec.routes[0].services[0].port", "not a port"),
        (mapping("m", "  prefix: /\n  service: web\n  add_request_headers: {x: y}\n"), "spec", "add_request_headers"),
        (mapping("m", "  prefix: /\n  service: web\n  host_rewrite: other\n"), "spec", "host_rewrite"),
        (mapping("m", "  prefix: nope\n  service: web\n"), "spec.prefix", "must start"),
        (mapping("m", "  prefix: /\n  service: https://web\n"), "spec.service", "https"),
        (mapping("m", "  prefix: /\n  service: web\n  weight: 150\n"), "spec.weight", "150"),
        (mapping("m", "  prefix: /\n  service: web\n  retry_policy: {retry_on: sometimes}\n"), "spec.retry_policy.retry_on", "sometimes"),
        (mapping("m", "  prefix: /\n  service: web\n  hostname: \"a.com:80\"\n"), "spec.hostname", "a.com:80"),
    ];
    assert_errors_at(&cases);
}

#[test]
fn other_kinds_and_versions_of_contour_and_emissary_are_named_unsupported() {
    let u = unsupported(
        "apiVersion: projectcontour.io/v1\nkind: TLSCertificateDelegation\nmetadata: {name: d}\nspec: {}\n---\napiVersion: getambassador.io/v2\nkind: Mapping\nmetadata: {name: old}\nspec: {prefix: /, service: web}\n",
    );
    assert_eq!(u.len(), 2, "{u:?}");
    assert!(u[0].contains("Contour's API"), "{u:?}");
    assert!(u[1].contains("it reads v3alpha1"), "{u:?}");
}

#[test]
fn http_settings_on_a_tcpproxy_are_refused_and_permit_insecure_without_tls_is_warned() {
    let tcp = proxy(
        "shop",
        "p",
        "  virtualhost: {fqdn: shop.example.com, tls: {passthrough: true}}\n  tcpproxy: {services: [{name: web, port: 8000, mirror: true}]}\n",
    );
    let r = validate(&[("f.yaml", &tcp)]);
    assert!(
        errors(&r)
            .iter()
            .any(|d| d.field == "spec.tcpproxy.services[0].mirror"),
        "{:?}",
        r.diagnostics
    );
    let insecure = proxy(
        "shop",
        "p",
        "  virtualhost: {fqdn: shop.example.com}\n  routes: [{services: [{name: web, port: 8000}], permitInsecure: true}]\n",
    );
    let s = build(&[PLATFORM, &insecure]);
    assert!(
        findings(&s, "HTTPProxy shop/p")
            .iter()
            .any(|(f, m)| f == "spec.routes[0].permitInsecure" && m.contains("no effect")),
        "{:?}",
        s.diagnostics
    );
}
