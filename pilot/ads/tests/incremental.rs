//! What a change costs: which types are pushed and how many resources they
//! carry, SotW and Delta side by side. Counts only (responses, resource
//! names, `pilot_xds_pushed_resources`), never times.
//!
//! The mesh: clusters a, b, c with their assignments, listener l, routes r1
//! and r2 (so a route change has an unchanged neighbour).

mod common;

use common::*;
use rudder_ads::Metrics;
use rudder_xds::TypeUrl;

fn mesh() -> Res {
    Res::new()
        .cluster("a", "1")
        .cluster("b", "1")
        .cluster("c", "1")
        .endpoints("a", "1")
        .endpoints("b", "1")
        .endpoints("c", "1")
        .listener("l", "1")
        .route("r1", "1")
        .route("r2", "1")
}

const CLUSTERS: [&str; 3] = ["a", "b", "c"];
const ROUTES: [&str; 2] = ["r1", "r2"];
const TYPES: [TypeUrl; 4] = [CDS, EDS, LDS, RDS];

/// Responses and resources sent so far, per type (CDS, EDS, LDS, RDS).
fn counts(m: &Metrics) -> [(u64, u64); 4] {
    TYPES.map(|t| (m.pushes(t), m.pushed_resources(t)))
}

/// What was sent between two `counts`: (responses, resources) per type.
fn since(before: [(u64, u64); 4], m: &Metrics) -> [(u64, u64); 4] {
    let now = counts(m);
    std::array::from_fn(|i| (now[i].0 - before[i].0, now[i].1 - before[i].1))
}

#[tokio::test]
async fn pod_change_pushes_exactly_one_assignment_sotw() {
    let h = Harness::start(mesh().build()).await;
    let mut c = h.sotw(NODE).await;
    c.start_all(&CLUSTERS, &ROUTES).await;
    let before = counts(&h.server.metrics());
    h.publish(mesh().endpoints("b", "2").build());
    let eds = c.expect(EDS).await;
    assert_eq!(names(&eds), ["b"]);
    c.ack(&eds, &CLUSTERS).await;
    c.barrier().await;
    assert_eq!(
        since(before, &h.server.metrics()),
        [(0, 0), (1, 1), (0, 0), (0, 0)],
        "one EDS response with one ClusterLoadAssignment, nothing else"
    );
}

#[tokio::test]
async fn pod_change_pushes_exactly_one_assignment_delta() {
    let h = Harness::start(mesh().build()).await;
    let mut c = h.delta(NODE).await;
    c.start_all(&CLUSTERS, &ROUTES).await;
    let before = counts(&h.server.metrics());
    h.publish(mesh().endpoints("b", "2").build());
    let eds = c.expect(EDS).await;
    assert_eq!(dnames(&eds), ["b"]);
    assert!(eds.removed_resources.is_empty());
    c.ack(&eds).await;
    c.barrier().await;
    assert_eq!(
        since(before, &h.server.metrics()),
        [(0, 0), (1, 1), (0, 0), (0, 0)]
    );
}

#[tokio::test]
async fn route_change_pushes_only_that_route_sotw() {
    let h = Harness::start(mesh().build()).await;
    let mut c = h.sotw(NODE).await;
    c.start_all(&CLUSTERS, &ROUTES).await;
    let before = counts(&h.server.metrics());
    h.publish(mesh().route("r2", "2").build());
    let rds = c.expect(RDS).await;
    assert_eq!(names(&rds), ["r2"], "r1 is unchanged and not resent");
    c.ack(&rds, &ROUTES).await;
    c.barrier().await;
    assert_eq!(
        since(before, &h.server.metrics()),
        [(0, 0), (0, 0), (0, 0), (1, 1)]
    );
}

#[tokio::test]
async fn route_change_pushes_only_that_route_delta() {
    let h = Harness::start(mesh().build()).await;
    let mut c = h.delta(NODE).await;
    c.start_all(&CLUSTERS, &ROUTES).await;
    let before = counts(&h.server.metrics());
    h.publish(mesh().route("r2", "2").build());
    let rds = c.expect(RDS).await;
    assert_eq!(dnames(&rds), ["r2"]);
    c.ack(&rds).await;
    c.barrier().await;
    assert_eq!(
        since(before, &h.server.metrics()),
        [(0, 0), (0, 0), (0, 0), (1, 1)]
    );
}

