//! Issuing tokens: signing keys and the [`TokenIssuer`] that stamps every
//! registered claim and keeps access and refresh tokens apart by `typ`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::key::{ensure_crypto, family, min_hmac_len, Family, Key};
use crate::key_ring::KeyRing;
use crate::verify::{now_secs, TokenType, VerifierBuilder};

/// A private signing key with its algorithm and optional `kid`.
///
/// `Debug` never prints key material.
#[derive(Clone)]
pub struct SigningKey {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<Arc<str>>,
    pub(crate) key: EncodingKey,
    pub(crate) public: Key,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// An HMAC signing key; the secret must be at least as long as the hash.
    pub fn hmac(alg: Algorithm, secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let public = Key::hmac(alg, secret.as_ref())?;
        let _ = min_hmac_len(alg);
        Ok(Self {
            alg,
            kid: None,
            key: EncodingKey::from_secret(secret.as_ref()),
            public,
        })
    }

    /// Shorthand for [`SigningKey::hmac`] with HS256.
    pub fn hs256(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        Self::hmac(Algorithm::HS256, secret)
    }

    /// A private key in PEM form (PKCS#8, or PKCS#1 for RSA; SEC1 or PKCS#8
    /// for EC) for an RSA, EC or EdDSA algorithm.
    pub fn from_pem(alg: Algorithm, pem: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        ensure_crypto()?;
        let pem = pem.as_ref();
        let key = match family(alg)? {
            Family::Rsa => EncodingKey::from_rsa_pem(pem),
            Family::Ec => EncodingKey::from_ec_pem(pem),
            Family::Ed => EncodingKey::from_ed_pem(pem),
        }
        .map_err(|e| ConfigError::InvalidKey(e.to_string()))?;
        Self::from_encoding_key(alg, key)
    }

    /// A private key in DER form (PKCS#1 for RSA, PKCS#8 for EC and EdDSA).
    pub fn from_der(alg: Algorithm, der: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        ensure_crypto()?;
        let der = der.as_ref();
        let key = match family(alg)? {
            Family::Rsa => EncodingKey::from_rsa_der(der),
            Family::Ec => EncodingKey::from_ec_der(der),
            Family::Ed => EncodingKey::from_ed_der(der),
        };
        Self::from_encoding_key(alg, key)
    }

    /// Generate a fresh EdDSA, ES256 or ES384 signing key with the system
    /// random generator (feature `aws-lc-rs`). Other algorithms: load a key
    /// with [`SigningKey::from_pem`].
    #[cfg(feature = "aws-lc-rs")]
    pub fn generate(alg: Algorithm) -> Result<Self, ConfigError> {
        use aws_lc_rs::signature::{
            EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
            ECDSA_P384_SHA384_FIXED_SIGNING,
        };
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let fail = |e: aws_lc_rs::error::Unspecified| ConfigError::InvalidKey(e.to_string());
        let pkcs8 = match alg {
            // jsonwebtoken reads PKCS#8 v1 Ed25519 keys.
            Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8v1(&rng).map_err(fail)?,
            Algorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(fail)?
            }
            Algorithm::ES384 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
                    .map_err(fail)?
            }
            other => {
                return Err(ConfigError::InvalidSetting(format!(
                    "generate supports EdDSA, ES256 and ES384, not {other:?}"
                )))
            }
        };
        Self::from_der(alg, pkcs8.as_ref())
    }

    fn from_encoding_key(alg: Algorithm, key: EncodingKey) -> Result<Self, ConfigError> {
        let jwk = Jwk::from_encoding_key(&key, alg)
            .map_err(|e| ConfigError::InvalidKey(e.to_string()))?;
        let decoding =
            DecodingKey::from_jwk(&jwk).map_err(|e| ConfigError::InvalidKey(e.to_string()))?;
        let public = Key::checked(alg, decoding)?;
        Ok(Self {
            alg,
            kid: None,
            key,
            public,
        })
    }

    /// Set the `kid` stamped on every token this key signs.
    #[must_use]
    pub fn with_kid(mut self, kid: impl AsRef<str>) -> Self {
        let kid: Arc<str> = Arc::from(kid.as_ref());
        self.public.kid = Some(kid.clone());
        self.kid = Some(kid);
        self
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The key id.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The key that verifies this key's signatures (the public half, or the
    /// same secret for HMAC).
    pub fn verification_key(&self) -> Key {
        self.public.clone()
    }

    /// Sign `claims` with this key and a header of the given `typ`.
    pub fn sign(&self, typ: &str, claims: &Map<String, Value>) -> Result<String, IssueError> {
        let mut header = Header::new(self.alg);
        header.typ = Some(typ.to_owned());
        header.kid = self.kid.as_deref().map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.key)
            .map_err(|e| IssueError::Sign(e.to_string()))
    }
}

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The user claims did not serialize to a JSON object.
    #[error("claims must serialize to a JSON object: {0}")]
    Claims(String),
    /// The signing backend failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// A store needed for issuing failed.
    #[error(transparent)]
    Store(#[from] crate::revocation::StoreError),
}

