//! Delta (incremental) protocol rules, one test each, against the real server.

mod common;

use std::collections::BTreeMap;

use common::*;

fn v(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn wildcard_first_request_delta() {
    let h = Harness::start(base().without(LDS, "l").build()).await;
    let mut c = h.delta(NODE).await;
    c.subscribe(CDS, &[], "").await;
    let cds = c.expect(CDS).await;
    assert_eq!(
        dversions(&cds),
        v(&[("a", "1"), ("b", "1")]),
        "per-resource versions"
    );
    c.ack(&cds).await;
    // A wildcard LDS with nothing to serve is still answered (Envoy waits for it).
    c.subscribe(LDS, &[], "").await;
    let lds = c.expect(LDS).await;
    assert!(lds.resources.is_empty() && lds.removed_resources.is_empty());
    // An explicit "*" is wildcard for any type.
    c.subscribe(EDS, &["*"], "").await;
    assert_eq!(dnames(&c.expect(EDS).await), ["a", "b"]);
}

#[tokio::test]
async fn first_request_with_old_nonce_is_answered_delta() {
    let h = Harness::start(base().build()).await;
    let mut c = h.delta(NODE).await;
    c.subscribe(EDS, &["a"], "nonce-of-previous-pilot").await;
    assert_eq!(dnames(&c.expect(EDS).await), ["a"]);
}

#[tokio::test]
async fn unchanged_resources_not_resent_delta() {
    let h = Harness::start(base().build()).await;
    let mut c = h.delta(NODE).await;
    c.start_all(&["a", "b"], &["r"]).await;
    h.publish(base().endpoints("b", "2").build());
    let eds = c.expect(EDS).await;
    assert_eq!(
        dversions(&eds),
        v(&[("b", "2")]),
        "only the changed resource"
    );
    c.ack(&eds).await;
    c.barrier().await;
}

#[tokio::test]
async fn warming_eds_after_cds_delta() {
    let h = Harness::start(base().build()).await;
    let mut c = h.delta(NODE).await;
    c.start_all(&["a", "b"], &["r"]).await;
    // Only cluster a changes; its endpoints do not.
    h.publish(base().cluster("a", "2").build());
    let cds = c.expect(CDS).await;
    assert_eq!(dnames(&cds), ["a"]);
    // Envoy sends no EDS request in Delta; the server resends a's endpoints anyway.
    let eds = c.expect(EDS).await;
    assert_eq!(dversions(&eds), v(&[("a", "1")]));
    c.ack(&cds).await;
    c.ack(&eds).await;
    c.barrier().await;
}

#[tokio::test]
async fn removed_resources_delta() {
    let h = Harness::start(base().cluster("c", "1").build()).await;
    let mut c = h.delta(NODE).await;
    c.start_all(&["a", "b"], &["r"]).await;
    // b's endpoints vanish (the cluster stays): removal travels in removed_resources.
    h.publish(base().cluster("c", "1").without(EDS, "b").build());
    let eds = c.expect(EDS).await;
    assert!(eds.resources.is_empty());
    assert_eq!(eds.removed_resources, ["b"]);
    c.ack(&eds).await;
    // A wildcard cluster no listener changed for goes at once.
    h.publish(base().without(EDS, "b").build());
    let cds = c.expect(CDS).await;
    assert!(cds.resources.is_empty());
    assert_eq!(cds.removed_resources, ["c"]);
}

#[tokio::test]
async fn unsubscribe_delta() {
    let h = Harness::start(base().build()).await;
    let mut c = h.delta(NODE).await;
    c.subscribe(EDS, &["a", "b"], "").await;
    let eds = c.expect(EDS).await;
    c.send(dreq(EDS, &[], &["b"], &eds.nonce)).await;
    c.barrier().await;
    // b is no longer pushed when it changes.
    h.publish(base().endpoints("b", "2").build());
    c.barrier().await;
    // Resubscribing returns it.
    c.subscribe(EDS, &["b"], "").await;
    assert_eq!(dversions(&c.expect(EDS).await), v(&[("b", "2")]));
}

#[tokio::test]
async fn resubscribe_to_known_name_returns_it() {
    let h = Harness::start(base().build()).await;
    let mut c = h.delta(NODE).await;
    c.subscribe(EDS, &["a"], "").await;
    let eds = c.expect(EDS).await;
    c.ack(&eds).await;
    c.subscribe(EDS, &["a"], "").await;
    assert_eq!(dnames(&c.expect(EDS).await), ["a"]);
}

#[tokio::test]
async fn spontaneous_subscribe_answered_with_just_new_names() {
    let h = Harness::start(base().build()).await;
    let mut c = h.delta(NODE).await;
    c.subscribe(EDS, &["a"], "").await;
    let eds = c.expect(EDS).await;
    c.ack(&eds).await;
    c.subscribe(EDS, &["b"], "").await;
    assert_eq!(dnames(&c.expect(EDS).await), ["b"]);
}

#[tokio::test]
async fn reconnect_with_initial_resource_versions() {
    let h = Harness::start(base().build()).await;
    let mut c = h.delta(NODE).await;
    // The client already holds a@1 and b@0 (stale) and "gone", which no longer exists.
    let mut r = dreq(CDS, &[], &[], "");
    r.initial_resource_versions = v(&[("a", "1"), ("b", "0"), ("gone", "1")])
        .into_iter()
        .collect();
    c.send(r).await;
    let cds = c.expect(CDS).await;
    assert_eq!(dversions(&cds), v(&[("b", "1")]));
    assert_eq!(cds.removed_resources, ["gone"]);
    // Everything current: still answered (the first request of a type), empty.
    let mut r = dreq(EDS, &["a"], &[], "");
    r.initial_resource_versions = v(&[("a", "1")]).into_iter().collect();
    c.send(r).await;
    let eds = c.expect(EDS).await;
    assert!(eds.resources.is_empty() && eds.removed_resources.is_empty());
}

#[tokio::test]
async fn subscribe_to_missing_name_then_appears_delta() {
    let h = Harness::start(base().build()).await;
    let mut c = h.delta(NODE).await;
    c.subscribe(EDS, &["a", "c"], "").await;
    let eds = c.expect(EDS).await;
    assert_eq!(dnames(&eds), ["a"]);
    c.ack(&eds).await;
    h.publish(base().endpoints("c", "1").build());
    assert_eq!(dnames(&c.expect(EDS).await), ["c"]);
}

#[tokio::test]
async fn nack_forgets_client_state_and_resends_on_next_change_delta() {
    let h = Harness::start(base().build()).await;
    let mut c = h.delta(NODE).await;
    c.subscribe(CDS, &[], "").await;
    let cds = c.expect(CDS).await;
    c.ack(&cds).await;
    h.publish(base().cluster("b", "bad").build());
    let bad = c.expect(CDS).await;
    c.nack(&bad, "Proto constraint validation failed").await;
    // Not resent in reply to the NACK.
    c.barrier().await;
    assert_eq!(h.server.metrics().rejects(CDS), 1);
    // The next change resends the whole type: the server no longer trusts
    // what the client holds.
    h.publish(base().cluster("b", "fixed").build());
    let again = c.expect(CDS).await;
    assert_eq!(dversions(&again), v(&[("a", "1"), ("b", "fixed")]));
}

#[tokio::test]
async fn stale_nonce_is_ignored_delta() {
    let h = Harness::start(base().build()).await;
    let mut c = h.delta(NODE).await;
    c.subscribe(EDS, &["a"], "").await;
    let first = c.expect(EDS).await;
    c.ack(&first).await;
    h.publish(base().endpoints("a", "2").build());
    let second = c.expect(EDS).await;
    // An ACK of the older response does not ACK the newer one.
    c.ack(&first).await;
    h.publish(base().endpoints("a", "3").build());
    c.barrier().await;
    assert_eq!(h.server.metrics().expired_nonces(EDS), 1);
    c.ack(&second).await;
    assert_eq!(dversions(&c.expect(EDS).await), v(&[("a", "3")]));
}

#[tokio::test]
async fn make_before_break_cluster_removal_delta() {
    let h = Harness::start(base().build()).await;
    let mut c = h.delta(NODE).await;
    c.start_all(&["a", "b"], &["r"]).await;
    h.publish(
        base()
            .without(CDS, "b")
            .without(EDS, "b")
            .listener("l", "2")
            .route("r", "2")
            .build(),
    );
    // Listeners and routes first; b's removal is held back.
    let lds = c.expect(LDS).await;
    let rds = c.expect(RDS).await;
    c.barrier().await;
    c.ack(&lds).await;
    c.ack(&rds).await;
    let cds = c.expect(CDS).await;
    assert_eq!(cds.removed_resources, ["b"]);
    assert!(cds.resources.is_empty());
    // b's endpoints go in the same pass, after the cluster.
    let eds = c.expect(EDS).await;
    assert_eq!(eds.removed_resources, ["b"]);
    // Envoy unsubscribes b's endpoints with the cluster gone: nothing more to say.
    c.send(dreq(EDS, &[], &["b"], "")).await;
    c.ack(&cds).await;
    c.ack(&eds).await;
    c.barrier().await;
}

#[tokio::test]
async fn endpoint_only_change_pushes_only_eds_delta() {
    let h = Harness::start(base().build()).await;
    let mut c = h.delta(NODE).await;
    c.start_all(&["a", "b"], &["r"]).await;
    let cds_before = h.server.metrics().pushes(CDS);
    h.publish(base().endpoints("a", "2").build());
    let eds = c.expect(EDS).await;
    c.ack(&eds).await;
    c.barrier().await;
    assert_eq!(h.server.metrics().pushes(CDS), cds_before);
}

#[tokio::test]
async fn two_streams_same_node_id_delta() {
    let h = Harness::start(base().build()).await;
    let mut one = h.delta(NODE).await;
    let mut two = h.delta(NODE).await;
    one.subscribe(CDS, &[], "").await;
    let a = one.expect(CDS).await;
    two.subscribe(CDS, &[], "").await;
    let b = two.expect(CDS).await;
    // `one` never ACKs; `two` does: only `two` gets the next change now.
    two.ack(&b).await;
    h.publish(base().cluster("a", "2").build());
    assert_eq!(dnames(&two.expect(CDS).await), ["a"]);
    one.barrier().await;
    one.ack(&a).await;
    assert_eq!(dnames(&one.expect(CDS).await), ["a"]);
}
