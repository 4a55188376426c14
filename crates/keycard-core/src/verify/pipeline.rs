//! The checks after parsing: key lookup, signature, type, lifetime,
//! issuer, audience, subject, revocation, and the verified-token cache.

use std::sync::Arc;

use serde_json::Value;

use crate::error::{AuthError, AuthErrorKind};
use crate::key::Key;
use crate::revocation::TokenFacts;
use crate::source::Found;

use super::*;

/// A token as [`Verifier::check_rules`] sees it.
pub(crate) struct Rules<'a> {
    pub(crate) facts: &'a crate::parse::Facts,
    pub(crate) payload: &'a [u8],
    /// `None` only for an introspection answer without `exp`.
    pub(crate) exp: Option<i64>,
    /// An introspection answer without `iss` is the endpoint's own word.
    pub(crate) iss_may_be_absent: bool,
}

impl Verifier {
    pub(crate) fn err(&self, e: AuthError) -> AuthError {
        let e = e
            .with_realm(self.0.realm.clone())
            .with_resource_metadata(self.0.metadata_url.clone());
        match self.0.dpop.as_deref() {
            Some(d) if d.accepts_dpop_scheme() => e.with_dpop_challenge(
                d.algs.clone(),
                d.cfg.policy == crate::dpop::DpopPolicy::Required,
            ),
            _ => e,
        }
    }

    pub(crate) fn verify_parsed(
        &self,
        token: &str,
        p: Parsed,
        found: Found,
        may_refresh: bool,
    ) -> Step {
        let s = &*self.0;
        let keys = match s.keys.lookup(p.iss(), p.kid.as_deref(), p.alg) {
            l @ (KeyLookup::One(_) | KeyLookup::Found(_)) => l,
            KeyLookup::Refresh if may_refresh => return Step::NeedsKeys,
            KeyLookup::Refresh | KeyLookup::NotFound => {
                return Step::Done(Err(self.err(AuthErrorKind::UnknownKey.into())))
            }
            KeyLookup::Unavailable => {
                return Step::Done(Err(self.err(AuthErrorKind::KeysUnavailable.into())))
            }
            KeyLookup::AlgorithmNotAllowed => {
                return Step::Done(Err(self.err(AuthErrorKind::AlgorithmNotAllowed.into())))
            }
        };
        let Some(key) = self.signed_by(keys.keys(), token, p.signing_input_len) else {
            return Step::Done(Err(self.err(AuthErrorKind::BadSignature.into())));
        };
        Step::Done(self.accept(token, key, p, found))
    }

