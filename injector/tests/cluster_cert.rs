//! The injector's own certificate on a cluster, against an in-process fake
//! API server: no Secret → one is created, the webhook configuration's
//! caBundle names its CA, and the webhook serves a certificate that chains
//! to it; a valid Secret is reused without writes; an expiring one is
//! replaced; a lost create race serves the winner's; an equal caBundle is not
//! patched; RBAC refusals are named; a running injector follows a peer's
//! rotation and patches webhook configurations (the injector's and the
//! optional validator's) applied after it started.

mod common;

use std::{path::Path, sync::Arc, time::Duration};

use base64::Engine;
use common::{
    fake_api::{FakeApi, VALIDATOR_PATH, WEBHOOK_PATH},
    request_to,
};
use hyper::{Method, StatusCode};
use rudder_injector::{
    cluster_cert::{self, ensure_secret, patch_ca_bundle, unix_now, Origin},
    server,
    serving_cert::{self, Bundle, SECRET_NAME},
    tls::{self, SwappableCert},
    Values,
};
use serde_json::{json, Value};
use tokio::sync::oneshot;

const NS: &str = "rudder-system";
const SECRET_PATH: &str = "/api/v1/namespaces/rudder-system/secrets/rudder-injector-tls";

/// The `kind` object of `manifests/injector/FILE`, exactly as the file has it.
fn manifest(file: &str, kind: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/injector")
        .join(file);
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&std::fs::read_to_string(path).unwrap()).unwrap();
    docs.into_iter().find(|d| d["kind"] == kind).unwrap()
}

/// The MutatingWebhookConfiguration exactly as manifests/injector/webhook.yaml has it.
fn webhook_manifest() -> Value {
    manifest("webhook.yaml", "MutatingWebhookConfiguration")
}

