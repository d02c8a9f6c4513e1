//! People signed in at an external OpenID Connect provider (Keycloak, as
//! OpenG2P and OpenSPP use): the registry fetches the provider's JWKS from its
//! URL, reads role and units from the claims the configuration names, caps them
//! by what the provider may grant, and follows a key rotation without a
//! restart. The provider here is the test's own: its keys, its tokens, a JWKS
//! served on loopback.

mod common;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use common::*;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sustain_platform::auth::keys::SigningKey;
use sustain_platform::auth::remote::ClaimMap;
use sustain_platform::config::{Config, TrustConfig};
use tonic::Code;

const PROVIDER: &str = "https://id.langson.example/realms/sustain";

/// The provider's signing keys: one ES256 (P-256), one Ed25519 to rotate to.
struct Provider {
    es256: (EncodingKey, Jwk),
    ed25519: SigningKey,
    published: Arc<RwLock<Vec<Jwk>>>,
}

impl Provider {
    fn new() -> Provider {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("p-256");
        let key = EncodingKey::from_ec_der(&pair.serialize_der());
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).expect("jwk");
        jwk.common.key_id = Some("es-1".into());
        Provider {
            published: Arc::new(RwLock::new(vec![jwk.clone()])),
            es256: (key, jwk),
            ed25519: SigningKey::generate(),
        }
    }

    /// Publishes the Ed25519 key beside the first: a rotation.
    fn rotate(&self) {
        self.published
            .write()
            .expect("lock")
            .push(self.ed25519.public());
    }

    fn token(&self, rotated: bool, claims: &serde_json::Value) -> String {
        if rotated {
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = Some(self.ed25519.kid().into());
            let pem = self.ed25519.to_pem().expect("pem");
            let der = {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(
                        pem.lines()
                            .filter(|l| !l.starts_with("-----"))
                            .collect::<String>(),
                    )
                    .expect("der")
            };
            jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&der)).expect("signed")
        } else {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some("es-1".into());
            jsonwebtoken::encode(&header, claims, &self.es256.0).expect("signed")
        }
    }

    /// Serves the JWKS at `http://127.0.0.1:PORT/certs`.
    async fn serve(&self) -> String {
        let published = Arc::clone(&self.published);
        let app = axum::Router::new().route(
            "/certs",
            axum::routing::get(move || {
                let keys = published.read().expect("lock").clone();
                async move { axum::Json(JwkSet { keys }) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/certs")
    }
}

/// A person's claims as Keycloak writes them.
fn person(
    roles: &[&str],
    units: &str,
    f: impl FnOnce(&mut serde_json::Value),
) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    let mut c = serde_json::json!({
        "iss": PROVIDER, "aud": "sustain-registry", "sub": "5b1e-9c", "typ": "Bearer",
        "preferred_username": "ly.van.sau", "iat": now, "nbf": now, "exp": now + 300,
        "realm_access": {"roles": roles}, "sustain_units": units,
        "scope": "openid profile email",
    });
    f(&mut c);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_an_openid_provider_are_mapped_capped_and_followed_through_a_rotation() {
    let provider = Provider::new();
    let url = provider.serve().await;
    let mut config = Config::defaults(0);
    config.shutdown_grace_secs = 0;
    config.auth.trust = vec![TrustConfig {
        issuer: PROVIDER.into(),
        jwks: None,
        jwks_url: Some(url),
        scope: vec!["20".into()],
        audience: Some("sustain-registry".into()),
        claims: Some(ClaimMap {
            role_claim: "realm_access.roles".into(),
            role_prefix: "sustain-".into(),
            scope_claim: "sustain_units".into(),
            subject_claim: "preferred_username".into(),
        }),
    }];
    let server = TestServer::start_with(config).await;
    // A household in 181 and one in 185, made with the instance's own token.
    let mut admin = server.admin().await;
    let in_181 = create(&mut admin, household("Lý Văn Một", "020085003001"))
        .await
        .expect("181");
    let in_185 = create(
        &mut admin,
        household_in("06325", "2022-05-01", "Lý Văn Hai", "020085003002"),
    )
    .await
    .expect("185");

    let as_person = |token: String| server.households_with(Some(token));
    // An approver of district 181, as the provider says.
    let mut approver = as_person(provider.token(
        false,
        &person(&["offline_access", "sustain-approver"], "181", |_| {}),
    ))
    .await;
    get(&mut approver, &in_181.id).await.expect("in 181");
    assert_eq!(
        get(&mut approver, &in_185.id)
            .await
            .expect_err("185")
            .code(),
        Code::PermissionDenied
    );
    // Units beyond the province are beyond what the provider may grant.
    let mut everywhere =
        as_person(provider.token(false, &person(&["sustain-viewer"], "*", |_| {}))).await;
    get(&mut everywhere, &in_185.id)
        .await
        .expect("the province, capped");
    let mut ha_noi =
        as_person(provider.token(false, &person(&["sustain-viewer"], "01", |_| {}))).await;
    assert_eq!(
        get(&mut ha_noi, &in_181.id)
            .await
            .expect_err("another province")
            .code(),
        Code::PermissionDenied
    );
    // Refused: another audience, expired, not yet valid, too long-lived, no
    // role, two roles, a peer's role.
    let now = chrono::Utc::now().timestamp();
    for (what, claims) in [
        (
            "another audience",
            person(&["sustain-admin"], "20", |c| c["aud"] = "account".into()),
        ),
        (
            "expired",
            person(&["sustain-admin"], "20", |c| {
                c["iat"] = (now - 7200).into();
                c["exp"] = (now - 3600).into();
            }),
        ),
        (
            "not yet valid",
            person(&["sustain-admin"], "20", |c| c["nbf"] = (now + 3600).into()),
        ),
        (
            "lives too long",
            person(&["sustain-admin"], "20", |c| {
                c["exp"] = (now + 30 * 24 * 3600).into()
            }),
        ),
        ("no role", person(&["offline_access"], "20", |_| {})),
        (
            "two roles",
            person(&["sustain-admin", "sustain-viewer"], "20", |_| {}),
        ),
        ("a peer's role", person(&["sustain-sync"], "20", |_| {})),
    ] {
        let mut client = as_person(provider.token(false, &claims)).await;
        assert_eq!(
            get(&mut client, &in_181.id).await.expect_err(what).code(),
            Code::Unauthenticated,
            "{what}"
        );
    }

    // A token forged with another P-256 key under the provider's key id,
    // and one whose issuer is not the provider the key belongs to.
    let forger = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("p-256");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("es-1".into());
    let forged = jsonwebtoken::encode(
        &header,
        &person(&["sustain-admin"], "20", |_| {}),
        &EncodingKey::from_ec_der(&forger.serialize_der()),
    )
    .expect("signed");
    let elsewhere = provider.token(
        false,
        &person(&["sustain-admin"], "20", |c| {
            c["iss"] = "https://id.elsewhere.example/realms/x".into();
        }),
    );
    for (what, token) in [
        ("a forged signature", forged),
        ("another issuer", elsewhere),
    ] {
        let mut client = as_person(token).await;
        assert_eq!(
            get(&mut client, &in_181.id).await.expect_err(what).code(),
            Code::Unauthenticated,
            "{what}"
        );
    }

    // The provider rotates to a new key: the registry fetches it when a token
    // first names it, without a restart.
    provider.rotate();
    let rotated = provider.token(true, &person(&["sustain-viewer"], "181", |_| {}));
    let start = Instant::now();
    loop {
        let mut client = as_person(rotated.clone()).await;
        match get(&mut client, &in_181.id).await {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "the new key is not followed: {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
