//! The [`JwtAuthService`] that [`crate::JwtAuth`] produces.

use std::task::{Context, Poll};

use http::{Request, Response};
use keycard_core::adapter::{BodyHint, Target, WithAuthority};
use keycard_core::{Admission, Admitted, AuthMode, Verifier};
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::rejection::Rejection;

/// Authenticates each request, then calls the inner service or answers with
/// the rejection. Never returns an error of its own.
#[derive(Debug, Clone)]
pub struct JwtAuthService<S, R> {
    pub(crate) inner: S,
    pub(crate) verifier: Verifier,
    pub(crate) mode: AuthMode,
    pub(crate) rejection: R,
    pub(crate) prepare: Option<crate::layer::Prepare>,
}

/// The request's full path: under axum's `Router::nest` the URI this
/// layer sees has the prefix taken off, and axum keeps the original.
fn full_path<'r>(uri: &'r http::Uri, extensions: &'r http::Extensions) -> &'r str {
    #[cfg(feature = "axum")]
    if let Some(original) = extensions.get::<axum::extract::OriginalUri>() {
        return original.0.path();
    }
    let _ = extensions;
    uri.path()
}

/// Whether the body is known to be empty (its end-of-stream flag, or an
/// exact size of 0): the only way to tell over HTTP/2, where a body needs
/// no `Content-Length`.
fn body_hint<B: http_body::Body>(body: &B) -> BodyHint {
    if body.is_end_stream() || body.size_hint().exact() == Some(0) {
        BodyHint::Empty
    } else {
        BodyHint::MayHaveData
    }
}

impl<S, ReqB, ResB, R> Service<Request<ReqB>> for JwtAuthService<S, R>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    ReqB: http_body::Body,
    R: Rejection<ResB>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let admission = match self.prepare {
            None => self.verifier.admit_request(
                self.mode,
                req.method().as_str(),
                Target::path(full_path(req.uri(), req.extensions())).body(body_hint(req.body())),
                &WithAuthority::new(req.headers(), req.uri().authority().map(|a| a.as_str())),
            ),
            Some(prepare) => {
                let (mut parts, body) = req.into_parts();
                let path = full_path(&parts.uri, &parts.extensions).to_owned();
                let admission = prepare(
                    &self.verifier,
                    self.mode,
                    parts.method.as_str(),
                    Target::path(&path).body(body_hint(&body)),
                    &WithAuthority::new(&parts.headers, parts.uri.authority().map(|a| a.as_str())),
                    &mut parts.extensions,
                );
                req = Request::from_parts(parts, body);
                admission
            }
        };
        match admission {
            Admission::Done(Ok(admitted)) => {
                store(&mut req, admitted);
                ResponseFuture::inner(self.inner.call(req))
            }
            Admission::Done(Err(e)) => ResponseFuture::rejected(reject(&self.rejection, e)),
            Admission::Pending(pending) => {
                // The token names a key we do not know yet: wait for the key
                // provider, holding the readied service (clone-and-swap).
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::verifying(
                    Box::pin(pending.finish()),
                    req,
                    inner,
                    self.rejection.clone(),
                )
            }
        }
    }
}

/// The handler's claims type from a request's extensions, as keycard's
/// `Claims<T>` extractors read it: what a [`crate::JwtAuth::claims`] layer
/// already deserialized for this request's verification, or else the
/// payload of the [`keycard_core::Verified`] deserialized now. An
/// anonymous request is `Missing`; a request that passed no keycard layer
/// is `LayerMissing`.
pub fn take_claims<T>(extensions: &mut http::Extensions) -> Result<T, keycard_core::AuthError>
where
    T: serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let prepared = extensions.remove::<keycard_core::adapter::PreparedClaims<T>>();
    let verified = keycard_core::AuthState::new(extensions.get(), extensions.get()).required()?;
    match prepared.and_then(|p| p.take_for(verified)) {
        Some(claims) => Ok(claims),
        None => verified.claims(),
    }
}

/// Store what the core admitted in the request's extensions.
pub(crate) fn store<B>(req: &mut Request<B>, admitted: Admitted) {
    match admitted {
        Admitted::Verified(v) => {
            req.extensions_mut().insert(v);
        }
        Admitted::Anonymous(a) => {
            req.extensions_mut().insert(a);
        }
        // Future admission kinds carry nothing to store.
        #[allow(unreachable_patterns)]
        _ => {}
    }
}