/// The ValidatingWebhookConfiguration of manifests/injector/validator.yaml.
fn validator_manifest() -> Value {
    manifest("validator.yaml", "ValidatingWebhookConfiguration")
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn ca_bundles(api: &FakeApi) -> Vec<Option<String>> {
    bundles_of(api.st().webhook.as_ref().unwrap())
}

fn bundles_of(config: &Value) -> Vec<Option<String>> {
    config["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["clientConfig"]["caBundle"].as_str().map(String::from))
        .collect()
}

fn stored_bundle(api: &FakeApi) -> Bundle {
    let st = api.st();
    Bundle::from_secret(&st.secrets[&(NS.to_string(), SECRET_NAME.to_string())]).unwrap()
}

/// The webhook serving from `resolver` on loopback; stopped on drop.
struct Served {
    addr: std::net::SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn serve(resolver: Arc<SwappableCert>) -> Served {
    let config = tls::server_config_with(resolver).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    let state = Arc::new(server::WebhookState {
        values: Values::default(),
        native_sidecars: false,
    });
    tokio::spawn(server::serve(listener, Arc::new(config), state, async {
        let _ = rx.await;
    }));
    Served { addr, _stop: tx }
}

#[tokio::test]
async fn no_secret_creates_one_patches_the_ca_bundle_and_serves_a_chaining_certificate() {
    let api = FakeApi::start().await;
    api.st().webhook = Some(webhook_manifest());
    let settled = ensure_secret(&api.client(), NS, unix_now()).await.unwrap();
    assert_eq!(settled.origin, Origin::Created);
    assert_eq!(
        stored_bundle(&api),
        settled.bundle,
        "the Secret holds what is served"
    );
    {
        let st = api.st();
        let secret = &st.secrets[&(NS.to_string(), SECRET_NAME.to_string())];
        assert_eq!(secret["type"], "kubernetes.io/tls");
        let keys: Vec<&String> = secret["data"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["ca.crt", "tls.crt", "tls.key"]);
        assert_eq!(
            st.writes(),
            [format!("POST /api/v1/namespaces/{NS}/secrets")]
        );
    }

    assert_eq!(ca_bundles(&api), [None, None]);
    assert_eq!(
        patch_ca_bundle(&api.client(), &settled.bundle.ca_pem)
            .await
            .unwrap(),
        2
    );
    let want = b64(&settled.bundle.ca_pem);
    assert_eq!(ca_bundles(&api), [Some(want.clone()), Some(want)]);
    // Everything else in the configuration is untouched.
    let mut after = api.st().webhook.clone().unwrap();
    for w in after["webhooks"].as_array_mut().unwrap() {
        w["clientConfig"]
            .as_object_mut()
            .unwrap()
            .remove("caBundle");
    }
    after["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    assert_eq!(after, webhook_manifest());

    // The API server's view: dial the Service name, trust only ca.crt.
    let hook = serve(Arc::new(SwappableCert::new(settled.key))).await;
    let ca = stored_bundle(&api).ca_pem;
    for name in serving_cert::dns_names(NS) {
        let reply = request_to(
            &name,
            hook.addr,
            &[&ca],
            Method::GET,
            "/healthz",
            vec![],
            false,
        )
        .await;
        assert_eq!(
            (reply.status, reply.text().as_str()),
            (StatusCode::OK, "ok\n"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_valid_secret_is_reused_without_any_write() {
    let api = FakeApi::start().await;
    let existing = serving_cert::generate(NS, unix_now() - 86_400).unwrap();
    api.st().put_secret(existing.secret(NS));
    let settled = ensure_secret(&api.client(), NS, unix_now()).await.unwrap();
    assert_eq!(settled.origin, Origin::Reused);
    assert_eq!(settled.bundle, existing);
    assert_eq!(api.st().log, [format!("GET {SECRET_PATH}")]);
}

#[tokio::test]
async fn an_expiring_secret_is_replaced_in_place() {
    let api = FakeApi::start().await;
    // Issued 340 days ago: 25 days left, under the 30-day threshold.
    let old = serving_cert::generate(NS, unix_now() - 340 * 86_400).unwrap();
    let mut secret = old.secret(NS);
    secret["metadata"]["annotations"] = json!({"kept": "yes"});
    api.st().put_secret(secret);
    let settled = ensure_secret(&api.client(), NS, unix_now()).await.unwrap();
    assert_eq!(settled.origin, Origin::Updated);
    assert_ne!(settled.bundle, old);
    assert_eq!(stored_bundle(&api), settled.bundle);
    let st = api.st();
    assert_eq!(st.writes(), [format!("PUT {SECRET_PATH}")]);
    let stored = &st.secrets[&(NS.to_string(), SECRET_NAME.to_string())];
    assert_eq!(
        stored["metadata"]["annotations"]["kept"], "yes",
        "metadata survives the update"
    );
}

#[tokio::test]
async fn losing_the_create_race_serves_the_winners_secret() {
    let api = FakeApi::start().await;
    let winner = serving_cert::generate(NS, unix_now()).unwrap();
    api.st().race = Some(winner.secret(NS));
    let settled = ensure_secret(&api.client(), NS, unix_now()).await.unwrap();
    assert_eq!(settled.origin, Origin::Peer);
    assert_eq!(settled.bundle, winner);
    assert_eq!(
        stored_bundle(&api),
        winner,
        "the winner's Secret is left as it is"
    );
    assert_eq!(
        api.st().log,
        [
            format!("GET {SECRET_PATH}"),
            format!("POST /api/v1/namespaces/{NS}/secrets"),
            format!("GET {SECRET_PATH}"),
        ]
    );

    // The same on update: a peer replaced the expiring Secret first.
    let api = FakeApi::start().await;
    api.st().put_secret(
        serving_cert::generate(NS, unix_now() - 340 * 86_400)
            .unwrap()
            .secret(NS),
    );
    let winner = serving_cert::generate(NS, unix_now()).unwrap();
    api.st().race = Some(winner.secret(NS));
    let settled = ensure_secret(&api.client(), NS, unix_now()).await.unwrap();
    assert_eq!((settled.origin, settled.bundle), (Origin::Peer, winner));
}

#[tokio::test]
async fn an_equal_ca_bundle_is_not_patched() {
    let api = FakeApi::start().await;
    let bundle = serving_cert::generate(NS, unix_now()).unwrap();
    let mut hook = webhook_manifest();
    for w in hook["webhooks"].as_array_mut().unwrap() {
        w["clientConfig"]["caBundle"] = json!(b64(&bundle.ca_pem));
    }
    api.st().webhook = Some(hook.clone());
    assert_eq!(
        patch_ca_bundle(&api.client(), &bundle.ca_pem)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        api.st().log,
        [
            format!("GET {WEBHOOK_PATH}"),
            format!("GET {VALIDATOR_PATH}")
        ],
        "no PATCH sent; the validator is not installed, which is no error"
    );

    // Only the entry that differs is patched.
    hook["webhooks"][1]["clientConfig"]["caBundle"] = json!(b64("an old CA"));
    api.st().webhook = Some(hook);
    assert_eq!(
        patch_ca_bundle(&api.client(), &bundle.ca_pem)
            .await
            .unwrap(),
        1
    );
    let want = b64(&bundle.ca_pem);
    assert_eq!(ca_bundles(&api), [Some(want.clone()), Some(want)]);
}

#[tokio::test]
async fn refusals_name_the_action_and_the_reason() {
    let api = FakeApi::start().await;
    api.st()
        .forbid
        .push(format!("POST /api/v1/namespaces/{NS}/secrets"));
    let err = ensure_secret(&api.client(), NS, unix_now())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "create Secret {NS}/{SECRET_NAME}: HTTP 403 Forbidden: POST"
        )),
        "{err}"
    );
    // No webhook configuration at all.
    let err = patch_ca_bundle(&api.client(), "pem")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("get MutatingWebhookConfiguration rudder-sidecar-injector: HTTP 404"),
        "{err}"
    );
}

#[tokio::test]
async fn a_running_injector_patches_a_late_webhook_and_follows_a_peer_rotation() {
    let api = FakeApi::start().await;
    let settled = ensure_secret(&api.client(), NS, unix_now()).await.unwrap();
    let first = settled.bundle.clone();
    let resolver = Arc::new(SwappableCert::new(settled.key));
    let hook = serve(resolver.clone()).await;
    let maintain = tokio::spawn(cluster_cert::maintain(
        api.client(),
        NS.to_string(),
        resolver,
        first.clone(),
        Duration::from_millis(200),
    ));

    // The webhook configurations appear after start: patched on a retry.
    api.st().webhook = Some(webhook_manifest());
    api.st().validator = Some(validator_manifest());
    let want = Some(b64(&first.ca_pem));
    wait_for("caBundle patched", || {
        ca_bundles(&api) == [want.clone(), want.clone()]
            && bundles_of(api.st().validator.as_ref().unwrap()) == [want.clone()]
    })
    .await;

    // Another replica rotates the Secret: served and in the caBundle.
    let rotated = serving_cert::generate(NS, unix_now()).unwrap();
    api.st().put_secret(rotated.secret(NS));
    let want = Some(b64(&rotated.ca_pem));
    wait_for("caBundle follows the rotation", || {
        ca_bundles(&api) == [want.clone(), want.clone()]
            && bundles_of(api.st().validator.as_ref().unwrap()) == [want.clone()]
    })
    .await;
    let name = &serving_cert::dns_names(NS)[0];
    let reply = request_to(
        name,
        hook.addr,
        &[&rotated.ca_pem],
        Method::GET,
        "/healthz",
        vec![],
        true,
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the rotated certificate is served"
    );
    maintain.abort();
}

/// The in-cluster client reads the service-account token for every request,
/// so a token the kubelet rotated is sent from the next request on (a token
/// read once would be refused after about an hour on a real cluster).
#[tokio::test]
async fn a_rotated_token_file_is_sent_from_the_next_request_on() {
    use rudder_injector::kubeapi::ApiClient;
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first-token\n").unwrap();
    let client = ApiClient::with_token_file(
        &api.addr.to_string(),
        "localhost",
        api.ca_pem.as_bytes(),
        &token,
    )
    .unwrap();
    let get = || client.request(Method::GET, SECRET_PATH, None);
    assert_eq!(get().await.unwrap().status, StatusCode::NOT_FOUND);
    std::fs::write(&token, "second-token").unwrap();
    assert_eq!(get().await.unwrap().status, StatusCode::NOT_FOUND);
    assert_eq!(api.st().auth, ["Bearer first-token", "Bearer second-token"]);
    std::fs::remove_file(&token).unwrap();
    let err = get().await.unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}: ", token.display())), "{err}");
}

/// Poll `done` every 50 ms; panic after 20 s (a safety bound, not a timing assertion).
async fn wait_for(what: &str, done: impl Fn() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting: {what}");
}
