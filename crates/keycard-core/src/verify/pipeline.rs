//! The checks after parsing: key lookup, signature, type, lifetime,
//! issuer, audience, subject, revocation, and the verified-token cache.

use std::sync::Arc;

use serde_json::Value;

use crate::error::{AuthError, AuthErrorKind};
use crate::key::Key;
use crate::revocation::TokenFacts;
use crate::source::Found;

use super::*;

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
        let signing_input = &token.as_bytes()[..p.signing_input_len];
        let signature = &token[p.signing_input_len + 1..];
        let Some(key) = keys.keys().iter().find(|k| {
            if s.reference_signatures {
                k.verify_signature_reference(signing_input, signature)
            } else {
                k.verify_signature(signing_input, signature)
            }
        }) else {
            return Step::Done(Err(self.err(AuthErrorKind::BadSignature.into())));
        };
        let result = self.check_claims(key, p, found).map_err(|e| self.err(e));
        if let (Some(cache), Ok(v)) = (&s.cache, &result) {
            cache.insert(token, v.clone(), key.clone(), v.inner.exp, self.now());
        }
        Step::Done(result)
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
        let now = self.now();
        if now > v.inner.exp.saturating_add(s.leeway) {
            return Some(Err(AuthErrorKind::Expired.into()));
        }
        if v.inner
            .facts
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(s.leeway))
        {
            return Some(Err(AuthErrorKind::NotYetValid.into()));
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
        if !s.client_ids.is_empty() {
            let claims = match &claims_map {
                Some(c) => c,
                None => claims_map.insert(crate::parse::claims_object(&p.payload)),
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
        let f = &p.facts;
        let exp = p.exp;
        let payload = &p.payload[..];
        let now = self.now();
        if now > exp.saturating_add(s.leeway) {
            return Err(AuthErrorKind::Expired.into());
        }
        if let Some(nbf) = f.nbf {
            if nbf > now.saturating_add(s.leeway) {
                return Err(AuthErrorKind::NotYetValid.into());
            }
        }
        if let Some(until) = key.signed_until {
            // A retired key verifies only what it signed before retiring.
            if f.iat.is_none_or(|iat| iat > until.saturating_add(s.leeway)) {
                return Err(AuthError::new(AuthErrorKind::UnknownKey)
                    .with_detail("issued after its signing key was retired"));
            }
        }
        if let Some(iat) = f.iat {
            if iat > now.saturating_add(s.leeway) {
                return Err(AuthError::new(AuthErrorKind::InvalidLifetime)
                    .with_detail("iat is in the future"));
            }
        }
        if let Some(max) = s.max_lifetime {
            let start = f.iat.unwrap_or(now);
            if exp.saturating_sub(start) > max.saturating_add(s.leeway) {
                return Err(AuthError::new(AuthErrorKind::InvalidLifetime)
                    .with_detail("token lifetime exceeds the maximum"));
            }
        }
        // Equality on bytes: no UTF-8 check needed to compare.
        if !s.issuers.is_empty() {
            match f.iss.as_ref().map(|t| t.as_bytes(payload)) {
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
            return Err(AuthError::new(AuthErrorKind::WrongAudience)
                .with_detail("token has an audience but the verifier has none configured"));
        }
        if s.require_sub && f.sub.is_none() {
            return Err(AuthError::new(AuthErrorKind::MissingClaim).with_detail("sub"));
        }
        self.check_revocation(f, exp, payload)?;
        Ok(Verified {
            inner: Arc::new(VerifiedInner {
                alg: Some(key.alg),
                kid: p.kid,
                typ: p.typ,
                facts: p.facts,
                exp,
                payload: p.payload,
                registered: std::sync::OnceLock::new(),
                claims_json: claims_map.map_or_else(std::sync::OnceLock::new, |c| {
                    let cell = std::sync::OnceLock::new();
                    let _ = cell.set(c);
                    cell
                }),
                roles: std::sync::OnceLock::new(),
                scopes: std::sync::OnceLock::new(),
                claims_config: s.claims_config.clone(),
            }),
            found,
            cached: false,
        })
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
        if exp.is_some_and(|exp| exp.saturating_add(s.leeway) < now) {
            return Err(self.err(AuthErrorKind::Expired.into()));
        }
        if pass
            .nbf
            .as_ref()
            .is_some_and(|nbf| nbf.0 > now.saturating_add(s.leeway))
        {
            return Err(self.err(AuthErrorKind::NotYetValid.into()));
        }
        let facts = crate::parse::Facts::of(pass, &payload);
        if let Some(iss) = facts.iss.as_ref().map(|t| t.as_str(&payload)) {
            if !s.issuers.is_empty() && !s.issuers.iter().any(|i| i == iss) {
                return Err(self.err(AuthErrorKind::WrongIssuer.into()));
            }
        }
        let audiences = s.audiences_for(facts.iss.as_ref().map(|t| t.as_str(&payload)));
        if !audiences.is_empty() {
            if facts.aud.is_empty() {
                return Err(
                    self.err(AuthError::new(AuthErrorKind::MissingClaim).with_detail("aud"))
                );
            }
            if !facts
                .aud
                .iter(&payload)
                .any(|a| audiences.iter().any(|w| w == a))
            {
                return Err(self.err(AuthErrorKind::WrongAudience.into()));
            }
        }
        if s.require_sub && facts.sub.is_none() {
            return Err(self.err(AuthError::new(AuthErrorKind::MissingClaim).with_detail("sub")));
        }
        let exp = exp.unwrap_or(now);
        self.check_revocation(&facts, exp, &payload)
            .map_err(|e| self.err(e))?;
        Ok(Verified {
            inner: Arc::new(VerifiedInner {
                alg: None,
                kid: None,
                typ: None,
                facts,
                exp,
                payload,
                registered: std::sync::OnceLock::new(),
                claims_json: std::sync::OnceLock::new(),
                roles: std::sync::OnceLock::new(),
                scopes: std::sync::OnceLock::new(),
                claims_config: s.claims_config.clone(),
            }),
            found,
            cached: false,
        })
    }
}
