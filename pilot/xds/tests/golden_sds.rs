//! Secrets over SDS from pilot (issue 15) and DestinationRule
//! `tls.credentialName` for sidecars (issue 14): the `Secret` resources a
//! proxy gets (the test credentials of `pilot/testdata/credentials`, test
//! keys only) and a cluster whose TLS context names them over ADS. Each case
//! is validated by `envoy --mode validate`.

mod support;

use rudder_model::*;
use rudder_xds::fixtures::*;
use serde_json::Value;
use support::*;

fn cluster<'a>(j: &'a Value, name: &str) -> &'a Value {
    let c = &j["cds"][name];
    assert!(!c.is_null(), "no cluster {name}");
    c
}

fn credential(name: &str, mutual: bool) -> TrafficPolicy {
    TrafficPolicy {
        tls: Some(ClientTls::Credential {
            credential_name: name.into(),
            mutual,
            sni: Some("httpbin.example.com".into()),
            subject_alt_names: vec!["httpbin.example.com".into()],
            insecure_skip_verify: false,
        }),
        ..Default::default()
    }
}

#[test]
fn credential_name_cluster_reads_its_secrets_over_ads() {
    let s = bookinfo()
        .policy(mk_policy(
            NS,
            &host("ratings"),
            &[],
            credential("client", true),
        ))
        .policy(mk_policy(
            NS,
            &host("reviews"),
            &[],
            credential("client", false),
        ))
        .secret(mk_test_secret(NS, "client", "client", true))
        .build();
    let j = golden("sds_credential_name_cluster", &s, &proxy(&s, "sleep"));
    let ctx = |svc: &str| {
        cluster(&j, &format!("outbound|9080||{}", host(svc)))["transportSocket"]["typedConfig"]
            ["commonTlsContext"]
            .clone()
    };
    let mutual = ctx("ratings");
    assert_eq!(
        mutual["tlsCertificateSdsSecretConfigs"][0]["name"],
        "kubernetes://client"
    );
    assert!(mutual["tlsCertificateSdsSecretConfigs"][0]["sdsConfig"]["ads"].is_object());
    assert_eq!(
        mutual["combinedValidationContext"]["validationContextSdsSecretConfig"]["name"],
        "kubernetes://client-cacert"
    );
    let simple = ctx("reviews");
    assert!(
        simple.get("tlsCertificateSdsSecretConfigs").is_none(),
        "{simple}"
    );
    assert_eq!(
        simple["combinedValidationContext"]["validationContextSdsSecretConfig"]["name"],
        "kubernetes://client-cacert"
    );
    // The proxy's SDS holds what those contexts name.
    assert!(j["sds"]["kubernetes://client"]["tlsCertificate"].is_object());
    assert!(j["sds"]["kubernetes://client-cacert"]["validationContext"]["trustedCa"].is_object());
}

#[test]
fn secrets_as_istio_names_them() {
    let s = bookinfo()
        .secret(mk_test_secret(NS, "bookinfo-credential", "bookinfo", false))
        .secret(mk_test_secret(NS, "httpbin-credential", "httpbin", true))
        .secret(TlsSecret {
            namespace: NS.into(),
            name: "bookinfo-credential-cacert".into(),
            cert_chain: String::new(),
            private_key: String::new(),
            ca: Some(test_credential("ca.crt")),
        })
        .secret(mk_test_secret("other", "elsewhere", "client", true))
        .build();
    let j = golden("sds_secrets", &s, &proxy(&s, "sleep"));
    let names: Vec<&String> = j["sds"].as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        [
            "kubernetes://bookinfo-credential",
            "kubernetes://bookinfo-credential-cacert",
            "kubernetes://default/bookinfo-credential",
            "kubernetes://default/bookinfo-credential-cacert",
            "kubernetes://default/httpbin-credential",
            "kubernetes://default/httpbin-credential-cacert",
            "kubernetes://httpbin-credential",
            "kubernetes://httpbin-credential-cacert",
        ],
        "only the proxy's own namespace, never other/elsewhere"
    );
    let cert = &j["sds"]["kubernetes://httpbin-credential"]["tlsCertificate"];
    assert_eq!(
        cert["certificateChain"]["inlineString"],
        test_credential("httpbin.crt")
    );
}

#[test]
fn a_proxy_of_another_namespace_gets_none_of_them() {
    let s = bookinfo()
        .pod(mk_pod("stranger", "other", "198.18.0.99", &[("app", "x")]))
        .secret(mk_test_secret(NS, "client", "client", true))
        .build();
    let res = generate(&s, &mk_proxy(&s, "other", "stranger"));
    assert!(
        res.of(rudder_xds::TypeUrl::Secret).is_none(),
        "{:?}",
        res.of(rudder_xds::TypeUrl::Secret)
            .map(|m| m.keys().collect::<Vec<_>>())
    );
    let own = generate(&s, &proxy(&s, "sleep"));
    assert!(own
        .of(rudder_xds::TypeUrl::Secret)
        .unwrap()
        .contains_key("kubernetes://client"));
}
