//! Identity on a cluster, against the fake API server: TokenReview for the
//! certificate service, the CA root Secret created once under the Lease,
//! and ConfigMap `rudder-ca-root-cert` in every namespace.

mod support;

use std::{sync::Arc, time::Duration};

use base64::Engine;
use rcgen::{CertificateParams, KeyPair, SanType};
use rudder_ca::{
    auth::{AuthError, Authenticator},
    proto::{IstioCertificateRequest, IstioCertificateService},
    root, Authenticators, CertificateAuthority, CertificateService, TokenReviewAuthenticator,
};
use rudder_kube::{
    ca_root::{self, CaRootOptions},
    KubeOptions, KubeRuntime, KubeTokenReviewer, RootCertPublisher, CA_ROOT_SECRET,
    ROOT_CERT_CONFIGMAP, ROOT_CERT_KEY,
};
use rudder_model::identity::SpiffeId;
use rudder_registry::{Registry, RegistryOptions};
use serde_json::{json, Value};
use support::{fake_api::FakeApi, namespace, wait};
use tokio::sync::watch;

fn csr_for(uri: &str) -> String {
    let mut p = CertificateParams::default();
    p.subject_alt_names = vec![SanType::URI(uri.to_string().try_into().unwrap())];
    p.serialize_request(&KeyPair::generate().unwrap())
        .unwrap()
        .pem()
        .unwrap()
}

fn request(token: &str, csr: String) -> tonic::Request<IstioCertificateRequest> {
    let mut r = tonic::Request::new(IstioCertificateRequest {
        csr,
        validity_duration: 3600,
        metadata: None,
    });
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

#[tokio::test]
async fn token_review_accepts_the_right_account_and_refuses_wrong_audience_or_account() {
    let api = FakeApi::start().await;
    api.add_token(
        "t-reviews",
        "system:serviceaccount:default:reviews",
        &["istio-ca"],
    );
    // A token for the API server's own audience: valid there, not for the CA.
    api.add_token(
        "t-apiserver",
        "system:serviceaccount:default:reviews",
        &["https://kubernetes.default.svc"],
    );
    api.add_token("t-node", "system:node:worker-1", &["istio-ca"]);
    let reviewer =
        TokenReviewAuthenticator::new(Some(Arc::new(KubeTokenReviewer::new(api.client()))));

    let caller = reviewer
        .authenticate("t-reviews")
        .await
        .expect("a token for default/reviews");
    assert_eq!(
        (caller.namespace.as_str(), caller.service_account.as_str()),
        ("default", "reviews")
    );
    // The review named the istio-ca audience (the fake accepts any audience when none is named).
    let e = reviewer.authenticate("t-apiserver").await.unwrap_err();
    assert!(
        matches!(&e, AuthError::Invalid(m) if m.contains("invalid for the target audiences")),
        "{e}"
    );
    let e = reviewer.authenticate("t-node").await.unwrap_err();
    assert!(e.to_string().contains("not a service account"), "{e}");
    let e = reviewer.authenticate("forged").await.unwrap_err();
    assert!(e.to_string().contains("invalid bearer token"), "{e}");
    let reviews = api
        .writes()
        .iter()
        .filter(|w| *w == "POST /apis/authentication.k8s.io/v1/tokenreviews")
        .count();
    assert_eq!(reviews, 4);

    // Through the certificate service: the identity comes from the token.
    let (cert, key) = root::generate("cluster.local", rudder_ca::unix_now()).unwrap();
    let root = root::from_pem(
        "c".as_ref(),
        &cert,
        "k".as_ref(),
        &key,
        rudder_ca::unix_now(),
    )
    .unwrap();
    let ca = CertificateAuthority::new(root, "cluster.local", Duration::from_secs(86400));
    let service =
        CertificateService::new(Arc::new(ca), Authenticators::new().with(Arc::new(reviewer)));
    let me = SpiffeId::new("cluster.local", "default", "reviews").to_string();
    let chain = service
        .create_certificate(request("t-reviews", csr_for(&me)))
        .await
        .expect("issued")
        .into_inner()
        .cert_chain;
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[1], cert);
    let other = SpiffeId::new("cluster.local", "default", "ratings").to_string();
    let e = service
        .create_certificate(request("t-reviews", csr_for(&other)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let e = service
        .create_certificate(request("t-apiserver", csr_for(&me)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
}

fn options(identity: &str) -> KubeOptions {
    KubeOptions {
        identity: identity.into(),
        lease_duration: Duration::from_secs(15),
        lease_renew: Duration::from_millis(200),
        status_resync: Duration::from_secs(30),
        ..KubeOptions::default()
    }
}

fn replica(api: &FakeApi, identity: &str) -> (KubeRuntime, Registry) {
    let (registry, _snapshots) = Registry::new(RegistryOptions::default());
    let runtime = KubeRuntime::with_client(
        api.client(),
        registry.handle(),
        registry.diagnostics(),
        &options(identity),
    );
    (runtime, registry)
}

fn secret_creates(api: &FakeApi) -> usize {
    api.writes()
        .iter()
        .filter(|w| *w == "POST /api/v1/namespaces/rudder-system/secrets")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_secret_is_created_once_by_the_lease_holder_and_loaded_by_other_replicas() {
    let api = FakeApi::start().await;
    api.put(namespace("rudder-system"));
    let (a, _ra) = replica(&api, "pilot-a");
    wait("pilot-a holds the status Lease", || a.is_status_leader()).await;
    let (b, _rb) = replica(&api, "pilot-b");

    // pilot-b asks first: no Secret and no Lease, so it waits for pilot-a.
    let b_root = tokio::spawn(async move {
        let r = b.ca_root("cluster.local").await;
        (r, b)
    });
    let created = a
        .ca_root("cluster.local")
        .await
        .expect("pilot-a creates the root");
    assert!(created.created);
    let (loaded, b) = tokio::time::timeout(Duration::from_secs(30), b_root)
        .await
        .expect("pilot-b loads")
        .unwrap();
    let loaded = loaded.expect("pilot-b's root");
    assert!(!loaded.created && !b.is_status_leader());
    assert_eq!(loaded.root.cert_pem, created.root.cert_pem);

    let secret = api
        .get("v1", "Secret", "rudder-system", CA_ROOT_SECRET)
        .expect("Secret stored");
    let stored = secret["data"]["root-cert.pem"]
        .as_str()
        .expect("base64 data");
    assert!(!stored.is_empty() && secret["data"]["root-key.pem"].is_string());
    // A restart (or a third replica) loads the same root; nobody writes again.
    let (c, _rc) = replica(&api, "pilot-c");
    let again = c.ca_root("cluster.local").await.unwrap();
    assert_eq!(again.root.cert_pem, created.root.cert_pem);
    assert_eq!(secret_creates(&api), 1, "{:?}", api.writes());
}

fn leader(is: bool) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(is);
    std::mem::forget(tx);
    rx
}

#[tokio::test]
async fn an_operator_provided_root_is_loaded_and_a_broken_one_is_never_replaced() {
    let api = FakeApi::start().await;
    let (cert, key) = root::generate("example.org", rudder_ca::unix_now()).unwrap();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    api.put(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": CA_ROOT_SECRET, "namespace": "rudder-system"},
                   "data": {"root-cert.pem": b64(&cert), "root-key.pem": b64(&key)}}));
    let o = CaRootOptions {
        poll: Duration::from_millis(50),
        ..CaRootOptions::new("rudder-system", "cluster.local")
    };
    let got = ca_root::load_or_create(api.client(), &o, leader(true))
        .await
        .expect("operator's root");
    assert!(!got.created);
    assert_eq!(got.root.cert_pem, cert);

    api.put(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": CA_ROOT_SECRET, "namespace": "rudder-system"},
                   "data": {"root-cert.pem": b64(&cert)}}));
    let e = ca_root::load_or_create(api.client(), &o, leader(true))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("rudder-system/rudder-ca-root") && e.contains("root-key.pem"),
        "{e}"
    );
    assert!(
        api.writes().is_empty(),
        "never replaced: {:?}",
        api.writes()
    );
}

