//! State-of-the-world protocol rules, one test each, against the real server.

mod common;

use common::*;

#[tokio::test]
async fn first_request_with_old_version_is_answered() {
    let h = Harness::start(base().build()).await;
    let mut c = h.sotw(NODE).await;
    // A proxy that reconnects after a pilot restart: old version, no nonce.
    c.request(CDS, "version-from-previous-pilot", &[], "").await;
    let cds = c.expect(CDS).await;
    assert_eq!(names(&cds), ["a", "b"]);
    assert_ne!(cds.version_info, "version-from-previous-pilot");
    assert!(!cds.nonce.is_empty());
    // Even a nonce from the previous server is a first request for this stream.
    c.request(EDS, "old", &["a"], "nonce-of-previous-pilot")
        .await;
    assert_eq!(names(&c.expect(EDS).await), ["a"]);
}

#[tokio::test]
async fn wildcard_first_request() {
    let h = Harness::start(base().cluster("c", "1").build()).await;
    let mut c = h.sotw(NODE).await;
    c.request(CDS, "", &[], "").await;
    let cds = c.expect(CDS).await;
    assert_eq!(
        names(&cds),
        ["a", "b", "c"],
        "CDS with no names is wildcard: the full set"
    );
    // (Listeners wait for the CDS ACK, as Envoy's own start order has it.)
    c.ack(&cds, &[]).await;
    c.request(LDS, "", &[], "").await;
    assert_eq!(names(&c.expect(LDS).await), ["l"]);
    // EDS is not a wildcard type: only what is asked for.
    c.request(EDS, "", &["b"], "").await;
    assert_eq!(names(&c.expect(EDS).await), ["b"]);
    // Later, a wildcard response still carries the complete set, not just the change.
    h.publish(base().cluster("c", "2").build());
    let cds2 = c.expect(CDS).await;
    assert_eq!(names(&cds2), ["a", "b", "c"]);
    assert_ne!(cds2.version_info, cds.version_info);
}

#[tokio::test]
async fn stale_nonce_is_ignored() {
    let h = Harness::start(base().build()).await;
    let mut c = h.sotw(NODE).await;
    c.request(EDS, "", &["a"], "").await;
    let first = c.expect(EDS).await;
    c.ack(&first, &["a"]).await;
    h.publish(base().endpoints("a", "2").build());
    let second = c.expect(EDS).await;
    // A request carrying the older nonce (and a new name) is stale: no answer,
    // and its names are not taken.
    c.request(EDS, &first.version_info, &["a", "b"], &first.nonce)
        .await;
    c.barrier().await;
    assert_eq!(h.server.metrics().expired_nonces(EDS), 1);
    // The current nonce with the new names is answered, with what is new.
    c.ack(&second, &["a", "b"]).await;
    assert_eq!(names(&c.expect(EDS).await), ["b"]);
}

#[tokio::test]
async fn nack_is_not_resent_and_keeps_last_good() {
    let h = Harness::start(base().build()).await;
    let mut c = h.sotw(NODE).await;
    c.request(CDS, "", &[], "").await;
    let good = c.expect(CDS).await;
    c.ack(&good, &[]).await;
    h.publish(base().cluster("b", "bad").build());
    let bad = c.expect(CDS).await;
    // Envoy rejects: it reports the version it keeps and the rejected nonce.
    c.nack(CDS, &good.version_info, &bad.nonce, &[], "missing ]: [")
        .await;
    c.barrier().await;
    assert_eq!(h.server.metrics().rejects(CDS), 1);
    let st = &h.server.status()[0].types["cds"];
    assert_eq!(
        st.last_acked_version.as_deref(),
        Some(good.version_info.as_str())
    );
    assert_eq!(st.last_nack.as_ref().unwrap().nonce, bad.nonce);
    // The next change is pushed normally.
    h.publish(base().cluster("b", "fixed").build());
    let fixed = c.expect(CDS).await;
    assert_ne!(fixed.version_info, bad.version_info);
    assert_ne!(fixed.nonce, bad.nonce);
    c.ack(&fixed, &[]).await;
    c.barrier().await;
    let st = &h.server.status()[0].types["cds"];
    assert_eq!(
        st.last_acked_version.as_deref(),
        Some(fixed.version_info.as_str())
    );
}

