//! Hostile ADS clients against the real server: streams whose requests are
//! generated (garbage and empty node ids, type URLs never served, stale and
//! forged nonces and versions, huge name lists, NACKs of nothing, Delta
//! unsubscribes of what was never subscribed, initial versions for unknown
//! names) never panic a stream task and never stop the server: a well-behaved
//! proxy connected all along keeps receiving pushes, and a new one is served.

mod common;

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use common::*;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use proptest::{collection::vec, prelude::*};
use rudder_test_support::hostile::samples;
use tokio_stream::wrappers::ReceiverStream;

/// Type URLs a client may send: every served one, and some never served.
const TYPES: &[&str] = &[
    "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
    "type.googleapis.com/envoy.config.listener.v3.Listener",
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
    "type.googleapis.com/envoy.config.route.v3.VirtualHost",
    "type.googleapis.com/envoy.service.runtime.v3.Runtime",
    "",
    "garbage",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("a".into()),
        Just("b".into()),
        "[ -~]{0,16}",
        Just("x".repeat(10_000)),
    ]
}

/// A name list: none, a few, or very many.
fn name_list() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        4 => vec(text(), 0..5),
        1 => (1usize..3).prop_map(|k| (0..k * 20_000).map(|i| format!("n{i}")).collect()),
    ]
}

#[derive(Clone, Debug)]
struct Script {
    node_id: String,
    sotw: Vec<DiscoveryRequest>,
    delta: Vec<DeltaDiscoveryRequest>,
}

fn script() -> impl Strategy<Value = Script> {
    let node_id = prop_oneof![
        Just(String::new()),
        Just(NODE.to_string()),
        "[ -~]{0,40}",
        Just("sidecar~~~".to_string()),
        Just("router~10.0.0.1~gw.ns~ns.svc.cluster.local".to_string()),
    ];
    let sotw = (
        proptest::sample::select(TYPES),
        text(),
        name_list(),
        text(),
        any::<bool>(),
    )
        .prop_map(|(t, version, names, nonce, nack)| DiscoveryRequest {
            type_url: t.into(),
            version_info: version,
            resource_names: names,
            response_nonce: nonce,
            error_detail: nack.then(|| envoy_types::pb::google::rpc::Status {
                code: 13,
                message: "rejected".into(),
                details: vec![],
            }),
            ..Default::default()
        });
    let delta = (
        proptest::sample::select(TYPES),
        name_list(),
        name_list(),
        text(),
        vec((text(), text()), 0..3),
    )
        .prop_map(|(t, sub, unsub, nonce, initial)| DeltaDiscoveryRequest {
            type_url: t.into(),
            resource_names_subscribe: sub,
            resource_names_unsubscribe: unsub,
            response_nonce: nonce,
            initial_resource_versions: initial.into_iter().collect(),
            ..Default::default()
        });
    (node_id, vec(sotw, 0..6), vec(delta, 0..6)).prop_map(|(node_id, sotw, delta)| Script {
        node_id,
        sotw,
        delta,
    })
}

/// Plays a script on one SotW and one Delta stream (the node on each first
/// request, as Envoy sends it), reading whatever comes back for a moment,
/// then hangs up. Sends into a stream the server already ended are dropped.
async fn play(h: &Harness, s: Script) {
    let ep = tonic::transport::Endpoint::from_shared(format!("http://{}", h.addr)).unwrap();
    let mut client = AggregatedDiscoveryServiceClient::new(ep.connect().await.unwrap());
    let node = node(&s.node_id);

    let (tx, rx) = tokio::sync::mpsc::channel(16);
    for (i, mut r) in s.sotw.into_iter().enumerate() {
        if i == 0 {
            r.node = Some(node.clone());
        }
        let _ = tx.try_send(r);
    }
    if let Ok(resp) = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
    {
        let mut stream = resp.into_inner();
        let drain = async { while let Ok(Some(_)) = stream.message().await {} };
        let _ = tokio::time::timeout(std::time::Duration::from_millis(5), drain).await;
    }
    drop(tx);

    let (tx, rx) = tokio::sync::mpsc::channel(16);
    for (i, mut r) in s.delta.into_iter().enumerate() {
        if i == 0 {
            r.node = Some(node.clone());
        }
        let _ = tx.try_send(r);
    }
    if let Ok(resp) = client
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await
    {
        let mut stream = resp.into_inner();
        let drain = async { while let Ok(Some(_)) = stream.message().await {} };
        let _ = tokio::time::timeout(std::time::Duration::from_millis(5), drain).await;
    }
    drop(tx);
}

#[test]
fn generated_hostile_streams_never_panic_the_server_or_stop_other_proxies() {
    let panics = Arc::new(AtomicUsize::new(0));
    let seen = panics.clone();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        seen.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let h = rt.block_on(Harness::start(base().build()));
    // A well-behaved proxy connected through all of it.
    let mut good = rt.block_on(async {
        let mut good = h.sotw(NODE).await;
        good.request(CDS, "", &[], "").await;
        let cds = good.expect(CDS).await;
        good.ack(&cds, &[]).await;
        good
    });

    for s in samples("ads: hostile streams", 200, script()) {
        let shown = format!("{s:?}");
        rt.block_on(play(&h, s));
        assert_eq!(
            panics.load(Ordering::SeqCst),
            0,
            "a stream task panicked on: {}",
            &shown[..shown.len().min(2000)]
        );
    }

    rt.block_on(async {
        h.publish(base().cluster("c", "1").build());
        let cds = good.expect(CDS).await;
        assert_eq!(
            names(&cds),
            ["a", "b", "c"],
            "the good proxy still gets pushes"
        );
        let mut fresh = h.sotw(NODE).await;
        fresh.request(CDS, "", &[], "").await;
        assert_eq!(names(&fresh.expect(CDS).await), ["a", "b", "c"]);
    });
    assert_eq!(panics.load(Ordering::SeqCst), 0);
}