/// A freshly issued token. `Debug` shows its `jti`, never the token.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuedToken {
    /// The compact JWS.
    pub token: String,
    /// Its `jti`.
    pub jti: String,
    /// Its `exp`.
    pub expires_at: i64,
    /// Seconds from issue to expiry.
    pub expires_in: u64,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"<redacted>")
            .field("jti", &self.jti)
            .field("expires_at", &self.expires_at)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// The compact JWS, ready for an `Authorization: Bearer` header or a
/// response body: `format!("Bearer {issued}")`.
impl fmt::Display for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.token)
    }
}

impl AsRef<str> for IssuedToken {
    fn as_ref(&self) -> &str {
        &self.token
    }
}

impl From<IssuedToken> for String {
    fn from(t: IssuedToken) -> Self {
        t.token
    }
}

struct IssuerSettings {
    ring: Arc<KeyRing>,
    issuer: Option<String>,
    audiences: Vec<String>,
    client_id: Option<String>,
    access_ttl: Duration,
    refresh_ttl: Duration,
    session_ttl: Duration,
}

/// Signs access and refresh tokens. Cheap to clone.
///
/// ```
/// use keycard_core::{SigningKey, TokenIssuer, TokenType};
///
/// let issuer = TokenIssuer::builder(SigningKey::hs256(b"an-example-secret-of-32-bytes-or-more")?)
///     .issuer("https://auth.example.com")
///     .audience("orders-api")
///     .build()?;
/// let access = issuer.issue(TokenType::Access, "alice", None, &serde_json::json!({"roles": ["user"]}))?;
/// let verifier = issuer.verifier().build()?;
/// let verified = futures_executor_block_on(verifier.verify(&access.token))?;
/// assert_eq!(verified.subject(), Some("alice"));
/// # fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TokenIssuer(Arc<IssuerSettings>);

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("ring", &self.0.ring)
            .field("issuer", &self.0.issuer)
            .field("audiences", &self.0.audiences)
            .field("access_ttl", &self.0.access_ttl)
            .field("refresh_ttl", &self.0.refresh_ttl)
            .finish()
    }
}

/// The default access-token lifetime: 15 minutes.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// The default refresh-token lifetime: 7 days.
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The default absolute session lifetime: 30 days.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

impl TokenIssuer {
    /// Start configuring an issuer that signs with `key`.
    pub fn builder(key: SigningKey) -> TokenIssuerBuilder {
        Self::builder_with_ring(Arc::new(KeyRing::new(key)))
    }

    /// Start configuring an issuer that signs with the active key of `ring`
    /// (rotate it with [`KeyRing::rotate`]). Building the issuer raises the
    /// ring's retention to the refresh lifetime plus the largest leeway, so
    /// a rotation never ends a session.
    pub fn builder_with_ring(ring: Arc<KeyRing>) -> TokenIssuerBuilder {
        TokenIssuerBuilder {
            ring,
            issuer: None,
            audiences: Vec::new(),
            client_id: None,
            access_ttl: DEFAULT_ACCESS_TTL,
            refresh_ttl: DEFAULT_REFRESH_TTL,
            session_ttl: DEFAULT_SESSION_TTL,
        }
    }

