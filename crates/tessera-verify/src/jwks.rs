//! The JWKS client: fetches tessera's public keys, caches them, refreshes them, and
//! verifies tokens with them.
//!
//! Refresh rules:
//! * the first verification fetches the keys (or call [`Jwks::refresh`] at start-up);
//! * after `Cache-Control: max-age` (clamped to 10 s … 1 h; 5 min when absent) a
//!   verification schedules a refresh in the background and keeps using the cached keys;
//! * a well-formed EdDSA token naming an unknown `kid` triggers a refetch, at most once
//!   per [`JwksBuilder::min_refetch_interval`]; concurrent callers share one fetch;
//! * a failed fetch keeps the keys it had.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

// tokio's `Instant` (the system's monotonic clock, unless a test pauses tokio's time): the
// cache's schedule can then be tested by moving tokio's clock instead of sleeping.
use tokio::time::Instant;

use ring::signature::{UnparsedPublicKey, ED25519};
use serde::Deserialize;
use tessera_core::{b64, AccessClaims, Clock, SystemClock, TokenError, TokenParts, UnixTime};

use crate::Identity;

/// Where tessera publishes its keys, relative to its origin.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

const MIN_MAX_AGE: Duration = Duration::from_secs(10);
const MAX_MAX_AGE: Duration = Duration::from_secs(3600);
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
const DEFAULT_MIN_REFETCH: Duration = Duration::from_secs(30);
const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
const MAX_LEEWAY_SECS: u64 = 60;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// A JWKS document larger than this is refused (tessera's holds a handful of keys).
const MAX_JWKS_BYTES: usize = 64 * 1024;
const MAX_KEYS: usize = 64;

/// Why a token was not accepted.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The token itself is bad: shape, header, key, signature, claims or time.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// No key set could be fetched yet, so nothing can be verified (answer 503, not 401).
    #[error("no keys available from the JWKS endpoint")]
    KeysUnavailable,
}

/// Why fetching the JWKS failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Connection, TLS or timeout.
    #[error("JWKS request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The endpoint did not answer 200.
    #[error("JWKS endpoint answered {0}")]
    Status(u16),
    /// The document is larger than 64 KiB.
    #[error("JWKS document too large")]
    TooLarge,
    /// The document is not a JWK set.
    #[error("JWKS document is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Why a [`JwksBuilder`] could not build.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The tessera URL is not `https://…` (see [`JwksBuilder::insecure_allow_http`]).
    #[error("the tessera URL must start with https:// (got {0:?})")]
    NotHttps(String),
    /// The default HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// One published Ed25519 key, ready to verify.
struct VerifyingKey {
    kid: String,
    /// The exact header segment tessera puts on tokens signed by this key.
    header_b64: String,
    public: [u8; 32],
}

/// The keys of one fetch.
struct KeySet {
    keys: Vec<VerifyingKey>,
    /// When to refresh; `None` until a fetch has succeeded.
    refresh_at: Option<Instant>,
}

impl KeySet {
    fn by_header(&self, header: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|k| k.header_b64 == header)
    }
}

/// Why a refetch is being considered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    /// No keys yet.
    Initial,
    /// `max-age` has passed.
    Scheduled,
    /// A token named a `kid` we do not have.
    UnknownKid,
    /// [`Jwks::refresh`]: always fetch.
    Forced,
}

/// Tessera's public keys, fetched from its JWKS endpoint and cached, plus what a token
/// must say (`iss`, `aud`) to be accepted. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Jwks {
    inner: Arc<Inner>,
}

struct Inner {
    jwks_url: String,
    issuer: String,
    audience: String,
    leeway: u64,
    min_refetch: Duration,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    keys: RwLock<Arc<KeySet>>,
    /// Single flight: held during a fetch; holds when the last fetch started.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    fetches: AtomicU64,
    background: AtomicBool,
}

