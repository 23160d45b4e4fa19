//! What an ADS client claims about itself (its node id and metadata, decoded
//! by pilot before anything else) never panics the decoder, whatever it is:
//! real ids with random edits, arbitrary metadata built from the keys Rudder
//! reads. A decoded id renders back to what was sent.

use proptest::prop_assert_eq;
use rudder_model::{NodeId, NodeMetadata};
use rudder_test_support::hostile::{check, json, mutated};

#[test]
fn edited_node_ids_never_panic_and_round_trip() {
    let ids = vec![
        "sidecar~10.0.0.1~reviews-v1-abc.default~default.svc.cluster.local".to_string(),
        "router~fd00::7~istio-ingressgateway-1.istio-system~istio-system.svc.cluster.local"
            .to_string(),
    ];
    check("model: edited node ids", 3000, mutated(ids), |id| {
        if let Ok(parsed) = NodeId::parse(&id) {
            prop_assert_eq!(NodeId::parse(&parsed.to_string()).ok(), Some(parsed));
        }
        Ok(())
    });
}

const KEYS: &[&str] = &[
    "NAMESPACE",
    "LABELS",
    "SERVICE_ACCOUNT",
    "WORKLOAD_NAME",
    "INSTANCE_IPS",
    "CAPTURE_PORT",
    "INBOUND_CAPTURE_PORT",
    "CERT_MODE",
    "app",
    "version",
];

#[test]
fn arbitrary_node_metadata_never_panics() {
    let metadata = json(KEYS, 3);
    check("model: arbitrary node metadata", 3000, metadata, |md| {
        let _ = NodeMetadata::from_json(&md);
        Ok(())
    });
}
