//! Hostile certificate requests: real CSRs with random edits (PEM armour,
//! base64, DER bytes) and arbitrary bytes never panic the CA; whatever it
//! signs carries exactly the caller's identity and nothing a forged request
//! asked for; a local token with random edits never authenticates.

use std::time::Duration;

use proptest::{prop_assert, prop_assert_eq, strategy::Strategy};
use rudder_ca::{CertificateAuthority, LocalTokenAuthenticator};
use rudder_model::identity::SpiffeId;
use rudder_test_support::hostile::{check, mutated};

fn id(sa: &str) -> SpiffeId {
    SpiffeId {
        trust_domain: "cluster.local".into(),
        namespace: "default".into(),
        service_account: sa.into(),
    }
}

/// CSRs an agent (or an attacker) could send: the right identity, another
/// workload's, extra DNS names, no SAN at all.
fn csrs() -> Vec<String> {
    let mut out = Vec::new();
    for sans in [
        vec![rcgen::SanType::URI(
            id("web").to_string().try_into().unwrap(),
        )],
        vec![rcgen::SanType::URI(
            id("db").to_string().try_into().unwrap(),
        )],
        vec![
            rcgen::SanType::URI(id("web").to_string().try_into().unwrap()),
            rcgen::SanType::DnsName("kubernetes.default.svc".try_into().unwrap()),
        ],
        vec![],
    ] {
        let mut p = rcgen::CertificateParams::default();
        p.subject_alt_names = sans;
        out.push(
            p.serialize_request(&rcgen::KeyPair::generate().unwrap())
                .unwrap()
                .pem()
                .unwrap(),
        );
    }
    out
}

#[test]
fn edited_and_forged_csrs_never_panic_and_never_get_another_identity() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::load_or_create(
        dir.path(),
        "cluster.local",
        Duration::from_secs(3600),
    )
    .unwrap();
    let web = id("web");
    check("ca: edited CSRs", 400, mutated(csrs()), |pem| {
        if let Ok(issued) = ca.sign_workload(&pem, &web, None) {
            let leaf = x509_parser::pem::parse_x509_pem(issued.chain[0].as_bytes())
                .map(|(_, p)| p.contents)
                .unwrap();
            let sans = rudder_ca::uri_sans(&leaf).unwrap();
            prop_assert_eq!(sans, vec![web.to_string()]);
        }
        Ok(())
    });
    let bytes = proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)
        .prop_map(|b| String::from_utf8_lossy(&b).into_owned());
    check("ca: arbitrary CSR bytes", 400, bytes, |pem| {
        prop_assert!(ca.sign_workload(&pem, &web, None).is_err());
        Ok(())
    });
}

#[test]
fn edited_local_tokens_never_authenticate() {
    let key = [9u8; 32];
    let good =
        rudder_ca::sign_local_token(&key, "web-1", "default", "web", Duration::from_secs(600));
    let auth = LocalTokenAuthenticator::new(&key);
    let now = rudder_ca::unix_now();
    assert!(
        auth.verify(&good, now).is_ok(),
        "the unedited token is good"
    );
    check(
        "ca: edited local tokens",
        1000,
        mutated(vec![good.clone()]),
        |token| {
            if token != good {
                prop_assert!(
                    auth.verify(&token, now).is_err(),
                    "an edited token passed: {token}"
                );
            }
            Ok(())
        },
    );
}
