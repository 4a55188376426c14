//! A test kit for your own tests: mint valid tokens for your handlers in one
//! line, with a throwaway key that exists only in the test process.
//!
//! ```
//! use keycard_core::testing::TestKit;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let kit = TestKit::new();
//! let verifier = kit.verifier();            // give this to the app under test
//! let header = kit.bearer("alice", ["admin"]); // "Bearer eyJ..."
//! let token = header.strip_prefix("Bearer ").unwrap();
//! assert!(verifier.verify(token).await.unwrap().has_role("admin"));
//! # });
//! ```

use serde::Serialize;

use crate::issue::{random_id, SigningKey, TokenIssuer};
use crate::verify::{Attempt, TokenType, Verified, Verifier};

/// The `iss` and `aud` of test tokens.
pub const TEST_ISSUER: &str = "keycard-test";

/// Mints tokens for tests with a random HS256 key (never use it outside
/// tests: the key lives only as long as the kit).
#[derive(Debug, Clone)]
pub struct TestKit {
    issuer: TokenIssuer,
    verifier: Verifier,
}

impl Default for TestKit {
    fn default() -> Self {
        Self::new()
    }
}

impl TestKit {
    /// A kit with a fresh random key, `iss` = `aud` = [`TEST_ISSUER`].
    pub fn new() -> Self {
        let secret = format!("{}{}{}", random_id(), random_id(), random_id());
        // A 66-byte secret always satisfies HS256; a failure here would be a
        // bug in keycard, not in the caller's test.
        let key = SigningKey::hs256(secret).expect("a random 66-byte HS256 secret is valid");
        let issuer = TokenIssuer::builder(key)
            .issuer(TEST_ISSUER)
            .audience(TEST_ISSUER)
            .build()
            .expect("the test issuer configuration is valid");
        let verifier = issuer
            .verifier()
            .build()
            .expect("the test verifier configuration is valid");
        Self { issuer, verifier }
    }

    /// The verifier that accepts this kit's tokens: hand it to the app.
    pub fn verifier(&self) -> Verifier {
        self.verifier.clone()
    }

    /// The issuer behind the kit, e.g. for refresh tokens.
    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    /// An access token for `sub` with `roles` in the `roles` claim.
    pub fn token<'r>(&self, sub: &str, roles: impl IntoIterator<Item = &'r str>) -> String {
        let roles: Vec<&str> = roles.into_iter().collect();
        self.token_with(sub, &serde_json::json!({ "roles": roles }))
    }

    /// An access token for `sub` carrying `claims` (a JSON object).
    pub fn token_with<C: Serialize + ?Sized>(&self, sub: &str, claims: &C) -> String {
        self.issuer
            .issue(TokenType::Access, sub, None, claims)
            .expect("test claims must serialize to a JSON object")
            .token
    }

    /// `Bearer <token>`, ready for an `Authorization` header.
    pub fn bearer<'r>(&self, sub: &str, roles: impl IntoIterator<Item = &'r str>) -> String {
        format!("Bearer {}", self.token(sub, roles))
    }

    /// A [`Verified`] token, for handler tests that insert it into request
    /// extensions directly instead of running the layer.
    pub fn verified<'r>(&self, sub: &str, roles: impl IntoIterator<Item = &'r str>) -> Verified {
        match self.verifier.verify_now(&self.token(sub, roles)) {
            Attempt::Done(Ok(v)) => v,
            other => panic!("a freshly minted test token did not verify: {other:?}"),
        }
    }
}