impl fmt::Debug for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwks")
            .field("jwks_url", &self.inner.jwks_url)
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field("leeway", &self.inner.leeway)
            .field("kids", &self.kids())
            .finish()
    }
}

/// Configures a [`Jwks`]. Every setting has a safe default.
pub struct JwksBuilder {
    tessera_url: String,
    issuer: String,
    audience: String,
    leeway: Duration,
    min_refetch: Duration,
    http: Option<reqwest::Client>,
    clock: Arc<dyn Clock>,
    allow_http: bool,
}

impl fmt::Debug for JwksBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksBuilder")
            .field("tessera_url", &self.tessera_url)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("min_refetch", &self.min_refetch)
            .finish_non_exhaustive()
    }
}

impl JwksBuilder {
    /// Clock-skew leeway for `exp`, `nbf` and `iat`. Default 30 s; capped at 60 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The shortest time between two fetches caused by unknown `kid`s (or by failures).
    /// Default 30 s. Lower it only if tessera rotates keys without pre-publishing them.
    pub fn min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch = interval;
        self
    }

    /// The HTTP client for the JWKS requests, e.g. one trusting tessera's self-signed
    /// certificate. Default: a client with rustls' ring provider and no root
    /// certificates, since this workspace builds reqwest without a root store: for
    /// `https://` you must pass a client with the roots you trust.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The clock for time checks. Default: the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Allows a plain `http://` tessera URL. **Warning:** whoever can change the JWKS
    /// response in transit can then mint tokens this service accepts. Default off.
    pub fn insecure_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Builds the client. Nothing is fetched yet.
    pub fn build(self) -> Result<Jwks, ConfigError> {
        install_crypto_provider();
        let base = self.tessera_url.trim_end_matches('/');
        let allowed =
            base.starts_with("https://") || (self.allow_http && base.starts_with("http://"));
        if !allowed {
            return Err(ConfigError::NotHttps(self.tessera_url));
        }
        let http = match self.http {
            Some(c) => c,
            None => reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
        };
        Ok(Jwks {
            inner: Arc::new(Inner {
                jwks_url: format!("{base}{JWKS_PATH}"),
                issuer: self.issuer,
                audience: self.audience,
                leeway: self.leeway.as_secs().min(MAX_LEEWAY_SECS),
                min_refetch: self.min_refetch,
                http,
                clock: self.clock,
                keys: RwLock::new(Arc::new(KeySet {
                    keys: Vec::new(),
                    refresh_at: None,
                })),
                last_fetch: tokio::sync::Mutex::new(None),
                fetches: AtomicU64::new(0),
                background: AtomicBool::new(false),
            }),
        })
    }
}

