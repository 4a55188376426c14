//! The step after a token verified: does its key binding fit the request?
//! (RFC 9449 DPoP; see [`crate::dpop`].)

use std::sync::Arc;

use crate::dpop::{self, DpopConfig, DpopPolicy, LocalReplay, LocalUse, Nonces};
use crate::error::{AuthError, AuthErrorKind};
use crate::source::{Found, RequestHeaders};

use super::{Attempt, PendingVerification, Verified, Verifier};

/// A verifier's DPoP state, built once.
#[derive(Debug)]
pub(crate) struct DpopState {
    pub(crate) cfg: DpopConfig,
    /// The `algs` challenge parameter.
    pub(crate) algs: Arc<str>,
    pub(crate) nonces: Option<Nonces>,
    pub(crate) local: LocalReplay,
}

impl DpopState {
    pub(crate) fn new(cfg: DpopConfig) -> Self {
        let algs = cfg
            .algorithms
            .iter()
            .map(|a| crate::key::alg_name(*a))
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            algs: Arc::from(algs),
            nonces: cfg.nonces.then(|| Nonces::new(cfg.nonce_secret.as_ref())),
            local: LocalReplay::new(cfg.local_capacity, cfg.per_key_capacity),
            cfg,
        }
    }

    pub(crate) fn accepts_dpop_scheme(&self) -> bool {
        self.cfg.policy != DpopPolicy::BearerOnly
    }
}

/// What the binding check needs from a request presented with DPoP, owned
/// (it may outlive the headers while keys are refreshed).
#[derive(Debug, Clone)]
pub(crate) struct BindingRequest {
    method: String,
    htu: Result<String, &'static str>,
    proof: Result<String, &'static str>,
}

impl Verifier {
    /// Gather what a DPoP-presented request's binding check needs.
    pub(crate) fn binding_request<H: RequestHeaders + ?Sized>(
        &self,
        method: &str,
        target: Option<&str>,
        headers: &H,
    ) -> BindingRequest {
        let proof = {
            let mut values = headers.header_values("dpop");
            match (values.next(), values.next()) {
                (Some(v), None) => std::str::from_utf8(v)
                    .map(|s| s.trim().to_owned())
                    .map_err(|_| "DPoP header is not text"),
                (None, _) => Err("no DPoP proof header"),
                (Some(_), Some(_)) => Err("more than one DPoP header"),
            }
        };
        BindingRequest {
            method: method.to_owned(),
            htu: self.expected_htu(target, headers),
            proof,
        }
    }