#[tokio::test]
async fn ack_with_same_names_gets_no_response_changed_names_do() {
    let h = Harness::start(base().build()).await;
    let mut c = h.sotw(NODE).await;
    c.request(EDS, "", &["a"], "").await;
    let r = c.expect(EDS).await;
    c.ack(&r, &["a"]).await;
    c.barrier().await;
    c.ack(&r, &["a", "b"]).await;
    let r2 = c.expect(EDS).await;
    assert_eq!(names(&r2), ["b"], "only the added name: the proxy holds a");
    // Fewer names: Envoy dropped the name itself; nothing to answer (as istio).
    c.ack(&r2, &["b"]).await;
    c.barrier().await;
    // A name dropped and asked for again is sent again.
    c.ack(&r2, &["a", "b"]).await;
    assert_eq!(names(&c.expect(EDS).await), ["a"]);
}

#[tokio::test]
async fn cds_then_eds_ordering() {
    let h = Harness::start(base().build()).await;
    let mut c = h.sotw(NODE).await;
    c.start_all(&["a", "b"], &["r"]).await;
    h.publish(
        base()
            .cluster("a", "2")
            .endpoints("a", "2")
            .listener("l", "2")
            .route("r", "2")
            .build(),
    );
    let cds = c.expect(CDS).await;
    let eds = c.expect(EDS).await;
    assert_eq!(names(&eds), ["a"], "only the changed assignment");
    // Listeners and routes wait until the clusters are accepted.
    c.barrier().await;
    c.ack(&cds, &[]).await;
    let lds = c.expect(LDS).await;
    let rds = c.expect(RDS).await;
    assert_eq!(
        (names(&lds), names(&rds)),
        (vec!["l".to_string()], vec!["r".to_string()])
    );
}

#[tokio::test]
async fn warming_eds_after_cds_sotw() {
    let h = Harness::start(base().build()).await;
    let mut c = h.sotw(NODE).await;
    let last = c.start_all(&["a", "b"], &["r"]).await;
    let eds = &last[&EDS];
    // Only a cluster changes: CDS alone is pushed.
    h.publish(base().cluster("a", "2").build());
    let cds = c.expect(CDS).await;
    // Envoy re-creates cluster a and asks for EDS with a request that looks
    // exactly like an ACK of the last EDS response. It must be answered.
    c.ack(eds, &["a", "b"]).await;
    let warm = c.expect(EDS).await;
    assert_eq!(
        names(&warm),
        ["a"],
        "the assignment of the changed cluster, not of b"
    );
    assert_ne!(warm.nonce, eds.nonce);
    c.ack(&cds, &[]).await;
    c.ack(&warm, &["a", "b"]).await;
    // That was a one-off: a plain ACK now gets nothing.
    c.barrier().await;
}

#[tokio::test]
async fn endpoint_only_change_pushes_only_eds() {
    let h = Harness::start(base().build()).await;
    let mut c = h.sotw(NODE).await;
    c.start_all(&["a", "b"], &["r"]).await;
    let pushes_before: Vec<u64> = [CDS, LDS, RDS]
        .iter()
        .map(|t| h.server.metrics().pushes(*t))
        .collect();
    h.publish(base().endpoints("b", "2").build());
    let eds = c.expect(EDS).await;
    assert_eq!(names(&eds), ["b"], "only the changed assignment");
    c.ack(&eds, &["a", "b"]).await;
    c.barrier().await;
    let pushes_after: Vec<u64> = [CDS, LDS, RDS]
        .iter()
        .map(|t| h.server.metrics().pushes(*t))
        .collect();
    assert_eq!(pushes_before, pushes_after);
    // An endpoint change the proxy did not subscribe to pushes nothing at all.
    h.publish(base().endpoints("b", "2").endpoints("zzz", "1").build());
    c.barrier().await;
}

#[tokio::test]
async fn subscribe_to_missing_name_then_appears() {
    let h = Harness::start(base().build()).await;
    let mut c = h.sotw(NODE).await;
    c.request(EDS, "", &["a", "c"], "").await;
    let r = c.expect(EDS).await;
    assert_eq!(names(&r), ["a"]);
    c.ack(&r, &["a", "c"]).await;
    c.barrier().await;
    h.publish(base().cluster("c", "1").endpoints("c", "1").build());
    assert_eq!(names(&c.expect(EDS).await), ["c"]);
}

#[tokio::test]
async fn updates_while_awaiting_ack_coalesce_to_latest() {
    let h = Harness::start(base().build()).await;
    let mut c = h.sotw(NODE).await;
    c.request(EDS, "", &["a"], "").await;
    let first = c.expect(EDS).await;
    // Not ACKed yet: further updates wait, and only the newest is sent.
    h.publish(base().endpoints("a", "2").build());
    h.publish(base().endpoints("a", "3").build());
    c.barrier().await;
    c.ack(&first, &["a"]).await;
    let latest = c.expect(EDS).await;
    assert_eq!(
        latest.version_info,
        base().endpoints("a", "3").build().type_version(EDS)
    );
    c.ack(&latest, &["a"]).await;
    c.barrier().await;
}

