//! The certificate service over real TLS on loopback, with a tonic client
//! that trusts only the mesh root (as the agent does).

use std::{sync::Arc, time::Duration};

use rcgen::{CertificateParams, KeyPair, SanType};
use rudder_ca::{
    client, root, sign_local_token, Authenticators, Counter, LocalTokenAuthenticator,
    TokenReviewAuthenticator,
};
use rudder_test_support::ca::CaServer;
use x509_parser::pem::Pem;

const KEY: &[u8] = b"local-token-key-local-token-key-0123";

struct Server {
    addr: String,
    root: String,
    metrics: rudder_ca::CaMetrics,
    _ca: CaServer,
}

async fn start() -> Server {
    let auth = Authenticators::new()
        .with(Arc::new(LocalTokenAuthenticator::new(KEY)))
        .with(Arc::new(TokenReviewAuthenticator::new(None)));
    let ca = CaServer::start(Duration::from_secs(3600), auth).await;
    Server {
        addr: ca.addr.clone(),
        root: ca.root_pem(),
        metrics: ca.metrics.clone(),
        _ca: ca,
    }
}

fn csr(uri: Option<&str>) -> String {
    let mut p = CertificateParams::default();
    if let Some(u) = uri {
        p.subject_alt_names = vec![SanType::URI(u.to_string().try_into().unwrap())];
    }
    p.serialize_request(&KeyPair::generate().unwrap())
        .unwrap()
        .pem()
        .unwrap()
}

#[tokio::test]
async fn issues_refuses_and_counts_over_tls() {
    let s = start().await;
    let ch = client::connect(&s.addr, &s.root).await.unwrap();
    let token = sign_local_token(
        KEY,
        "reviews-1",
        "default",
        "reviews",
        Duration::from_secs(60),
    );
    let me = "spiffe://cluster.local/ns/default/sa/reviews";

    // Good request → leaf for the token's identity + root, TTL as asked.
    let chain =
        client::create_certificate(ch.clone(), &token, &csr(Some(me)), Duration::from_secs(120))
            .await
            .unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[1], s.root);
    let pem = Pem::iter_from_buffer(chain[0].as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let leaf = pem.parse_x509().unwrap();
    let san = leaf
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names[0]
        .to_string();
    assert_eq!(san, format!("URI({me})"));
    let left = leaf.validity().not_after.timestamp() - rudder_ca::unix_now();
    assert!((115..=121).contains(&left), "{left}");

    // A CSR for another account with this token → refused.
    let err = client::create_certificate(
        ch.clone(),
        &token,
        &csr(Some("spiffe://cluster.local/ns/default/sa/admin")),
        Duration::ZERO,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("sa/admin"), "{}", err.message());

    // Bad CSR → INVALID_ARGUMENT with the reason.
    let err = client::create_certificate(ch.clone(), &token, "not a csr", Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("invalid CSR"), "{}", err.message());

    // Bad, forged, foreign-key and missing tokens → UNAUTHENTICATED.
    let forged = token.replace("rudder-v1.", "rudder-v1.x");
    let foreign = sign_local_token(
        b"another-key-another-key-another-key!",
        "p",
        "default",
        "reviews",
        Duration::from_secs(60),
    );
    for t in ["garbage", forged.as_str(), foreign.as_str()] {
        let err = client::create_certificate(ch.clone(), t, &csr(None), Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{t}: {err:?}");
    }
    let mut raw = rudder_ca::proto::IstioCertificateServiceClient::new(ch.clone());
    let err = raw
        .create_certificate(tonic::Request::new(
            rudder_ca::proto::IstioCertificateRequest {
                csr: csr(None),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert!(err.message().contains("Bearer"), "{}", err.message());

    let m = &s.metrics;
    assert_eq!(
        [
            Counter::Csr,
            Counter::Success,
            Counter::AuthFailure,
            Counter::CsrParsingErr,
            Counter::IdExtractionErr
        ]
        .map(|c| m.get(c)),
        [7, 1, 4, 1, 1]
    );
    assert!(m.render().contains("\ncitadel_server_csr_count 7\n"));
}

#[tokio::test]
async fn a_client_with_another_root_does_not_trust_the_server() {
    let s = start().await;
    let (other, _) = root::generate("cluster.local", rudder_ca::unix_now()).unwrap();
    let ok = match client::connect(&s.addr, &other).await {
        Err(_) => false,
        Ok(ch) => {
            let token = sign_local_token(KEY, "p", "default", "a", Duration::from_secs(60));
            client::create_certificate(ch, &token, &csr(None), Duration::ZERO)
                .await
                .is_ok()
        }
    };
    assert!(
        !ok,
        "a client trusting another root must not get a certificate"
    );
}