    /// An access token for `sub` carrying `claims` (any `Serialize` type
    /// that is a JSON object, e.g. `serde_json::json!({"roles": ["admin"]})`),
    /// as the string to send: the one call to mint a token.
    ///
    /// ```
    /// use keycard_core::{SigningKey, TokenIssuer};
    ///
    /// let issuer = TokenIssuer::builder(SigningKey::hs256(b"an-example-secret-of-32-bytes-or-more")?)
    ///     .build()?;
    /// let token: String = issuer.access_token("alice", &serde_json::json!({"roles": ["admin"]}))?;
    /// assert_eq!(token.split('.').count(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// For its `jti` and expiry, or a refresh token or a session, see
    /// [`TokenIssuer::issue`] and [`crate::Sessions`].
    pub fn access_token<C: Serialize + ?Sized>(
        &self,
        sub: &str,
        claims: &C,
    ) -> Result<String, IssueError> {
        Ok(self.issue(TokenType::Access, sub, None, claims)?.token)
    }

    /// Issue a token of type `kind` for `sub`, in session `sid` (if any),
    /// carrying the user's own `claims` (any `Serialize` type that is a JSON
    /// object). Registered claims (`iss`, `sub`, `aud`, `exp`, `nbf`, `iat`,
    /// `jti`, `sid`, and keycard's `sxp`) are the issuer's alone: same-named
    /// user claims are dropped, whether or not the issuer sets them.
    pub fn issue<C: Serialize + ?Sized>(
        &self,
        kind: TokenType,
        sub: &str,
        sid: Option<&str>,
        claims: &C,
    ) -> Result<IssuedToken, IssueError> {
        self.issue_with(kind, sub, sid, claims, None, None)
    }