    /// The request's URL as a proof's `htu` must name it: the origin from
    /// the operator's configuration ([`DpopConfig::public_origin`]), or
    /// else from a `Host` (or, when trusted, `X-Forwarded-Host`) that is a
    /// valid host[:port] authority, never joined as a string and parsed
    /// again; and the full request path the adapter passed (under
    /// axum's `nest` and actix-web's scopes, the path before any prefix was
    /// taken off).
    fn expected_htu<H: RequestHeaders + ?Sized>(
        &self,
        target: Option<&str>,
        headers: &H,
    ) -> Result<String, &'static str> {
        let Some(path) = target else {
            return Err("the adapter did not pass the request target");
        };
        // An origin-form request target (RFC 9112 §3.2.1) begins with `/`.
        if !path.starts_with('/') {
            return Err("the request target is not a path");
        }
        let path = path.split(['?', '#']).next().unwrap_or("/");
        let mut url = match self
            .0
            .dpop
            .as_ref()
            .and_then(|d| d.cfg.public_origin.as_deref())
        {
            Some(o) => o.to_owned(),
            None => {
                let single = |name: &str| {
                    let mut it = headers.header_values(name);
                    match (it.next(), it.next()) {
                        (Some(v), None) => std::str::from_utf8(v).ok(),
                        _ => None,
                    }
                };
                let csrf = &self.0.csrf;
                let mut scheme = if csrf.plain_http { "http" } else { "https" };
                let mut host = single("host");
                if csrf.trust_forwarded {
                    // A forwarded host that is there but unreadable (not
                    // text, or repeated) never falls back to `Host`.
                    let present = headers.header_values("x-forwarded-host").next().is_some();
                    if present && single("x-forwarded-host").is_none() {
                        return Err("the X-Forwarded-Host header is not one text value");
                    }
                    if let Some(h) = single("x-forwarded-host") {
                        host = Some(h);
                        match single("x-forwarded-proto") {
                            Some("http") => scheme = "http",
                            Some("https") => scheme = "https",
                            _ => {}
                        }
                    }
                }
                let host = host.ok_or("no Host header to build the request URL from")?;
                dpop::normalize_origin(scheme, host.trim_matches([' ', '\t']))
                    .ok_or("the Host header is not a host[:port] authority")?
            }
        };
        dpop::push_normalized_path(&mut url, path);
        Ok(url)
    }

    /// Apply the binding rules to a verified token.
    pub(crate) fn bind(
        &self,
        v: Verified,
        token: &str,
        request: Option<&BindingRequest>,
    ) -> Attempt {
        let state = self.0.dpop.as_deref();
        let policy = state.map_or(DpopPolicy::BearerOnly, |s| s.cfg.policy);
        let bound = v.confirmation_jkt().map(str::to_owned);
        let mismatch = |why: &'static str| {
            Attempt::Done(Err(
                self.err(AuthError::new(AuthErrorKind::BindingMismatch).with_detail(why))
            ))
        };
        match (v.found_in(), bound) {
            (Found::DpopHeader, None) => mismatch("a token without cnf.jkt presented with DPoP"),
            (Found::DpopHeader, Some(jkt)) => match (state, request) {
                (Some(state), Some(request)) => self.check_dpop(state, v, token, &jkt, request),
                _ => Attempt::Done(Err(self.err(
                    AuthError::new(AuthErrorKind::InvalidDpopProof)
                        .with_detail("the adapter did not pass the request target"),
                ))),
            },
            (_, Some(_)) => mismatch("a DPoP-bound token presented as a bearer token"),
            (_, None) if policy == DpopPolicy::Required => {
                mismatch("DPoP is required on this route")
            }
            (_, None) => Attempt::Done(Ok(v)),
        }
    }

    fn check_dpop(
        &self,
        state: &DpopState,
        v: Verified,
        token: &str,
        jkt: &str,
        request: &BindingRequest,
    ) -> Attempt {
        let fail = |e: AuthError| Attempt::Done(Err(self.err(e)));
        let invalid = |why: &'static str| {
            fail(AuthError::new(AuthErrorKind::InvalidDpopProof).with_detail(why))
        };
        let proof = match &request.proof {
            Ok(p) => p,
            Err(why) => return invalid(why),
        };
        let htu = match &request.htu {
            Ok(h) => h,
            Err(why) => return invalid(why),
        };
        let now = self.now();
        let (facts, nonce) =
            match dpop::check_proof(&state.cfg, proof, &request.method, htu, token, now) {
                Ok(f) => f,
                Err(e) => return fail(e),
            };
        // Compared as the thumbprints they are: neither is secret.
        if facts.jkt != jkt {
            return fail(
                AuthError::new(AuthErrorKind::BindingMismatch)
                    .with_detail("the proof's key is not the token's"),
            );
        }
        if let Some(nonces) = &state.nonces {
            if !nonce.is_some_and(|n| nonces.valid(&n, now)) {
                return fail(
                    AuthError::new(AuthErrorKind::UseDpopNonce)
                        .with_dpop_nonce(nonces.current(now)),
                );
            }
        }
        let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let until = facts
            .iat
            .saturating_add(secs(state.cfg.max_age))
            .saturating_add(secs(state.cfg.leeway));
        let key = dpop::replay_key(&facts);
        match state.local.first_use(&key, &facts.jkt, until, now) {
            Ok(LocalUse::First) => {}
            Ok(LocalUse::Replay) => return invalid("proof replayed"),
            Ok(LocalUse::KeyOverShare) => {
                return invalid("too many proofs from this key within the proof window")
            }
            Err(_) => {
                return fail(
                    AuthError::new(AuthErrorKind::StoreUnavailable)
                        .with_detail("the DPoP replay cache is full"),
                )
            }
        }
        match state.cfg.replay.clone() {
            None => Attempt::Done(Ok(v)),
            Some(store) => {
                let verifier = self.clone();
                let key = crate::b64::encode(&key);
                // Relative to the store's clock: the rest of the proof's
                // window as this node sees it, plus one whole window, so
                // that a node whose clock runs behind this one's (by less
                // than a window) never accepts the proof after the record
                // is gone.
                let window = secs(state.cfg.max_age).saturating_add(secs(state.cfg.leeway));
                let ttl = std::time::Duration::from_secs(
                    u64::try_from(until.saturating_sub(now).saturating_add(window))
                        .unwrap_or(0)
                        .max(1),
                );
                Attempt::Pending(PendingVerification::replay(Box::pin(async move {
                    match store.first_use(&key, ttl).await {
                        Ok(true) => Ok(v),
                        Ok(false) => Err(verifier.err(
                            AuthError::new(AuthErrorKind::InvalidDpopProof)
                                .with_detail("proof replayed (on another node)"),
                        )),
                        Err(e) => Err(verifier
                            .err(AuthError::new(AuthErrorKind::StoreUnavailable).with_source(e))),
                    }
                })))
            }
        }
    }
}