#[tokio::test]
async fn unchanged_resources_are_not_resent_sotw() {
    let h = Harness::start(mesh().build()).await;
    let mut c = h.sotw(NODE).await;
    c.start_all(&CLUSTERS, &ROUTES).await;
    let before = counts(&h.server.metrics());
    // The same resources again (a new snapshot that changes nothing for this
    // proxy), then a change to a resource it does not subscribe to.
    h.publish(mesh().build());
    h.publish(mesh().endpoints("zzz", "1").route("other", "1").build());
    c.barrier().await;
    assert_eq!(since(before, &h.server.metrics()), [(0, 0); 4]);
}

#[tokio::test]
async fn unchanged_resources_are_not_resent_delta() {
    let h = Harness::start(mesh().build()).await;
    let mut c = h.delta(NODE).await;
    c.start_all(&CLUSTERS, &ROUTES).await;
    let before = counts(&h.server.metrics());
    h.publish(mesh().build());
    h.publish(mesh().endpoints("zzz", "1").route("other", "1").build());
    c.barrier().await;
    assert_eq!(since(before, &h.server.metrics()), [(0, 0); 4]);
}

/// Service d appears: its cluster, its assignment, and the listener and
/// route that now name it.
fn with_service_d() -> Res {
    mesh()
        .cluster("d", "1")
        .endpoints("d", "1")
        .listener("l", "2")
        .route("r1", "2")
}

#[tokio::test]
async fn service_add_sends_new_resources_and_the_cds_lds_state_sotw() {
    let h = Harness::start(mesh().build()).await;
    let mut c = h.sotw(NODE).await;
    let last = c.start_all(&CLUSTERS, &ROUTES).await;
    let before = counts(&h.server.metrics());
    h.publish(with_service_d().build());
    // CDS carries the whole state (SotW removes what CDS omits).
    let cds = c.expect(CDS).await;
    assert_eq!(names(&cds), ["a", "b", "c", "d"]);
    // Envoy creates cluster d and asks for its assignment too.
    c.ack(&last[&EDS], &["a", "b", "c", "d"]).await;
    let eds = c.expect(EDS).await;
    assert_eq!(names(&eds), ["d"], "only the new assignment");
    c.ack(&eds, &["a", "b", "c", "d"]).await;
    c.ack(&cds, &[]).await;
    let lds = c.expect(LDS).await;
    assert_eq!(names(&lds), ["l"]);
    let rds = c.expect(RDS).await;
    assert_eq!(names(&rds), ["r1"], "only the changed route");
    c.ack(&lds, &[]).await;
    c.ack(&rds, &ROUTES).await;
    c.barrier().await;
    assert_eq!(
        since(before, &h.server.metrics()),
        [(1, 4), (1, 1), (1, 1), (1, 1)]
    );
}

#[tokio::test]
async fn service_add_sends_only_new_resources_delta() {
    let h = Harness::start(mesh().build()).await;
    let mut c = h.delta(NODE).await;
    c.start_all(&CLUSTERS, &ROUTES).await;
    let before = counts(&h.server.metrics());
    h.publish(with_service_d().build());
    let cds = c.expect(CDS).await;
    assert_eq!(dnames(&cds), ["d"]);
    // Envoy subscribes to the new cluster's assignment.
    c.subscribe(EDS, &["d"], "").await;
    let eds = c.expect(EDS).await;
    assert_eq!(dnames(&eds), ["d"]);
    c.ack(&eds).await;
    c.ack(&cds).await;
    let lds = c.expect(LDS).await;
    assert_eq!(dnames(&lds), ["l"]);
    let rds = c.expect(RDS).await;
    assert_eq!(dnames(&rds), ["r1"]);
    c.ack(&lds).await;
    c.ack(&rds).await;
    c.barrier().await;
    assert_eq!(
        since(before, &h.server.metrics()),
        [(1, 1), (1, 1), (1, 1), (1, 1)]
    );
}

#[tokio::test]
async fn cluster_change_resends_only_its_assignment_with_the_next_eds_sotw() {
    let h = Harness::start(mesh().build()).await;
    let mut c = h.sotw(NODE).await;
    c.start_all(&CLUSTERS, &ROUTES).await;
    let before = counts(&h.server.metrics());
    // Cluster a changes (Envoy re-creates it: it warms until it gets EDS) and
    // b's endpoints change in the same snapshot: one EDS response carries both.
    h.publish(mesh().cluster("a", "2").endpoints("b", "2").build());
    let cds = c.expect(CDS).await;
    let eds = c.expect(EDS).await;
    assert_eq!(names(&eds), ["a", "b"], "a for warming, b changed; not c");
    // Envoy's request after re-creating a carries the EDS nonce it had: stale.
    c.request(EDS, "", &CLUSTERS, "stale-by-now").await;
    c.ack(&cds, &[]).await;
    c.ack(&eds, &CLUSTERS).await;
    c.barrier().await;
    assert_eq!(
        since(before, &h.server.metrics()),
        [(1, 3), (1, 2), (0, 0), (0, 0)]
    );
}

