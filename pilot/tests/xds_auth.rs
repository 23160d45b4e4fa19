//! xDS authentication on pilot's TLS port (15012), against the real binary:
//! a client presenting workload A's certificate but naming pod B's node is
//! refused and gets nothing; A's own node is served; a service-account token
//! works the same way; no credential is refused; the plaintext port (local
//! mesh, tests) asks nothing. Refusals are counted in
//! `pilot_xds_auth_failures`.
//!
//! Real Envoy presenting its workload certificate from the agent's SDS on
//! this port is exercised by the local mesh tests (`cli/tests/mesh_*.rs`):
//! every sidecar there reaches pilot on 15012.

mod support;

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use envoy_types::pb::envoy::{
    config::core::v3::Node,
    service::discovery::v3::{
        aggregated_discovery_service_client::AggregatedDiscoveryServiceClient, DiscoveryRequest,
    },
};
use rudder_model::identity::SpiffeId;
use support::pilot::{free_port, metric, Pilot};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

const TD: &str = "cluster.local";
const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

fn platform() -> String {
    let pod = |name: &str, ip: &str| {
        format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default, labels: {{app: {name}}}}}
spec: {{serviceAccountName: {name}}}
status: {{phase: Running, podIP: {ip}, conditions: [{{type: Ready, status: \"True\"}}]}}
---
"
        )
    };
    format!(
        "{}{}apiVersion: v1
kind: Service
metadata: {{name: reviews, namespace: default}}
spec:
  clusterIP: 10.96.0.10
  selector: {{app: reviews}}
  ports: [{{name: http, port: 9080}}]
",
        pod("reviews", "10.0.0.1"),
        pod("ratings", "10.0.0.2")
    )
}

fn node(pod: &str, ip: &str) -> Node {
    Node {
        id: format!("sidecar~{ip}~{pod}.default~default.svc.cluster.local"),
        ..Default::default()
    }
}

/// A workload certificate for `default/<sa>` from the mesh root in `ca_dir`
/// (what the CA service would issue it): (chain PEM, key PEM).
fn workload_cert(ca_dir: &std::path::Path, sa: &str) -> (String, String) {
    let ca = rudder_ca::CertificateAuthority::load_or_create(ca_dir, TD, Duration::from_secs(3600))
        .expect("the mesh root pilot created");
    let id = SpiffeId {
        trust_domain: TD.into(),
        namespace: "default".into(),
        service_account: sa.into(),
    };
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(id.to_string().try_into().unwrap())];
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let issued = ca.sign_workload(&csr, &id, None).expect("signed");
    (issued.chain.concat(), key.serialize_pem())
}

async fn channel(addr: SocketAddr, root: &str, identity: Option<(String, String)>) -> Channel {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(root))
        .domain_name("127.0.0.1");
    if let Some((chain, key)) = identity {
        tls = tls.identity(Identity::from_pem(chain, key));
    }
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("TLS connection to pilot")
}

/// Opens a SotW stream as `node` (with `token` as bearer if given) and
/// returns the first thing the stream yields: a response's type, or the
/// status it ended with.
async fn first_answer(
    channel: Channel,
    node: Node,
    token: Option<&str>,
) -> Result<String, tonic::Status> {
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    let req = DiscoveryRequest {
        node: Some(node),
        type_url: CDS.into(),
        ..Default::default()
    };
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(req).await.unwrap();
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    if let Some(t) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let answer = tokio::time::timeout(Duration::from_secs(20), async {
        let mut stream = client
            .stream_aggregated_resources(request)
            .await?
            .into_inner();
        match stream.message().await? {
            Some(resp) => Ok(resp.type_url),
            None => Ok("end of stream".into()),
        }
    })
    .await
    .expect("pilot answers within 20 s");
    drop(tx);
    answer
}

