//! End-user JWT for the end-to-end tests: ES256 keys and tokens signed in
//! the test (ring's ECDSA P-256), and a JWKS server on loopback whose key set
//! the test can swap (rotation).
//!
//! ```text
//!  test ─ SigningKey::token(claims) ─► "Authorization: Bearer <JWT>" ─► Envoy jwt_authn
//!  pilot ─ GET http://127.0.0.1:<port>/jwks.json ─► JwksServer (current key set)
//! ```

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use super::stub::Stub;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
use ring::{
    rand::SystemRandom,
    signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING},
};
use serde_json::{json, Value};

/// An ES256 signing key with its key id.
pub struct SigningKey {
    kid: String,
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl SigningKey {
    /// A fresh P-256 key.
    pub fn generate(kid: &str) -> SigningKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate a P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("load the P-256 key");
        SigningKey {
            kid: kid.into(),
            pair,
            rng,
        }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = self.pair.public_key().as_ref();
        json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
        })
    }

    /// A compact JWS over `claims`.
    pub fn token(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = self
            .pair
            .sign(&self.rng, input.as_bytes())
            .expect("sign the token");
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }
}

/// A key set of these keys, as JSON text.
pub fn jwks(keys: &[&SigningKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}

/// Seconds since the epoch, shifted by `offset` seconds.
pub fn epoch(offset: i64) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    now + offset
}

/// A server on 127.0.0.1 answering every request with the current key
/// set; stops when dropped.
pub struct JwksServer {
    body: Arc<Mutex<String>>,
    stub: Stub,
}

impl JwksServer {
    /// Serves `body` at `http://127.0.0.1:<port>/jwks.json`.
    pub fn start(body: String) -> JwksServer {
        let body = Arc::new(Mutex::new(body));
        let b = body.clone();
        let stub = Stub::start(SocketAddr::from(([127, 0, 0, 1], 0)), move |_| {
            (200, "application/json", b.lock().unwrap().clone())
        });
        JwksServer { body, stub }
    }

    /// The `jwksUri`.
    pub fn uri(&self) -> String {
        format!("http://{}/jwks.json", self.stub.addr())
    }

    /// Serves `body` from now on.
    pub fn set(&self, body: String) {
        *self.body.lock().unwrap() = body;
    }

    /// Requests answered so far.
    pub fn hits(&self) -> usize {
        self.stub.requests().len()
    }
}