/// The rejection response, with the [`keycard_core::AuthError`] in its
/// extensions, whatever rejection built it.
pub(crate) fn reject<R: Rejection<B>, B>(rejection: &R, e: keycard_core::AuthError) -> Response<B> {
    let mut res = rejection.reject(e.clone());
    res.extensions_mut().insert(e);
    res
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    use http::{Request, Response, StatusCode};
    use keycard_core::keys::{BoxFuture, KeyLookup, KeyProvider};
    use keycard_core::{AuthError, Key, SigningKey, TokenIssuer, TokenType, Verified, Verifier};
    use tower::{Layer, Service, ServiceExt};

    use crate::JwtAuth;

    const SECRET: &[u8] = b"tower-unit-test-secret-0123456789abcdef";

    fn token() -> String {
        TokenIssuer::builder(SigningKey::hs256(SECRET).unwrap().with_kid("k1"))
            .issuer("auth")
            .audience("api")
            .build()
            .unwrap()
            .issue(TokenType::Access, "alice", None, &serde_json::json!({}))
            .unwrap()
            .token
    }

    fn request(token: Option<&str>) -> Request<String> {
        let mut b = Request::get("/");
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(String::new()).unwrap()
    }

    /// An inner service that is ready only after `pending` polls, and
    /// answers with the verified subject; it counts its ready states.
    #[derive(Clone)]
    struct Inner {
        polls: Arc<AtomicUsize>,
        pending: usize,
        readied: bool,
    }

    impl Service<Request<String>> for Inner {
        type Response = Response<String>;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + Send>>;

        fn poll_ready(
            &mut self,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Infallible>> {
            if self.polls.fetch_add(1, Ordering::SeqCst) < self.pending {
                cx.waker().wake_by_ref();
                return std::task::Poll::Pending;
            }
            self.readied = true;
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: Request<String>) -> Self::Future {
            // tower's contract: call only a service that said it is ready.
            assert!(self.readied, "called a service that was never readied");
            self.readied = false;
            let sub = req
                .extensions()
                .get::<Verified>()
                .and_then(|v| v.subject().map(str::to_owned))
                .unwrap_or_else(|| "anonymous".into());
            Box::pin(async move { Ok(Response::new(sub)) })
        }
    }

    fn inner(pending: usize) -> Inner {
        Inner {
            polls: Arc::new(AtomicUsize::new(0)),
            pending,
            readied: false,
        }
    }

    fn verifier_with(provider: Arc<dyn KeyProvider>) -> Verifier {
        Verifier::builder()
            .key_provider(provider)
            .issuer("auth")
            .audience("api")
            .build()
            .unwrap()
    }

    fn verifier() -> Verifier {
        Verifier::builder()
            .key(Key::hs256(SECRET).unwrap().with_kid("k1"))
            .issuer("auth")
            .audience("api")
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn poll_ready_is_the_inner_services() {
        let inner = inner(3);
        let polls = inner.polls.clone();
        let mut svc = JwtAuth::new(verifier()).layer(inner);
        // `ready()` polls until the inner service is ready: 3 pending + 1.
        svc.ready().await.unwrap();
        assert_eq!(polls.load(Ordering::SeqCst), 4);
        let res = svc.call(request(Some(&token()))).await.unwrap();
        assert_eq!(res.into_body(), "alice");
    }

    /// A key provider that knows the key only after one refresh.
    #[derive(Debug)]
    struct LateKey {
        refreshed: AtomicBool,
        key: Arc<Key>,
    }

    impl KeyProvider for LateKey {
        fn lookup(&self, _: Option<&str>, kid: Option<&str>, _alg: &str) -> KeyLookup {
            match (self.refreshed.load(Ordering::SeqCst), kid) {
                (true, Some("k1")) => KeyLookup::One(self.key.clone()),
                (false, _) => KeyLookup::Refresh,
                _ => KeyLookup::NotFound,
            }
        }
        fn refresh<'a>(&'a self, _: Option<&'a str>, _: Option<&'a str>) -> BoxFuture<'a, ()> {
            self.refreshed.store(true, Ordering::SeqCst);
            Box::pin(async {})
        }
    }

    #[tokio::test]
    async fn a_pending_key_calls_the_service_that_was_readied() {
        let provider = Arc::new(LateKey {
            refreshed: AtomicBool::new(false),
            key: Arc::new(Key::hs256(SECRET).unwrap().with_kid("k1")),
        });
        let mut svc = JwtAuth::new(verifier_with(provider.clone())).layer(inner(0));
        // The readied inner service travels with the pending request (the
        // `Inner` asserts it is only called after being readied).
        svc.ready().await.unwrap();
        let res = svc.call(request(Some(&token()))).await.unwrap();
        assert_eq!(res.into_body(), "alice");
        assert!(provider.refreshed.load(Ordering::SeqCst));
        // The layer's own copy is ready to be readied again.
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(request(Some(&token())))
            .await
            .unwrap();
        assert_eq!(res.into_body(), "alice");
    }

    #[tokio::test]
    async fn every_rejection_carries_the_error_default_or_custom() {
        let default = JwtAuth::new(verifier()).layer(inner(0));
        let res = default.oneshot(request(None)).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer realm=\"keycard\""
        );
        assert_eq!(
            res.extensions().get::<AuthError>().map(AuthError::kind),
            Some(keycard_core::AuthErrorKind::Missing)
        );

        let custom = JwtAuth::new(verifier())
            .with_rejection(|e: AuthError| {
                Response::builder()
                    .status(e.status())
                    .body(format!("custom: {}", e.kind().name()))
                    .unwrap()
            })
            .layer(inner(0));
        let res = custom.oneshot(request(Some("a.b.c"))).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.extensions().get::<AuthError>().is_some());
        assert_eq!(res.into_body(), "custom: malformed_token");
    }

    #[tokio::test]
    async fn optional_mode_passes_anonymous_and_still_refuses_bad_tokens() {
        let svc = JwtAuth::new(verifier()).optional().layer(inner(0));
        let res = svc.clone().oneshot(request(None)).await.unwrap();
        assert_eq!(res.into_body(), "anonymous");
        let res = svc.oneshot(request(Some("a.b.c"))).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
}