#[test]
fn only_a_workloads_own_identity_gets_its_node_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let ca_dir = dir.path().join("ca");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("platform.yaml"), platform()).unwrap();
    let token_key = dir.path().join("token.key");
    std::fs::write(&token_key, [7u8; 32]).unwrap();

    let lo = Ipv4Addr::LOCALHOST;
    let xds = SocketAddr::from((lo, free_port(lo)));
    let secure = SocketAddr::from((lo, free_port(lo)));
    let monitoring = SocketAddr::from((lo, free_port(lo)));
    let mut pilot = Pilot::start_with(
        std::path::Path::new(env!("CARGO_BIN_EXE_pilot")),
        &config,
        xds,
        monitoring,
        &dir.path().join("pilot.log"),
        &[
            "--ca-dir",
            &ca_dir.display().to_string(),
            "--secure-xds-addr",
            &secure.to_string(),
            "--local-token-key",
            &token_key.display().to_string(),
        ],
    )
    .expect("start pilot");
    pilot
        .wait_ready(Duration::from_secs(30))
        .expect("pilot ready");
    let root = std::fs::read_to_string(ca_dir.join("root-cert.pem")).unwrap();
    let reviews = workload_cert(&ca_dir, "reviews");
    let key = std::fs::read(&token_key).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(streams(secure, xds, &root, reviews, &key));

    let metrics = pilot.metrics();
    assert_eq!(
        metric(
            &metrics,
            "pilot_xds_auth_failures{reason=\"permission_denied\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &metrics,
            "pilot_xds_auth_failures{reason=\"unauthenticated\"}"
        ),
        2.0
    );
}

/// The streams of the test above, on pilot's TLS port `secure` and plaintext `xds`.
async fn streams(
    secure: SocketAddr,
    xds: SocketAddr,
    root: &str,
    reviews: (String, String),
    key: &[u8],
) {
    // Workload A's certificate, pod B's node: refused, nothing sent.
    let stolen = first_answer(
        channel(secure, root, Some(reviews.clone())).await,
        node("ratings", "10.0.0.2"),
        None,
    )
    .await
    .expect_err("another workload's node is refused");
    assert_eq!(stolen.code(), tonic::Code::PermissionDenied, "{stolen:?}");
    assert_eq!(
        stolen.message(),
        "certificate spiffe://cluster.local/ns/default/sa/reviews proves default/reviews, which may \
         not receive the configuration of node sidecar~10.0.0.2~ratings.default~default.svc.cluster.local: \
         its service account is ratings"
    );

    // The same certificate for its own node: served.
    let own = first_answer(
        channel(secure, root, Some(reviews)).await,
        node("reviews", "10.0.0.1"),
        None,
    )
    .await
    .expect("A's own node is served");
    assert_eq!(own, CDS);

    // No credential at all.
    let anonymous = first_answer(
        channel(secure, root, None).await,
        node("reviews", "10.0.0.1"),
        None,
    )
    .await
    .expect_err("no credential");
    assert_eq!(
        anonymous.code(),
        tonic::Code::Unauthenticated,
        "{anonymous:?}"
    );

    // A service-account token (the local mesh's kind) works like a certificate.
    let ratings_token = rudder_ca::sign_local_token(
        key,
        "ratings",
        "default",
        "ratings",
        Duration::from_secs(600),
    );
    let by_token = first_answer(
        channel(secure, root, None).await,
        node("ratings", "10.0.0.2"),
        Some(&ratings_token),
    )
    .await
    .expect("B's token for B's node");
    assert_eq!(by_token, CDS);
    let wrong = first_answer(
        channel(secure, root, None).await,
        node("reviews", "10.0.0.1"),
        Some(&ratings_token),
    )
    .await
    .expect_err("B's token for A's node");
    assert_eq!(wrong.code(), tonic::Code::PermissionDenied, "{wrong:?}");
    let forged = first_answer(
        channel(secure, root, None).await,
        node("reviews", "10.0.0.1"),
        Some("not-a-token"),
    )
    .await
    .expect_err("a forged token");
    assert_eq!(forged.code(), tonic::Code::Unauthenticated, "{forged:?}");

    // The plaintext port asks nobody (local mesh and tests only).
    let plain = Endpoint::from_shared(format!("http://{xds}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert_eq!(
        first_answer(plain, node("ratings", "10.0.0.2"), None)
            .await
            .unwrap(),
        CDS
    );
}