    /// The key among `keys` whose signature `token` carries.
    fn signed_by<'k>(
        &self,
        keys: &'k [Arc<Key>],
        token: &str,
        signing_input_len: usize,
    ) -> Option<&'k Arc<Key>> {
        let signing_input = &token.as_bytes()[..signing_input_len];
        let signature = &token[signing_input_len + 1..];
        keys.iter().find(|k| {
            if self.0.reference_signatures {
                k.verify_signature_reference(signing_input, signature)
            } else {
                k.verify_signature(signing_input, signature)
            }
        })
    }

    /// The claim checks of a token whose signature `key` checked, and the
    /// cache entry when it passes.
    fn accept(
        &self,
        token: &str,
        key: &Arc<Key>,
        p: Parsed,
        found: Found,
    ) -> Result<Verified, AuthError> {
        let result = self.check_claims(key, p, found).map_err(|e| self.err(e));
        if let (Some(cache), Ok(v)) = (&self.0.cache, &result) {
            cache.insert(token, v.clone(), key.clone(), v.inner.exp, self.now());
        }
        result
    }

    /// Signature first, then the payload walk (`walk`, which runs the
    /// caller's code): `None` when that order cannot decide on its own
    /// (the key depends on `iss`, is not at hand, or the signature fails),
    /// and the untyped path must.
    pub(crate) fn verify_signed_first(
        &self,
        token: &str,
        found: Found,
        walk: &mut dyn PayloadWalk,
    ) -> Option<Attempt> {
        let s = &*self.0;
        if s.keys.needs_issuer() {
            return None;
        }
        let u = unwalked(token, s).ok()?;
        let keys = match s.keys.lookup(None, u.kid.as_deref(), u.alg) {
            l @ (KeyLookup::One(_) | KeyLookup::Found(_)) => l,
            _ => return None,
        };
        let Some(key) = self.signed_by(keys.keys(), token, u.signing_input_len) else {
            // The untyped path would refuse it too: with the payload's
            // own error when it has one (checked first there), else the
            // signature's. Without checking the signature a second time.
            return Some(Attempt::Done(Err(self.err(
                match walked(u, &mut Untyped) {
                    Err(e) => e,
                    Ok(_) => AuthErrorKind::BadSignature.into(),
                },
            ))));
        };
        let p = match walked(u, walk) {
            Ok(p) => p,
            Err(e) => return Some(Attempt::Done(Err(self.err(e)))),
        };
        // The key was found without `iss` (the provider says lookups do
        // not depend on it); a provider that says so wrongly must still
        // decide as the untyped path does, which looks up with `iss`.
        let same = s.keys.lookup(p.iss(), p.kid.as_deref(), p.alg);
        if !same.keys().iter().any(|k| Arc::ptr_eq(k, key)) {
            return None;
        }
        Some(Attempt::Done(self.accept(token, key, p, found)))
    }

    /// Re-check a cached token: `Some(Ok)` still valid, `Some(Err)` no longer
    /// valid (expired, revoked, store down), `None` its key is gone.
    pub(crate) fn check_cached(
        &self,
        entry: &crate::cache::Entry,
    ) -> Option<Result<(), AuthError>> {
        let s = &*self.0;
        let v = &entry.verified;
        let still_there = match s.keys.lookup(
            v.issuer(),
            entry.verified.kid(),
            crate::key::alg_name(entry.key.alg),
        ) {
            l @ (KeyLookup::One(_) | KeyLookup::Found(_)) => {
                l.keys().iter().any(|k| Arc::ptr_eq(k, &entry.key))
            }
            _ => false,
        };
        if !still_there {
            return None;
        }
        // The rules that change with time; the others held when the entry
        // was made and cannot change for the same token.
        if let Err(e) = self.check_time(Some(v.inner.exp), &v.inner.facts) {
            return Some(Err(e));
        }
        Some(self.check_revocation(&v.inner.facts, v.inner.exp, &v.inner.payload))
    }

    pub(crate) fn check_revocation(
        &self,
        f: &crate::parse::Facts,
        exp: i64,
        payload: &[u8],
    ) -> Result<(), AuthError> {
        let s = &*self.0;
        let Some(store) = &s.revocation else {
            return Ok(());
        };
        fn text<'a>(t: &'a Option<crate::parse::Text>, payload: &'a [u8]) -> Option<&'a str> {
            t.as_ref().map(|t| t.as_str(payload))
        }
        let facts = TokenFacts {
            jti: text(&f.jti, payload),
            sub: text(&f.sub, payload),
            sid: text(&f.sid, payload),
            iat: f.iat,
            exp,
        };
        match store.is_revoked(&facts) {
            Ok(false) => Ok(()),
            Ok(true) => Err(AuthErrorKind::Revoked.into()),
            Err(e) if s.fail_open => {
                tracing::warn!(error = %e, "revocation store unavailable; failing open as configured");
                Ok(())
            }
            Err(e) => Err(AuthError::new(AuthErrorKind::StoreUnavailable).with_source(e)),
        }
    }

    pub(crate) fn check_claims(
        &self,
        key: &Key,
        p: Parsed,
        found: Found,
    ) -> Result<Verified, AuthError> {
        let s = &*self.0;
        let mut claims_map = None;
        if let Some(want) = s.token_type {
            if !want.matches(p.typ.as_deref()) {
                // A provider that types access tokens `JWT` (or not at
                // all): accepted only with its access-token mark.
                let untyped = p
                    .typ
                    .as_deref()
                    .is_none_or(|t| t.eq_ignore_ascii_case("jwt"));
                let marked = want == TokenType::Access
                    && untyped
                    && s.typ_marker.as_ref().is_some_and(|m| {
                        let claims = crate::parse::claims_object(&p.payload);
                        let ok = m.holds(&claims);
                        claims_map = Some(claims);
                        ok
                    });
                if !marked {
                    return Err(AuthErrorKind::WrongTokenType.into());
                }
            }
        }
        if let Some(until) = key.signed_until {
            // A retired key verifies only what it signed before retiring.
            if p.facts
                .iat
                .is_none_or(|iat| iat > until.saturating_add(s.leeway))
            {
                return Err(AuthError::new(AuthErrorKind::UnknownKey)
                    .with_detail("issued after its signing key was retired"));
            }
        }
        let exp = p.exp;
        self.check_rules(
            &Rules {
                facts: &p.facts,
                payload: &p.payload,
                exp: Some(exp),
                iss_may_be_absent: false,
            },
            &mut claims_map,
        )?;
        Ok(self.verified(
            (Some(key.alg), p.kid, p.typ),
            p.facts,
            exp,
            p.payload,
            claims_map,
            found,
        ))
    }

    /// A [`Verified`] of what passed the rules: the header's `alg`, `kid`
    /// and `typ` (none for an introspection answer), the facts, `exp`, the
    /// payload, and the claims object if a rule already parsed it.
    fn verified(
        &self,
        (alg, kid, typ): (Option<Algorithm>, Option<HeaderText>, Option<HeaderText>),
        facts: crate::parse::Facts,
        exp: i64,
        payload: Vec<u8>,
        claims_map: Option<serde_json::Map<String, Value>>,
        found: Found,
    ) -> Verified {
        Verified {
            inner: Arc::new(VerifiedInner {
                alg,
                kid,
                typ,
                facts,
                exp,
                payload,
                registered: std::sync::OnceLock::new(),
                claims_json: claims_map.map_or_else(std::sync::OnceLock::new, |c| {
                    let cell = std::sync::OnceLock::new();
                    let _ = cell.set(c);
                    cell
                }),
                roles: std::sync::OnceLock::new(),
                scopes: std::sync::OnceLock::new(),
                claims_config: self.0.claims_config.clone(),
            }),
            found,
            cached: false,
        }
    }

    /// Whether `exp` (when there is one), `nbf` and `iat` hold now, with
    /// the leeway.
    pub(crate) fn check_time(
        &self,
        exp: Option<i64>,
        f: &crate::parse::Facts,
    ) -> Result<(), AuthError> {
        let s = &*self.0;
        let now = self.now();
        if exp.is_some_and(|exp| now > exp.saturating_add(s.leeway)) {
            return Err(AuthErrorKind::Expired.into());
        }
        if f.nbf.is_some_and(|nbf| nbf > now.saturating_add(s.leeway)) {
            return Err(AuthErrorKind::NotYetValid.into());
        }
        if f.iat.is_some_and(|iat| iat > now.saturating_add(s.leeway)) {
            return Err(
                AuthError::new(AuthErrorKind::InvalidLifetime).with_detail("iat is in the future")
            );
        }
        Ok(())
    }

    /// The one rule set every token passes before it is [`Verified`],
    /// whichever way it came (a local JWT, or an introspection answer; a
    /// cached token passed it when cached, and is checked again for what
    /// time changes): the client, time, lifetime, issuer, audience, subject
    /// and revocation. The token type, which each form says in its own way,
    /// is checked by the caller.
    pub(crate) fn check_rules(
        &self,
        t: &Rules<'_>,
        claims: &mut Option<serde_json::Map<String, Value>>,
    ) -> Result<(), AuthError> {
        let s = &*self.0;
        let (f, payload) = (t.facts, t.payload);
        if !s.client_ids.is_empty() {
            let claims = match claims {
                Some(c) => &*c,
                None => claims.insert(crate::parse::claims_object(payload)),
            };
            let ok = s
                .client_id_claim
                .lookup(claims)
                .and_then(Value::as_str)
                .is_some_and(|c| s.client_ids.iter().any(|want| want == c));
            if !ok {
                return Err(AuthError::new(AuthErrorKind::WrongAudience)
                    .with_detail("issued to another client"));
            }
        }
        self.check_time(t.exp, f)?;
        if let (Some(max), Some(exp)) = (s.max_lifetime, t.exp) {
            let start = f.iat.unwrap_or_else(|| self.now());
            if exp.saturating_sub(start) > max.saturating_add(s.leeway) {
                return Err(AuthError::new(AuthErrorKind::InvalidLifetime)
                    .with_detail("token lifetime exceeds the maximum"));
            }
        }
        // Equality on bytes: no UTF-8 check needed to compare.
        if !s.issuers.is_empty() {
            match f.iss.as_ref().map(|t| t.as_bytes(payload)) {
                None if t.iss_may_be_absent => {}
                None => return Err(AuthError::new(AuthErrorKind::MissingClaim).with_detail("iss")),
                Some(iss) if !s.issuers.iter().any(|i| i.as_bytes() == iss) => {
                    return Err(AuthErrorKind::WrongIssuer.into())
                }
                Some(_) => {}
            }
        }
        let audiences = if s.issuer_audiences.is_empty() {
            &s.audiences[..]
        } else {
            if f.iss.is_none() && s.audiences.is_empty() {
                // Audiences are set per issuer, and the answer names none:
                // no list applies, and none may be skipped.
                return Err(AuthError::new(AuthErrorKind::MissingClaim)
                    .with_detail("iss (audiences are configured per issuer)"));
            }
            s.audiences_for(f.iss.as_ref().map(|t| t.as_str(payload)))
        };
        if !audiences.is_empty() {
            if f.aud.is_empty() {
                return Err(AuthError::new(AuthErrorKind::MissingClaim).with_detail("aud"));
            }
            if !f
                .aud
                .iter_bytes(payload)
                .any(|a| audiences.iter().any(|want| want.as_bytes() == a))
            {
                return Err(AuthErrorKind::WrongAudience.into());
            }
        } else if !f.aud.is_empty() && !s.ignore_audience {
            // RFC 7519 §4.1.3: a recipient that does not identify itself with
            // a value in `aud` must reject the token.
            return Err(
                AuthError::new(AuthErrorKind::WrongAudience).with_public_detail(
                    "the token names an audience and this service has none configured to check it \
                 against (RFC 7519 4.1.3): configure the service's audience \
                 (VerifierBuilder::audience, or KEYCARD_AUDIENCE)",
                ),
            );
        }
        if s.require_sub && f.sub.is_none() {
            return Err(AuthError::new(AuthErrorKind::MissingClaim).with_detail("sub"));
        }
        let exp = t.exp.unwrap_or_else(|| self.now());
        self.check_revocation(f, exp, payload)
    }

    /// A [`Verified`] from an active introspection answer (RFC 7662 §2.2):
    /// its members are the claims, with the same strict types, and the
    /// same time, issuer, audience, subject and revocation checks as a JWT's
    /// (an answer without `iss` is the endpoint's own word; one without
    /// `aud` is refused by a verifier that has audiences).
    #[cfg(feature = "introspection")]
    pub(crate) fn verified_from_introspection(
        &self,
        payload: Vec<u8>,
        found: Found,
    ) -> Result<Verified, AuthError> {
        let s = &*self.0;
        let pass = crate::parse::payload_pass(&payload).map_err(|e| {
            self.err(
                AuthError::new(AuthErrorKind::InvalidClaimType).with_detail(format!(
                    "introspection answer: {}",
                    crate::parse::json_error_detail(&e)
                )),
            )
        })?;
        let now = self.now();
        let exp = pass.exp.as_ref().map(|n| n.0);
        let mut claims_map = None;
        let facts = crate::parse::Facts::of(pass, &payload);
        // RFC 7662 §2.2 `token_type`: an answer about a refresh token (or
        // an ID token) is not an access token, whatever else it says.
        if s.token_type == Some(TokenType::Access) {
            let claims = claims_map.insert(crate::parse::claims_object(&payload));
            if let Some(t) = claims.get("token_type") {
                let t = t.as_str().unwrap_or("");
                let t = t
                    .strip_prefix("urn:ietf:params:oauth:token-type:")
                    .unwrap_or(t);
                if ["refresh_token", "id_token", "refresh", "id"]
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(t))
                    || t.is_empty()
                {
                    return Err(self
                        .err(AuthError::new(AuthErrorKind::WrongTokenType).with_detail(
                            "the introspection answer is not about an access token",
                        )));
                }
            }
        }
        self.check_rules(
            &Rules {
                facts: &facts,
                payload: &payload,
                exp,
                iss_may_be_absent: true,
            },
            &mut claims_map,
        )
        .map_err(|e| self.err(e))?;
        let exp = exp.unwrap_or(now);
        Ok(self.verified((None, None, None), facts, exp, payload, claims_map, found))
    }
}
