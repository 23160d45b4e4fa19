//! Connection storms: many streams at once, each on its own TCP connection as
//! every Envoy has, all configured; the first-push throttle makes streams
//! wait, never fail.

mod common;

use common::*;
use rudder_ads::AdsOptions;

const STREAMS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_streams_at_once_are_all_configured() {
    let h = std::sync::Arc::new(
        Harness::start_with(base().build(), AdsOptions { push_throttle: 20 }).await,
    );
    let mut tasks = Vec::new();
    for i in 0..STREAMS {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!(
                "sidecar~10.0.{}.{}~p{i}.default~default.svc.cluster.local",
                i / 250,
                i % 250
            );
            // Clients stay open until the end (returned), half SotW, half Delta.
            let kept: Box<dyn std::any::Any + Send> = if i % 2 == 0 {
                let mut c = h.sotw(&id).await;
                c.start_all(&["a", "b"], &["r"]).await;
                Box::new(c)
            } else {
                let mut c = h.delta(&id).await;
                c.start_all(&["a", "b"], &["r"]).await;
                Box::new(c)
            };
            kept
        }));
    }
    let mut clients = Vec::new();
    let mut failures = 0;
    for t in tasks {
        match t.await {
            Ok(c) => clients.push(c),
            Err(_) => failures += 1,
        }
    }
    assert_eq!(failures, 0, "every stream configured");
    assert_eq!(clients.len(), STREAMS);
    let m = h.server.metrics();
    assert_eq!(m.first_pushes_waiting(), 0);
    assert_eq!(m.rejects(CDS), 0);
    assert_eq!(m.connected(), STREAMS as i64);
    assert_eq!(h.server.status().len(), STREAMS);
}

#[tokio::test]
async fn first_push_waits_for_a_permit_and_is_never_refused() {
    let h = Harness::start_with(base().build(), AdsOptions { push_throttle: 1 }).await;
    let mut first = h.sotw(NODE).await;
    first.request(CDS, "", &[], "").await;
    let cds = first.expect(CDS).await;
    // `first` has not ACKed: it still holds the only permit, so `second`
    // waits (counted), and is not refused.
    let mut second = h.sotw(NODE).await;
    second.request(CDS, "", &[], "").await;
    wait_until(|| h.server.metrics().first_pushes_waiting() == 1).await;
    assert_eq!(h.server.metrics().first_pushes_throttled(), 1);
    first.ack(&cds, &[]).await;
    assert_eq!(names(&second.expect(CDS).await), ["a", "b"]);
    assert_eq!(h.server.metrics().first_pushes_waiting(), 0);
    let text = h.server.metrics().render();
    assert!(
        text.contains("pilot_xds_first_push_throttled 1\n"),
        "{text}"
    );
}