impl Jwks {
    /// A builder for the keys of the tessera at `tessera_url` (its origin, e.g.
    /// `https://auth.example.com`; the JWKS is read from [`JWKS_PATH`] under it),
    /// accepting tokens whose `iss` is `issuer` and `aud` is `audience` (both default to
    /// tessera's `public_origin` on the tessera side).
    pub fn builder(tessera_url: &str, issuer: &str, audience: &str) -> JwksBuilder {
        JwksBuilder {
            tessera_url: tessera_url.to_owned(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway: DEFAULT_LEEWAY,
            min_refetch: DEFAULT_MIN_REFETCH,
            http: None,
            clock: Arc::new(SystemClock),
            allow_http: false,
        }
    }

    /// [`Jwks::builder`] with every default.
    pub fn new(tessera_url: &str, issuer: &str, audience: &str) -> Result<Jwks, ConfigError> {
        Self::builder(tessera_url, issuer, audience).build()
    }

    /// The JWKS URL.
    pub fn url(&self) -> &str {
        &self.inner.jwks_url
    }

    /// The expected `iss`.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The expected `aud`.
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// How many JWKS fetches were started so far (successful or not).
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Acquire)
    }

    /// The key ids currently cached.
    pub fn kids(&self) -> Vec<String> {
        self.current().keys.iter().map(|k| k.kid.clone()).collect()
    }

    /// Fetches the keys now, whatever the cache says (e.g. at start-up, to fail early).
    /// Returns how many usable keys were published. On failure the old keys stay.
    pub async fn refresh(&self) -> Result<usize, FetchError> {
        match self.refetch(Trigger::Forced).await {
            Some(outcome) => outcome,
            None => Ok(self.current().keys.len()),
        }
    }

    /// Verifies a compact access token (`header.payload.signature`).
    pub async fn verify_token(&self, token: &str) -> Result<Identity, VerifyError> {
        let parts = TokenParts::from_compact(token)?;
        self.verify_parts(parts).await
    }

    /// Verifies an access token given as its three segments (e.g. from split cookies,
    /// see [`TokenParts::from_split`]).
    ///
    /// Order: the header must be byte-for-byte tessera's header for a published Ed25519
    /// key (so `alg` comes from the key, never the token), then the signature, then the
    /// claims are parsed strictly and `iss`, `aud`, `exp`, `nbf`, `iat` checked. Tokens
    /// bound to a DPoP key (`cnf`) are refused: proofs are not checked here.
    pub async fn verify_parts(&self, parts: TokenParts<'_>) -> Result<Identity, VerifyError> {
        let mut set = self.current();
        if set.refresh_at.is_none() {
            self.refetch(Trigger::Initial).await;
            set = self.current();
            if set.refresh_at.is_none() {
                return Err(VerifyError::KeysUnavailable);
            }
        } else {
            self.schedule_refresh_if_stale(&set);
        }
        if let Some(key) = set.by_header(parts.header) {
            return Ok(self.check(key, &parts)?);
        }
        // Only a header of exactly tessera's shape naming an unknown kid is worth a fetch.
        let kid = canonical_kid(parts.header)?;
        if set.keys.iter().any(|k| k.kid == kid) {
            return Err(TokenError::BadHeader.into());
        }
        self.refetch(Trigger::UnknownKid).await;
        let set = self.current();
        match set.by_header(parts.header) {
            Some(key) => Ok(self.check(key, &parts)?),
            None => Err(TokenError::UnknownKey.into()),
        }
    }

    fn current(&self) -> Arc<KeySet> {
        match self.inner.keys.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn store(&self, set: KeySet) {
        let set = Arc::new(set);
        match self.inner.keys.write() {
            Ok(mut g) => *g = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
    }

    fn check(&self, key: &VerifyingKey, parts: &TokenParts<'_>) -> Result<Identity, TokenError> {
        // Decoding first is the payload's alphabet check, before any cryptography.
        let json = b64::decode(parts.payload).ok_or(TokenError::Malformed)?;
        let sig = b64::decode_array::<64>(parts.signature).ok_or(TokenError::BadSignature)?;
        let mut msg = Vec::with_capacity(parts.header.len() + 1 + parts.payload.len());
        msg.extend_from_slice(parts.header.as_bytes());
        msg.push(b'.');
        msg.extend_from_slice(parts.payload.as_bytes());
        UnparsedPublicKey::new(&ED25519, &key.public)
            .verify(&msg, &sig)
            .map_err(|_| TokenError::BadSignature)?;
        let claims = AccessClaims::from_json(&json).ok_or(TokenError::BadClaims)?;
        self.check_claims(&claims, self.inner.clock.now())?;
        Identity::from_claims(claims).ok_or(TokenError::BadClaims)
    }

    fn check_claims(&self, claims: &AccessClaims, now: UnixTime) -> Result<(), TokenError> {
        let inner = &self.inner;
        if claims.iss != inner.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if claims.aud != inner.audience {
            return Err(TokenError::WrongAudience);
        }
        if now.0 >= claims.exp.saturating_add(inner.leeway) {
            return Err(TokenError::Expired);
        }
        let future = now.0.saturating_add(inner.leeway);
        if claims.nbf > future || claims.iat > future {
            return Err(TokenError::NotYetValid);
        }
        if claims.cnf.is_some() {
            return Err(TokenError::BindingMismatch);
        }
        Ok(())
    }

    fn schedule_refresh_if_stale(&self, set: &KeySet) {
        let stale = set.refresh_at.is_some_and(|t| Instant::now() >= t);
        if !stale || self.inner.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.inner.background.store(false, Ordering::Release);
            return;
        };
        let this = self.clone();
        handle.spawn(async move {
            this.refetch(Trigger::Scheduled).await;
            this.inner.background.store(false, Ordering::Release);
        });
    }

    /// Fetches unless the trigger says otherwise (then `None`); concurrent callers share
    /// one fetch.
    async fn refetch(&self, trigger: Trigger) -> Option<Result<usize, FetchError>> {
        let seen = self.fetch_count();
        let mut last = self.inner.last_fetch.lock().await;
        if trigger != Trigger::Forced {
            // Someone fetched while we waited for the lock: use their result.
            if self.fetch_count() != seen {
                return None;
            }
            if last.is_some_and(|t| t.elapsed() < self.inner.min_refetch) {
                return None;
            }
            let set = self.current();
            match trigger {
                Trigger::Initial if set.refresh_at.is_some() => return None,
                Trigger::Scheduled if set.refresh_at.is_some_and(|t| Instant::now() < t) => {
                    return None
                }
                _ => {}
            }
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok((set, ignored)) => {
                tracing::debug!(
                    url = %self.inner.jwks_url,
                    keys = set.keys.len(),
                    ignored,
                    ?trigger,
                    "JWKS fetched"
                );
                let n = set.keys.len();
                self.store(set);
                Some(Ok(n))
            }
            Err(e) => {
                tracing::warn!(url = %self.inner.jwks_url, error = %e, ?trigger, "JWKS fetch failed; keeping the cached keys");
                Some(Err(e))
            }
        }
    }

    /// One GET of the JWKS document; returns the usable keys and how many were skipped.
    async fn fetch(&self) -> Result<(KeySet, usize), FetchError> {
        self.inner.fetches.fetch_add(1, Ordering::AcqRel);
        let mut res = self
            .inner
            .http
            .get(&self.inner.jwks_url)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(FETCH_TIMEOUT)
            .send()
            .await?;
        if res.status() != reqwest::StatusCode::OK {
            return Err(FetchError::Status(res.status().as_u16()));
        }
        if res
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let max_age = res
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map_or(DEFAULT_MAX_AGE, max_age);
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let doc: JwkSet = serde_json::from_slice(&body)?;
        let total = doc.keys.len();
        let keys: Vec<VerifyingKey> = doc
            .keys
            .into_iter()
            .filter_map(JwkDoc::into_key)
            .take(MAX_KEYS)
            .collect();
        let ignored = total - keys.len();
        Ok((
            KeySet {
                keys,
                refresh_at: Some(Instant::now() + max_age),
            },
            ignored,
        ))
    }
}