    /// An access token bound to the client's key (RFC 9449 §6): `cnf.jkt`
    /// is `jkt`, the RFC 7638 thumbprint of the key the client proves
    /// possession of with DPoP ([`crate::dpop::thumbprint`]). Verifiers
    /// refuse it as a plain Bearer token.
    pub fn issue_bound<C: Serialize + ?Sized>(
        &self,
        sub: &str,
        sid: Option<&str>,
        claims: &C,
        jkt: &str,
    ) -> Result<IssuedToken, IssueError> {
        if jkt.is_empty()
            || !jkt
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(IssueError::Claims(
                "jkt is not a base64url thumbprint".into(),
            ));
        }
        let map = claims_map(claims)?;
        self.issue_bound_at(
            TokenType::Access,
            sub,
            sid,
            map,
            None,
            None,
            now_secs(),
            Some(jkt),
        )
    }

    /// [`TokenIssuer::issue`] with a chosen `jti` and an upper bound on
    /// `exp` (e.g. the end of the session).
    pub fn issue_with<C: Serialize + ?Sized>(
        &self,
        kind: TokenType,
        sub: &str,
        sid: Option<&str>,
        claims: &C,
        jti: Option<&str>,
        exp_cap: Option<i64>,
    ) -> Result<IssuedToken, IssueError> {
        let map = claims_map(claims)?;
        self.issue_at(kind, sub, sid, map, jti, exp_cap, now_secs())
    }

    /// Sign a token issued at `now` (by the caller's clock, e.g. a cluster
    /// clock shared with the revocation store).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn issue_at(
        &self,
        kind: TokenType,
        sub: &str,
        sid: Option<&str>,
        map: Map<String, Value>,
        jti: Option<&str>,
        exp_cap: Option<i64>,
        now: i64,
    ) -> Result<IssuedToken, IssueError> {
        self.issue_bound_at(kind, sub, sid, map, jti, exp_cap, now, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn issue_bound_at(
        &self,
        kind: TokenType,
        sub: &str,
        sid: Option<&str>,
        mut map: Map<String, Value>,
        jti: Option<&str>,
        exp_cap: Option<i64>,
        now: i64,
        jkt: Option<&str>,
    ) -> Result<IssuedToken, IssueError> {
        let s = &*self.0;
        let ttl = match kind {
            TokenType::Refresh => s.refresh_ttl,
            _ => s.access_ttl,
        };
        // Registered claims are the issuer's alone: drop every same-named
        // user claim first, whether or not the issuer sets it below.
        for name in ISSUER_CLAIMS {
            map.remove(name);
        }
        let ttl_secs = ttl.as_secs();
        let mut exp = now.saturating_add(i64::try_from(ttl_secs).unwrap_or(i64::MAX));
        if let Some(cap) = exp_cap {
            exp = exp.min(cap);
        }
        let jti = jti.map_or_else(random_id, str::to_owned);
        if let Some(iss) = &s.issuer {
            map.insert("iss".into(), iss.clone().into());
        }
        match s.audiences.as_slice() {
            [] => {}
            [one] => {
                map.insert("aud".into(), one.clone().into());
            }
            many => {
                map.insert("aud".into(), many.to_vec().into());
            }
        }
        map.insert("sub".into(), sub.into());
        map.insert("iat".into(), now.into());
        map.insert("nbf".into(), now.into());
        map.insert("exp".into(), exp.into());
        map.insert("jti".into(), jti.clone().into());
        if let Some(sid) = sid {
            map.insert("sid".into(), sid.into());
        }
        if kind == TokenType::Refresh {
            // The session's absolute end rides in refresh tokens, so a
            // refresh knows it before signing (the store enforces it).
            if let Some(cap) = exp_cap {
                map.insert("sxp".into(), cap.into());
            }
        }
        if kind == TokenType::Access {
            // RFC 9068 §2.2: access tokens name the client they were issued to.
            if let Some(cid) = &s.client_id {
                map.insert("client_id".into(), cid.clone().into());
            }
            if let Some(jkt) = jkt {
                map.insert("cnf".into(), serde_json::json!({ "jkt": jkt }));
            }
        }
        let token = s.ring.active().sign(kind.typ(), &map)?;
        Ok(IssuedToken {
            token,
            jti,
            expires_at: exp,
            expires_in: u64::try_from(exp - now).unwrap_or(0),
        })
    }

    /// A verifier builder preconfigured to accept this issuer's access
    /// tokens: same key, `iss`, `aud`, and a maximum lifetime equal to the
    /// access-token lifetime.
    pub fn verifier(&self) -> VerifierBuilder {
        self.verifier_for(TokenType::Access)
    }

    /// A verifier builder preconfigured for this issuer's tokens of `kind`.
    pub fn verifier_for(&self, kind: TokenType) -> VerifierBuilder {
        let s = &*self.0;
        let mut b = crate::Verifier::builder()
            .key_provider(s.ring.clone())
            .token_type(kind)
            .max_lifetime(match kind {
                TokenType::Refresh => s.refresh_ttl,
                _ => s.access_ttl,
            });
        if let Some(iss) = &s.issuer {
            b = b.issuer(iss.clone());
        }
        for aud in &s.audiences {
            b = b.audience(aud.clone());
        }
        b
    }

    /// The key that signs new tokens now.
    pub fn signing_key(&self) -> Arc<SigningKey> {
        self.0.ring.active()
    }

    /// The key ring (rotate keys, publish the JWKS).
    pub fn key_ring(&self) -> &Arc<KeyRing> {
        &self.0.ring
    }

    /// The `client_id` stamped on access tokens, if any.
    pub fn client_id(&self) -> Option<&str> {
        self.0.client_id.as_deref()
    }

    /// Access-token lifetime.
    pub fn access_ttl(&self) -> Duration {
        self.0.access_ttl
    }

    /// Refresh-token lifetime.
    pub fn refresh_ttl(&self) -> Duration {
        self.0.refresh_ttl
    }

    /// Absolute session lifetime.
    pub fn session_ttl(&self) -> Duration {
        self.0.session_ttl
    }
}

/// Builds a [`TokenIssuer`].
#[must_use]
#[derive(Debug)]
pub struct TokenIssuerBuilder {
    ring: Arc<KeyRing>,
    issuer: Option<String>,
    audiences: Vec<String>,
    client_id: Option<String>,
    access_ttl: Duration,
    refresh_ttl: Duration,
    session_ttl: Duration,
}

impl TokenIssuerBuilder {
    /// The `client_id` stamped on access tokens (RFC 9068 §2.2 requires
    /// it). Default: the first audience, when one is configured.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// The `iss` stamped on every token.
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.issuer = Some(iss.into());
        self
    }

    /// An `aud` stamped on every token (call again for several).
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.push(aud.into());
        self
    }

    /// Access-token lifetime (default 15 minutes).
    pub fn access_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// Refresh-token lifetime (default 7 days).
    pub fn refresh_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_ttl = ttl;
        self
    }

    /// Absolute session lifetime after which refresh stops working even if
    /// rotated (default 30 days).
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// Check and freeze the configuration.
    pub fn build(self) -> Result<TokenIssuer, ConfigError> {
        ensure_crypto()?;
        if self.access_ttl.is_zero() || self.refresh_ttl.is_zero() || self.session_ttl.is_zero() {
            return Err(ConfigError::InvalidSetting(
                "token lifetimes must be positive".into(),
            ));
        }
        if self.access_ttl > self.refresh_ttl {
            return Err(ConfigError::InvalidSetting(
                "access tokens must not outlive refresh tokens".into(),
            ));
        }
        // Retired keys keep verifying every token they signed for as long
        // as it can be valid: the longest lifetime plus the largest leeway.
        self.ring
            .retain_at_least(self.refresh_ttl.max(self.access_ttl) + crate::verify::MAX_LEEWAY);
        Ok(TokenIssuer(Arc::new(IssuerSettings {
            ring: self.ring,
            client_id: self.client_id.or_else(|| self.audiences.first().cloned()),
            issuer: self.issuer,
            audiences: self.audiences,
            access_ttl: self.access_ttl,
            refresh_ttl: self.refresh_ttl,
            session_ttl: self.session_ttl,
        })))
    }
}