#[tokio::test]
async fn cluster_change_resends_only_its_assignment_delta() {
    let h = Harness::start(mesh().build()).await;
    let mut c = h.delta(NODE).await;
    c.start_all(&CLUSTERS, &ROUTES).await;
    let before = counts(&h.server.metrics());
    h.publish(mesh().cluster("a", "2").build());
    let cds = c.expect(CDS).await;
    assert_eq!(dnames(&cds), ["a"]);
    let eds = c.expect(EDS).await;
    assert_eq!(dnames(&eds), ["a"]);
    c.ack(&cds).await;
    c.ack(&eds).await;
    c.barrier().await;
    assert_eq!(
        since(before, &h.server.metrics()),
        [(1, 1), (1, 1), (0, 0), (0, 0)]
    );
}

#[tokio::test]
async fn restarted_type_gets_everything_again_sotw() {
    let h = Harness::start(mesh().build()).await;
    let mut c = h.sotw(NODE).await;
    c.start_all(&CLUSTERS, &ROUTES).await;
    // A nonce-less request after the first: the client starts the type over
    // and holds nothing, so the partial types send the whole selection.
    c.request(RDS, "", &ROUTES, "").await;
    assert_eq!(names(&c.expect(RDS).await), ["r1", "r2"]);
}

/// A proxy scoped by a Sidecar to its own namespace (`shop`), generated by
/// pilot's generator: a new pod and a new service in `default`, outside its
/// scope, change none of its resources, so it is sent nothing.
mod scoped {
    use super::*;
    use rudder_xds::{fixtures::*, Generator, ProxyResources};

    fn snapshot(outside: usize) -> ProxyResources {
        let mut b = SnapshotBuilder::new()
            .service(mk_service(
                "cart",
                "shop",
                "198.19.1.1",
                vec![mk_port("http", 9080, 9080)],
                &[("app", "cart")],
            ))
            .pod(mk_pod("cart-v1", "shop", "198.18.1.1", &[("app", "cart")]))
            .sidecar(mk_sidecar("shop", "default", None, &["./*"]));
        for i in 0..outside {
            let name = format!("outside-{i}");
            b = b
                .service(mk_service(
                    &name,
                    "default",
                    &format!("198.19.0.{}", i + 1),
                    vec![mk_port("http", 9080, 9080)],
                    &[("app", &name)],
                ))
                .pod(mk_pod(
                    &name,
                    "default",
                    &format!("198.18.0.{}", i + 1),
                    &[("app", &name)],
                ));
        }
        let s = b.build();
        let proxy = mk_proxy(&s, "shop", "cart-v1");
        Res::from_generated(Generator::new(s).generate(&proxy)).build()
    }

    fn names(res: &ProxyResources, t: TypeUrl) -> Vec<String> {
        res.by_type[&t].keys().cloned().collect()
    }

    #[tokio::test]
    async fn changes_outside_a_scoped_proxys_hosts_send_it_nothing_sotw() {
        let first = snapshot(1);
        let (clusters, routes) = (names(&first, EDS), names(&first, RDS));
        let clusters: Vec<&str> = clusters.iter().map(String::as_str).collect();
        let routes: Vec<&str> = routes.iter().map(String::as_str).collect();
        let h = Harness::start(first).await;
        let mut c = h.sotw(NODE).await;
        c.start_all(&clusters, &routes).await;
        let before = counts(&h.server.metrics());
        h.publish(snapshot(3));
        c.barrier().await;
        assert_eq!(since(before, &h.server.metrics()), [(0, 0); 4]);
    }

    #[tokio::test]
    async fn changes_outside_a_scoped_proxys_hosts_send_it_nothing_delta() {
        let first = snapshot(1);
        let (clusters, routes) = (names(&first, EDS), names(&first, RDS));
        let clusters: Vec<&str> = clusters.iter().map(String::as_str).collect();
        let routes: Vec<&str> = routes.iter().map(String::as_str).collect();
        let h = Harness::start(first).await;
        let mut c = h.delta(NODE).await;
        c.start_all(&clusters, &routes).await;
        let before = counts(&h.server.metrics());
        h.publish(snapshot(3));
        c.barrier().await;
        assert_eq!(since(before, &h.server.metrics()), [(0, 0); 4]);
    }
}