#[tokio::test]
async fn make_before_break_cluster_removal() {
    let h = Harness::start(base().build()).await;
    let mut c = h.sotw(NODE).await;
    let last = c.start_all(&["a", "b"], &["r"]).await;
    // Service b goes away: its cluster and endpoints vanish and the
    // listener/route stop pointing at it.
    h.publish(
        base()
            .without(CDS, "b")
            .without(EDS, "b")
            .listener("l", "2")
            .route("r", "2")
            .build(),
    );
    // Clusters are not pulled first: listeners and routes change first.
    let lds = c.expect(LDS).await;
    let rds = c.expect(RDS).await;
    c.barrier().await;
    c.ack(&lds, &[]).await;
    c.barrier().await;
    c.ack(&rds, &["r"]).await;
    // Only now does CDS drop b.
    let cds = c.expect(CDS).await;
    assert_eq!(names(&cds), ["a"]);
    assert_ne!(cds.version_info, last[&CDS].version_info);
    // Envoy drops b's EDS subscription itself: nothing to answer.
    c.ack(&last[&EDS], &["a"]).await;
    c.barrier().await;
}

#[tokio::test]
async fn cluster_removal_without_listener_change_is_immediate() {
    let h = Harness::start(base().cluster("c", "1").build()).await;
    let mut c = h.sotw(NODE).await;
    c.start_all(&["a", "b", "c"], &["r"]).await;
    h.publish(base().build());
    assert_eq!(names(&c.expect(CDS).await), ["a", "b"]);
}

#[tokio::test]
async fn two_streams_same_node_id() {
    let h = Harness::start(base().build()).await;
    let mut old = h.sotw(NODE).await;
    let mut new = h.sotw(NODE).await;
    old.request(CDS, "", &[], "").await;
    let o = old.expect(CDS).await;
    new.request(CDS, "", &[], "").await;
    let n = new.expect(CDS).await;
    assert_ne!(o.nonce, n.nonce);
    let st = h.server.status();
    assert_eq!(st.len(), 2);
    assert!(st.iter().all(|s| s.node_id == NODE));
    assert_ne!(st[0].stream_id, st[1].stream_id);
    assert_eq!(h.server.metrics().connected(), 2);
    // Each stream's state is its own: only `new` ACKs, both get the next push.
    new.ack(&n, &[]).await;
    drop(old);
    h.publish(base().cluster("a", "2").build());
    new.expect(CDS).await;
    wait_until(|| h.server.status().len() == 1).await;
    assert_eq!(h.server.metrics().connected(), 1);
}

#[tokio::test]
async fn disconnect_cleans_status_gauge_and_directory_watch() {
    let h = Harness::start(base().build()).await;
    let mut c = h.sotw(NODE).await;
    c.request(CDS, "", &[], "").await;
    c.expect(CDS).await;
    assert_eq!(h.dir.tx.receiver_count(), 1);
    assert_eq!(h.dir.nodes.lock().unwrap()[0].id, NODE);
    drop(c);
    wait_until(|| h.server.status().is_empty() && h.dir.tx.receiver_count() == 0).await;
    assert_eq!(h.server.metrics().connected(), 0);
}

#[tokio::test]
async fn refused_or_anonymous_proxy_gets_an_error_status() {
    let h = Harness::start(base().build()).await;
    let mut c = h.sotw("refuse~me").await;
    c.request(CDS, "", &[], "").await;
    let err = c.rx.message().await.expect_err("refused");
    assert_eq!(err.code(), tonic::Code::NotFound);
    let mut c = h.sotw("").await;
    c.request(CDS, "", &[], "").await;
    let err = c.rx.message().await.expect_err("no node id");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(h.server.status().is_empty());
}

#[tokio::test]
async fn nonce_less_request_starts_the_type_over() {
    let h = Harness::start(base().build()).await;
    let mut c = h.sotw(NODE).await;
    c.request(EDS, "", &["a"], "").await;
    c.expect(EDS).await;
    // Not ACKed, and asked afresh: answered at once with the new names.
    c.request(EDS, "", &["b"], "").await;
    assert_eq!(names(&c.expect(EDS).await), ["b"]);
}