fn root_cert(api: &FakeApi, ns: &str) -> Option<String> {
    api.get("v1", "ConfigMap", ns, ROOT_CERT_CONFIGMAP)
        .and_then(|cm| cm["data"][ROOT_CERT_KEY].as_str().map(String::from))
}

fn configmap_writes(api: &FakeApi) -> Vec<String> {
    api.writes()
        .into_iter()
        .filter(|w| w.contains("/configmaps"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_configmap_reaches_every_namespace_and_stays_current_while_leading() {
    let api = FakeApi::start().await;
    api.put(namespace("default"));
    api.put(namespace("rudder-system"));
    let mut dying = namespace("dying");
    dying["status"] = json!({"phase": "Terminating"});
    api.put(dying);
    let pem = "-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n".to_string();
    let (leading, is_leader) = watch::channel(false);
    let _publisher = RootCertPublisher::spawn(
        api.client(),
        pem.clone(),
        is_leader,
        Duration::from_millis(100),
    );

    // Not the Lease holder: both stores listed, several resyncs, nothing written.
    wait("the publisher listed namespaces and configmaps", || {
        api.lists("/api/v1/namespaces") >= 1 && api.lists("/api/v1/configmaps") >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        configmap_writes(&api).is_empty(),
        "a follower writes nothing: {:?}",
        api.writes()
    );

    leading.send_replace(true);
    wait("ConfigMaps in default and rudder-system", || {
        root_cert(&api, "default").as_deref() == Some(pem.as_str())
            && root_cert(&api, "rudder-system").as_deref() == Some(pem.as_str())
    })
    .await;
    assert!(
        api.get("v1", "ConfigMap", "dying", ROOT_CERT_CONFIGMAP)
            .is_none(),
        "terminating namespaces are skipped"
    );

    // A namespace created later.
    api.put(namespace("late"));
    wait("ConfigMap in a later namespace", || {
        root_cert(&api, "late").as_deref() == Some(pem.as_str())
    })
    .await;

    // Edited or deleted by someone: restored.
    let mut cm = api
        .get("v1", "ConfigMap", "default", ROOT_CERT_CONFIGMAP)
        .unwrap();
    cm["data"][ROOT_CERT_KEY] = json!("tampered");
    api.put(cm);
    api.delete("v1", "ConfigMap", "late", ROOT_CERT_CONFIGMAP);
    wait("restored", || {
        root_cert(&api, "default").as_deref() == Some(pem.as_str())
            && root_cert(&api, "late").as_deref() == Some(pem.as_str())
    })
    .await;

    // Converged: the pass that serves one more namespace rewrites nothing else.
    let before = configmap_writes(&api).len();
    api.put(namespace("last"));
    wait("ConfigMap in the last namespace", || {
        root_cert(&api, "last").as_deref() == Some(pem.as_str())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after: Vec<String> = configmap_writes(&api).split_off(before);
    assert_eq!(
        after,
        vec!["POST /api/v1/namespaces/last/configmaps".to_string()]
    );
    let labels: &Value = &api
        .get("v1", "ConfigMap", "last", ROOT_CERT_CONFIGMAP)
        .unwrap()["metadata"]["labels"];
    assert_eq!(labels["app"], "rudder-pilot");
}