/// Claims only the issuer sets; same-named user claims are dropped.
pub(crate) const ISSUER_CLAIMS: [&str; 11] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "sid",
    "sxp",
    "client_id",
    "cnf",
];

pub(crate) fn claims_map<C: Serialize + ?Sized>(
    claims: &C,
) -> Result<Map<String, Value>, IssueError> {
    match serde_json::to_value(claims).map_err(|e| IssueError::Claims(e.to_string()))? {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        _ => Err(IssueError::Claims("not an object".into())),
    }
}

/// A random 128-bit identifier, base64url-encoded.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // The OS RNG failing is unrecoverable for a security library.
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    crate::b64::encode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minting_a_token_is_one_call_and_the_token_prints_as_itself() {
        let issuer = TokenIssuer::builder(SigningKey::hs256([5u8; 32]).unwrap())
            .build()
            .unwrap();
        let token = issuer
            .access_token("alice", &serde_json::json!({"roles": ["admin"]}))
            .unwrap();
        let verifier = issuer.verifier().build().unwrap();
        let crate::Attempt::Done(Ok(v)) = verifier.verify_now(&token) else {
            panic!("the minted token does not verify")
        };
        assert_eq!(v.subject(), Some("alice"));
        assert_eq!(v.roles(), ["admin"]);
        let issued = issuer
            .issue(TokenType::Access, "bob", None, &serde_json::json!({}))
            .unwrap();
        assert_eq!(issued.to_string(), issued.token);
        assert_eq!(AsRef::<str>::as_ref(&issued), issued.token);
        assert!(
            !format!("{issued:?}").contains(&issued.token),
            "Debug redacts"
        );
        assert_eq!(String::from(issued.clone()), issued.token);
    }
}