/// Installs rustls' ring provider as the process default, once (reqwest is built without
/// one in this workspace). Harmless if another provider is already installed.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The `max-age` of a `Cache-Control` value, clamped; `no-store`/`no-cache` mean the
/// shortest allowed.
fn max_age(cache_control: &str) -> Duration {
    let mut age = None;
    for directive in cache_control.split(',') {
        let directive = directive.trim();
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        let name = name.trim().to_ascii_lowercase();
        match name.as_str() {
            "no-store" | "no-cache" => return MIN_MAX_AGE,
            "max-age" => age = value.trim().trim_matches('"').parse::<u64>().ok(),
            _ => {}
        }
    }
    age.map_or(DEFAULT_MAX_AGE, |s| {
        Duration::from_secs(s).clamp(MIN_MAX_AGE, MAX_MAX_AGE)
    })
}

/// The `kid` of a header that is exactly what tessera writes for an Ed25519 key;
/// anything else is refused without a fetch.
fn canonical_kid(header: &str) -> Result<String, TokenError> {
    let bytes = b64::decode(header).ok_or(TokenError::Malformed)?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| TokenError::BadHeader)?;
    if value.get("alg").and_then(|v| v.as_str()) != Some("EdDSA") {
        return Err(TokenError::AlgorithmMismatch);
    }
    let kid = value
        .get("kid")
        .and_then(|v| v.as_str())
        .filter(|k| valid_kid(k))
        .ok_or(TokenError::BadHeader)?;
    if expected_header(kid) != header {
        return Err(TokenError::BadHeader);
    }
    Ok(kid.to_owned())
}

fn valid_kid(kid: &str) -> bool {
    !kid.is_empty() && kid.len() <= 64 && b64::is_b64url(kid)
}

fn expected_header(kid: &str) -> String {
    b64::encode(format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}"}}"#))
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<JwkDoc>,
}

/// One JWK as published; lenient on purpose (other members are ignored), strict in
/// [`JwkDoc::into_key`] about what is used.
#[derive(Deserialize)]
struct JwkDoc {
    kty: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
}

impl JwkDoc {
    fn into_key(self) -> Option<VerifyingKey> {
        if self.kty.as_deref() != Some("OKP")
            || self.crv.as_deref() != Some("Ed25519")
            || self.alg.as_deref().is_some_and(|a| a != "EdDSA")
            || self.use_.as_deref().is_some_and(|u| u != "sig")
        {
            return None;
        }
        let kid = self.kid.filter(|k| valid_kid(k))?;
        let public = b64::decode_array::<32>(self.x.as_deref()?)?;
        Some(VerifyingKey {
            header_b64: expected_header(&kid),
            kid,
            public,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_is_clamped() {
        assert_eq!(
            max_age("public, max-age=300, stale-while-revalidate=60"),
            Duration::from_secs(300)
        );
        assert_eq!(max_age("max-age=1"), MIN_MAX_AGE);
        assert_eq!(max_age("max-age=86400"), MAX_MAX_AGE);
        assert_eq!(max_age("no-store"), MIN_MAX_AGE);
        assert_eq!(max_age("public"), DEFAULT_MAX_AGE);
        assert_eq!(max_age("max-age=abc"), DEFAULT_MAX_AGE);
    }

    #[test]
    fn only_tessera_headers_name_a_kid() {
        let h = expected_header("abc");
        assert_eq!(canonical_kid(&h).unwrap(), "abc");
        let hs = b64::encode(r#"{"alg":"HS256","typ":"at+jwt","kid":"abc"}"#);
        assert_eq!(canonical_kid(&hs), Err(TokenError::AlgorithmMismatch));
        let extra = b64::encode(r#"{"alg":"EdDSA","typ":"at+jwt","kid":"abc","jku":"x"}"#);
        assert_eq!(canonical_kid(&extra), Err(TokenError::BadHeader));
        let none = b64::encode(r#"{"alg":"none"}"#);
        assert_eq!(canonical_kid(&none), Err(TokenError::AlgorithmMismatch));
    }

    #[test]
    fn jwk_filtering() {
        let ok = JwkDoc {
            kty: Some("OKP".into()),
            crv: Some("Ed25519".into()),
            x: Some(b64::encode([7u8; 32])),
            kid: Some("k1".into()),
            alg: Some("EdDSA".into()),
            use_: Some("sig".into()),
        };
        assert!(ok.into_key().is_some());
        let short = JwkDoc {
            kty: Some("OKP".into()),
            crv: Some("Ed25519".into()),
            x: Some(b64::encode([7u8; 31])),
            kid: Some("k1".into()),
            alg: None,
            use_: None,
        };
        assert!(short.into_key().is_none());
        let rsa = JwkDoc {
            kty: Some("RSA".into()),
            crv: None,
            x: None,
            kid: Some("k1".into()),
            alg: Some("RS256".into()),
            use_: None,
        };
        assert!(rsa.into_key().is_none());
    }
}
