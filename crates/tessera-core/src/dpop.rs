//! DPoP proof verification (RFC 9449 §4.3), key thumbprints (RFC 7638) and `ath`.
//!
//! Purpose: decide whether one `DPoP` header value is a fresh proof of possession for one
//! request. Pure: the request's method and URL and the time are parameters.
//!
//! What [`verify_proof`] checks, in order (RFC 9449 §4.3, §6.1, §7):
//! 1. the proof is at most [`MAX_PROOF_LEN`] bytes, before anything else;
//! 2. it is one compact JWS: exactly three non-empty strict-base64url segments;
//! 3. the header is a JSON object with exactly `typ`, `alg` and `jwk` (no `kid`, `jku`,
//!    `x5u`, `x5c`, `crit` or anything else; duplicate names refused); `typ` is exactly
//!    `dpop+jwt`; `alg` is `ES256` or `EdDSA`;
//! 4. `jwk` is a public key and nothing more: `{"kty":"EC","crv":"P-256","x","y"}` or
//!    `{"kty":"OKP","crv":"Ed25519","x"}` with full-length coordinates (optional `alg`,
//!    `use`, `kid`, `key_ops`, `ext` members are tolerated, as WebCrypto exports them,
//!    with `alg` equal to the header's and `use` equal to `sig`); any private-key member
//!    (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `r`, `t`, `k`) is refused; the key type
//!    must be the one `alg` names;
//! 5. the signature verifies with that key;
//! 6. only then the claims: `jti` (1–128 characters), `htm` equal to the request method
//!    (case-sensitive), `htu` equal to the request URL after [`normalize_htu`] on both
//!    sides, `iat` an integer with `now - max_age <= iat <= now + max_skew`, `ath` present
//!    and equal to [`ath`]`(access_token)` when an access token is presented, `nonce`
//!    present and equal when the server requires one. Other claims are ignored, but the
//!    known ones must have the right JSON types and appear once.
//!
//! What the caller still does:
//! - **Replay (`jti`)**: insert [`DpopProof::replay_key`] into a
//!   [`crate::replay::ReplayCache`] with expiry [`DpopProof::replay_expires`]; refuse the
//!   request on any error. A `jti` is scoped to its key (`jkt`), so the key is `jkt + jti`.
//!   [`verify_proof_once`] does exactly this after [`verify_proof`].
//! - **Binding**: when an access token is presented, check its `cnf.jkt` equals
//!   [`DpopProof::jkt`] (and refuse a DPoP-bound token presented as `Bearer`).
//! - **One header**: refuse requests with more than one `DPoP` header.
//!
//! ```
//! use tessera_core::dpop::{self, DpopAlg, DpopCheck, DpopKey};
//! use tessera_core::UnixTime;
//!
//! let key = DpopKey::generate(DpopAlg::ES256).unwrap();
//! let now = UnixTime(1_700_000_000);
//! let proof = key.proof("POST", "https://auth.example/auth/token", now.0, "j1", None, None).unwrap();
//! let htu = dpop::normalize_htu("https://AUTH.example:443/auth/token?x=1").unwrap();
//! let check = DpopCheck { method: "POST", htu: &htu, access_token: None, now, max_age: 60, max_skew: 5, nonce: None };
//! let verified = dpop::verify_proof(&proof, &check).unwrap();
//! assert_eq!(verified.jkt, key.thumbprint());
//! ```

use std::fmt;
use std::marker::PhantomData;

use ring::digest;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::replay::{ReplayCache, ReplayError};
use crate::{b64, UnixTime};

/// The longest `DPoP` header value accepted, in bytes, checked before anything is parsed.
pub const MAX_PROOF_LEN: usize = 4096;
/// The longest `jti` accepted, in characters.
pub const MAX_JTI_LEN: usize = 128;
/// The longest URL [`normalize_htu`] accepts, in bytes.
pub const MAX_HTU_LEN: usize = 2048;

/// Why a DPoP proof was refused. Shown to operators in logs; clients get
/// `invalid_dpop_proof` (or `use_dpop_nonce` for the two nonce variants).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    /// Longer than [`MAX_PROOF_LEN`].
    #[error("DPoP proof too large")]
    TooLarge,
    /// Not one compact JWS of three non-empty base64url segments, or a segment does not
    /// decode, or the payload is not a JSON object.
    #[error("DPoP proof is not a compact JWS")]
    Malformed,
    /// The header is not a JSON object of exactly `typ`, `alg` and `jwk` with string
    /// `typ`/`alg` (unknown or forbidden members such as `kid`, `jku`, `x5u`, `x5c`,
    /// `crit`, or duplicates).
    #[error("unsupported DPoP proof header")]
    BadHeader,
    /// `typ` is not `dpop+jwt`.
    #[error("DPoP proof typ is not dpop+jwt")]
    BadType,
    /// `alg` is not `ES256` or `EdDSA` (`none`, `HS256`, `RS256`, … are refused).
    #[error("DPoP proof algorithm not allowed")]
    UnsupportedAlgorithm,
    /// The `jwk` carries private-key material.
    #[error("private key material in DPoP proof header")]
    PrivateKeyInHeader,
    /// The `jwk` is missing, or is not a well-formed P-256 or Ed25519 public key.
    #[error("bad DPoP proof key")]
    BadKey,
    /// The `jwk`'s key type is not the one `alg` names (or its own `alg`/`use` disagree).
    #[error("DPoP proof algorithm does not match its key")]
    AlgorithmKeyMismatch,
    /// The signature does not verify with the `jwk`.
    #[error("bad DPoP proof signature")]
    BadSignature,
    /// A required claim is missing, mistyped, duplicated, or `jti` is empty or too long.
    #[error("malformed DPoP proof claims")]
    BadClaims,
    /// `htm` is not the request method.
    #[error("DPoP htm does not match the request method")]
    MethodMismatch,
    /// `htu` is not the request URL (after normalisation), or is not a valid URL.
    #[error("DPoP htu does not match the request URL")]
    UrlMismatch,
    /// `iat` is more than `max_age` seconds in the past.
    #[error("DPoP proof too old")]
    Stale,
    /// `iat` is more than `max_skew` seconds in the future.
    #[error("DPoP proof issued in the future")]
    FromFuture,
    /// An access token is presented but the proof has no `ath`.
    #[error("DPoP proof lacks ath")]
    AthMissing,
    /// `ath` is not the hash of the presented access token.
    #[error("DPoP ath does not match the access token")]
    AthMismatch,
    /// The server requires a nonce and the proof has none.
    #[error("DPoP nonce required")]
    NonceRequired,
    /// The proof's nonce is not the one the server requires.
    #[error("DPoP nonce mismatch")]
    NonceMismatch,
    /// The proof's (`jkt`, `jti`) was seen before within its window
    /// ([`verify_proof_once`] only).
    #[error("DPoP proof replayed")]
    Replayed,
    /// The replay cache is full; the proof is refused (fail closed)
    /// ([`verify_proof_once`] only).
    #[error("DPoP replay cache full")]
    ReplayCacheFull,
}

/// What a proof must match: the request it came with, the time and the policy.
#[derive(Clone, Copy)]
pub struct DpopCheck<'a> {
    /// The request method, exactly as received (e.g. `POST`).
    pub method: &'a str,
    /// The URL the request was addressed to, as returned by [`normalize_htu`] (built from
    /// tessera's configured public origin and the request path, never from
    /// client-controlled `Host`/`X-Forwarded-*` headers unless they are trusted).
    pub htu: &'a str,
    /// The access token presented with the request (`Authorization: DPoP <token>`), if
    /// any; when present the proof's `ath` must be its hash.
    pub access_token: Option<&'a str>,
    /// The current time.
    pub now: UnixTime,
    /// How old `iat` may be, in seconds (e.g. 60).
    pub max_age: u64,
    /// How far in the future `iat` may be, in seconds (clock skew, e.g. 5).
    pub max_skew: u64,
    /// The server-issued nonce the proof must carry, if the server requires one.
    pub nonce: Option<&'a str>,
}

impl fmt::Debug for DpopCheck<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The access token is a credential: never in logs (RFC 6750 §5.3).
        f.debug_struct("DpopCheck")
            .field("method", &self.method)
            .field("htu", &self.htu)
            .field("access_token", &self.access_token.map(|_| "[redacted]"))
            .field("now", &self.now)
            .field("max_age", &self.max_age)
            .field("max_skew", &self.max_skew)
            .field("nonce", &self.nonce)
            .finish()
    }
}

/// A verified proof: who (the key thumbprint) and which proof (`jti`, `iat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopProof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key, base64url (43 characters):
    /// what `cnf.jkt` of a bound token must equal.
    pub jkt: String,
    /// The proof's unique id.
    pub jti: String,
    /// When the proof was made (seconds since the epoch).
    pub iat: u64,
}

impl DpopProof {
    /// The key to record in a [`crate::replay::ReplayCache`]: `"dpop:" + jkt + ":" + jti`
    /// (the thumbprint has a fixed length, so this cannot be ambiguous).
    pub fn replay_key(&self) -> String {
        format!("dpop:{}:{}", self.jkt, self.jti)
    }

    /// Until when the replay entry must be kept (inclusive): the last second at which
    /// this proof would still pass the `iat` check, `iat + max_age`.
    pub fn replay_expires(&self, check: &DpopCheck<'_>) -> UnixTime {
        UnixTime(self.iat.saturating_add(check.max_age))
    }
}

/// A DPoP signature algorithm tessera accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DpopAlg {
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4), fixed-width `r‖s` signature.
    ES256,
    /// Ed25519 (RFC 8037).
    EdDSA,
}

impl DpopAlg {
    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            DpopAlg::ES256 => "ES256",
            DpopAlg::EdDSA => "EdDSA",
        }
    }

    /// Parses a JOSE `alg` name (exact, case-sensitive); `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ES256" => Some(DpopAlg::ES256),
            "EdDSA" => Some(DpopAlg::EdDSA),
            _ => None,
        }
    }
}

/// A public key from a DPoP proof header: one of the two kinds tessera accepts.
#[derive(Clone, PartialEq, Eq)]
pub enum DpopJwk {
    /// `{"kty":"EC","crv":"P-256","x","y"}`: the affine coordinates, 32 bytes each.
    P256 {
        /// The x coordinate, big-endian.
        x: [u8; 32],
        /// The y coordinate, big-endian.
        y: [u8; 32],
    },
    /// `{"kty":"OKP","crv":"Ed25519","x"}`: the 32-byte public key.
    Ed25519 {
        /// The public key.
        x: [u8; 32],
    },
}

impl fmt::Debug for DpopJwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

impl DpopJwk {
    /// The algorithm this key type is used with.
    pub fn alg(&self) -> DpopAlg {
        match self {
            DpopJwk::P256 { .. } => DpopAlg::ES256,
            DpopJwk::Ed25519 { .. } => DpopAlg::EdDSA,
        }
    }

    /// Parses a JWK JSON object with the same strict rules as a proof header's `jwk`.
    pub fn parse(json: &str) -> Result<Self, DpopError> {
        let raw: ObjectOnly<RawJwk> = serde_json::from_str(json).map_err(|_| DpopError::BadKey)?;
        raw.0.into_key()
    }

    /// The JWK as compact JSON with only the required members, in lexicographic order:
    /// exactly the RFC 7638 thumbprint input.
    pub fn to_json(&self) -> String {
        match self {
            DpopJwk::P256 { x, y } => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                b64::encode(x),
                b64::encode(y)
            ),
            DpopJwk::Ed25519 { x } => {
                format!(
                    r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                    b64::encode(x)
                )
            }
        }
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            DpopJwk::P256 { x, y } => {
                let mut point = [0u8; 65];
                point[0] = 0x04;
                point[1..33].copy_from_slice(x);
                point[33..].copy_from_slice(y);
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(msg, sig)
                    .is_ok()
            }
            DpopJwk::Ed25519 { x } => signature::UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(msg, sig)
                .is_ok(),
        }
    }
}

/// The RFC 7638 JWK SHA-256 thumbprint, base64url without padding (43 characters).
pub fn jwk_thumbprint(jwk: &DpopJwk) -> String {
    b64::encode(digest::digest(&digest::SHA256, jwk.to_json().as_bytes()))
}

/// The `ath` claim value for an access token: base64url(SHA-256(token)) (RFC 9449 §4.2).
pub fn ath(access_token: &str) -> String {
    b64::encode(digest::digest(&digest::SHA256, access_token.as_bytes()))
}

/// Normalises a URL for `htu` comparison (RFC 9449 §4.3 with RFC 3986 §6.2.2–6.2.3):
/// lowercases scheme and host, drops the default port (`:443` for https, `:80` for
/// http, and an empty port), drops query and fragment, and turns an empty path into `/`.
/// The path is otherwise kept byte for byte (no percent-decoding or dot-segment removal).
///
/// `None` for anything but an absolute `http`/`https` URL of visible ASCII with a host:
/// userinfo (`user@`), whitespace, control or non-ASCII characters, a bad port, or more
/// than [`MAX_HTU_LEN`] bytes.
pub fn normalize_htu(url: &str) -> Option<String> {
    if url.len() > MAX_HTU_LEN || !url.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return None;
    }
    let (scheme, rest) = url.split_once("://")?;
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        443
    } else if scheme.eq_ignore_ascii_case("http") {
        80
    } else {
        return None;
    };
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    let (host, port) = split_host_port(authority)?;
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let path = &tail[..path_end];

    let mut out = String::with_capacity(url.len());
    out.push_str(&scheme.to_ascii_lowercase());
    out.push_str("://");
    out.push_str(&host.to_ascii_lowercase());
    if let Some(p) = port.filter(|&p| p != default_port) {
        out.push(':');
        out.push_str(&p.to_string());
    }
    out.push_str(if path.is_empty() { "/" } else { path });
    Some(out)
}

/// Splits `host[:port]` or `[v6]:port`; `None` on userinfo, an empty or odd host, or a
/// port that is not 1–5 digits within 0–65535. An empty port (`host:`) is `None` port.
pub(crate) fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let close = v6.find(']')?;
        let inner = &v6[..close];
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        let host = &authority[..close + 2];
        match &authority[close + 2..] {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if !host.starts_with('[')
        && (host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')))
    {
        return None;
    }
    let port = match port {
        None | Some("") => None,
        Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

/// Verifies one `DPoP` header value against the request; see the [module docs](self) for
/// every check, and for the replay and binding checks the caller must still make.
pub fn verify_proof(proof: &str, check: &DpopCheck<'_>) -> Result<DpopProof, DpopError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(DpopError::TooLarge);
    }
    let mut it = proof.split('.');
    let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(DpopError::Malformed);
    };
    for seg in [header_b64, payload_b64, sig_b64] {
        if seg.is_empty() || !b64::is_b64url(seg) {
            return Err(DpopError::Malformed);
        }
    }

    // Header.
    let header_json = b64::decode(header_b64).ok_or(DpopError::Malformed)?;
    let header: ObjectOnly<Header> =
        serde_json::from_slice(&header_json).map_err(|_| DpopError::BadHeader)?;
    let header = header.0;
    if header.typ != "dpop+jwt" {
        return Err(DpopError::BadType);
    }
    let alg = DpopAlg::parse(&header.alg).ok_or(DpopError::UnsupportedAlgorithm)?;
    // into_key refuses private members first, then checks the key's own alg/use.
    let jwk = header.jwk.ok_or(DpopError::BadKey)?.0.into_key()?;
    if jwk.alg() != alg {
        return Err(DpopError::AlgorithmKeyMismatch);
    }

    // Signature, before any claim is read.
    let sig = b64::decode_array::<64>(sig_b64).ok_or(DpopError::BadSignature)?;
    let signing_input = proof
        .get(..header_b64.len() + 1 + payload_b64.len())
        .ok_or(DpopError::Malformed)?;
    if !jwk.verify(signing_input.as_bytes(), &sig) {
        return Err(DpopError::BadSignature);
    }

    // Claims.
    let payload = b64::decode(payload_b64).ok_or(DpopError::Malformed)?;
    let claims: ObjectOnly<Claims> =
        serde_json::from_slice(&payload).map_err(|_| DpopError::BadClaims)?;
    let claims = claims.0;
    let jti_len = claims.jti.chars().count();
    if jti_len == 0 || jti_len > MAX_JTI_LEN {
        return Err(DpopError::BadClaims);
    }
    if claims.htm != check.method {
        return Err(DpopError::MethodMismatch);
    }
    let expected_htu = normalize_htu(check.htu).ok_or(DpopError::UrlMismatch)?;
    if normalize_htu(&claims.htu).as_deref() != Some(expected_htu.as_str()) {
        return Err(DpopError::UrlMismatch);
    }
    if claims.iat < check.now.0.saturating_sub(check.max_age) {
        return Err(DpopError::Stale);
    }
    if claims.iat > check.now.0.saturating_add(check.max_skew) {
        return Err(DpopError::FromFuture);
    }
    if let Some(token) = check.access_token {
        let got = claims.ath.as_deref().ok_or(DpopError::AthMissing)?;
        if got != ath(token) {
            return Err(DpopError::AthMismatch);
        }
    }
    if let Some(required) = check.nonce {
        let got = claims.nonce.as_deref().ok_or(DpopError::NonceRequired)?;
        if got != required {
            return Err(DpopError::NonceMismatch);
        }
    }
    Ok(DpopProof {
        jkt: jwk_thumbprint(&jwk),
        jti: claims.jti,
        iat: claims.iat,
    })
}

/// [`verify_proof`], then the replay check: records [`DpopProof::replay_key`] in `replay`
/// until [`DpopProof::replay_expires`]. Only proofs that verified reach the cache, so
/// forged proofs cannot fill it.
pub fn verify_proof_once(
    proof: &str,
    check: &DpopCheck<'_>,
    replay: &ReplayCache,
) -> Result<DpopProof, DpopError> {
    let verified = verify_proof(proof, check)?;
    replay
        .check_and_insert(
            verified.replay_key(),
            verified.replay_expires(check),
            check.now,
        )
        .map_err(|e| match e {
            ReplayError::Replayed => DpopError::Replayed,
            // Expired cannot happen after the iat check; Full and anything new fail closed.
            _ => DpopError::ReplayCacheFull,
        })?;
    Ok(verified)
}

// ---- strict JSON shapes --------------------------------------------------------------

/// Deserialises `T` only from a JSON object. A derived `Deserialize` also accepts a JSON
/// array of the fields in order, which no JOSE object may be.
struct ObjectOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(V(PhantomData)).map(ObjectOnly)
    }
}

/// `Some` only for a present, non-null string: `"nonce": null` is a type error, not absence.
fn some_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// The only header a DPoP proof may have. `deny_unknown_fields` refuses `kid`, `jku`,
/// `x5u`, `x5c`, `crit`, `b64` and anything else; derive refuses duplicates.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    typ: String,
    alg: String,
    #[serde(default)]
    jwk: Option<ObjectOnly<RawJwk>>,
}

/// A JWK as received. Private members are named so they can be refused distinctly.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwk {
    kty: String,
    crv: String,
    x: String,
    #[serde(default, deserialize_with = "some_string")]
    y: Option<String>,
    // Tolerated metadata (WebCrypto's exportKey emits ext and key_ops).
    #[serde(default, deserialize_with = "some_string")]
    alg: Option<String>,
    #[serde(default, rename = "use", deserialize_with = "some_string")]
    use_: Option<String>,
    #[serde(default, deserialize_with = "some_string")]
    kid: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    /// Type-checked, otherwise unused.
    #[serde(default)]
    #[allow(dead_code)]
    ext: Option<bool>,
    // Private-key members (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
    #[serde(default)]
    d: Option<IgnoredAny>,
    #[serde(default)]
    p: Option<IgnoredAny>,
    #[serde(default)]
    q: Option<IgnoredAny>,
    #[serde(default)]
    dp: Option<IgnoredAny>,
    #[serde(default)]
    dq: Option<IgnoredAny>,
    #[serde(default)]
    qi: Option<IgnoredAny>,
    #[serde(default)]
    oth: Option<IgnoredAny>,
    #[serde(default)]
    r: Option<IgnoredAny>,
    #[serde(default)]
    t: Option<IgnoredAny>,
    #[serde(default)]
    k: Option<IgnoredAny>,
}

impl RawJwk {
    fn into_key(self) -> Result<DpopJwk, DpopError> {
        let private = [
            &self.d, &self.p, &self.q, &self.dp, &self.dq, &self.qi, &self.oth, &self.r, &self.t,
            &self.k,
        ];
        if private.iter().any(|m| m.is_some()) {
            return Err(DpopError::PrivateKeyInHeader);
        }
        if self.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(DpopError::AlgorithmKeyMismatch);
        }
        if self.kid.as_ref().is_some_and(|k| k.len() > 256)
            || self.key_ops.as_ref().is_some_and(|ops| ops.len() > 8)
        {
            return Err(DpopError::BadKey);
        }
        let key = match (self.kty.as_str(), self.crv.as_str(), &self.y) {
            ("EC", "P-256", Some(y)) => DpopJwk::P256 {
                x: b64::decode_array::<32>(&self.x).ok_or(DpopError::BadKey)?,
                y: b64::decode_array::<32>(y).ok_or(DpopError::BadKey)?,
            },
            ("OKP", "Ed25519", None) => DpopJwk::Ed25519 {
                x: b64::decode_array::<32>(&self.x).ok_or(DpopError::BadKey)?,
            },
            _ => return Err(DpopError::BadKey),
        };
        if let Some(a) = &self.alg {
            if a != key.alg().name() {
                return Err(DpopError::AlgorithmKeyMismatch);
            }
        }
        Ok(key)
    }
}

/// The claims tessera reads. Unknown claims are ignored (RFC 9449 allows extensions);
/// duplicates of these are refused.
#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: u64,
    #[serde(default, deserialize_with = "some_string")]
    ath: Option<String>,
    #[serde(default, deserialize_with = "some_string")]
    nonce: Option<String>,
}

// ---- client side ---------------------------------------------------------------------

enum KeyPairInner {
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A DPoP key pair, for clients and tests: makes proofs [`verify_proof`] accepts.
pub struct DpopKey {
    pair: KeyPairInner,
    jwk: DpopJwk,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("jwk", &self.jwk)
            .field("private", &"[redacted]")
            .finish()
    }
}

#[derive(Serialize)]
struct OutClaims<'a> {
    jti: &'a str,
    htm: &'a str,
    htu: &'a str,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

impl DpopKey {
    /// A new random key pair; `None` only if the system's random generator fails.
    pub fn generate(alg: DpopAlg) -> Option<Self> {
        let rng = SystemRandom::new();
        match alg {
            DpopAlg::ES256 => {
                let doc =
                    EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                        .ok()?;
                Self::from_pkcs8(alg, doc.as_ref())
            }
            DpopAlg::EdDSA => {
                let doc = Ed25519KeyPair::generate_pkcs8(&rng).ok()?;
                Self::from_pkcs8(alg, doc.as_ref())
            }
        }
    }

    /// A key pair from a PKCS#8 document (`None` if it is not a valid key for `alg`).
    pub fn from_pkcs8(alg: DpopAlg, pkcs8: &[u8]) -> Option<Self> {
        match alg {
            DpopAlg::ES256 => {
                let pair = EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    pkcs8,
                    &SystemRandom::new(),
                )
                .ok()?;
                let point = pair.public_key().as_ref();
                if point.len() != 65 || point[0] != 0x04 {
                    return None;
                }
                let x = point[1..33].try_into().ok()?;
                let y = point[33..65].try_into().ok()?;
                Some(DpopKey {
                    pair: KeyPairInner::Es256(pair),
                    jwk: DpopJwk::P256 { x, y },
                })
            }
            DpopAlg::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).ok()?;
                let x = pair.public_key().as_ref().try_into().ok()?;
                Some(DpopKey {
                    pair: KeyPairInner::Ed25519(pair),
                    jwk: DpopJwk::Ed25519 { x },
                })
            }
        }
    }

    /// An Ed25519 key pair from its 32-byte seed (deterministic; for test vectors).
    pub fn ed25519_from_seed(seed: &[u8; 32]) -> Option<Self> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).ok()?;
        let x = pair.public_key().as_ref().try_into().ok()?;
        Some(DpopKey {
            pair: KeyPairInner::Ed25519(pair),
            jwk: DpopJwk::Ed25519 { x },
        })
    }

    /// The algorithm.
    pub fn alg(&self) -> DpopAlg {
        self.jwk.alg()
    }

    /// The public key.
    pub fn jwk(&self) -> &DpopJwk {
        &self.jwk
    }

    /// The public key's thumbprint (what `cnf.jkt` will say).
    pub fn thumbprint(&self) -> String {
        jwk_thumbprint(&self.jwk)
    }

    /// Signs `header_json.payload_json` as given, for building deliberately odd proofs in
    /// tests; `None` only if signing fails.
    pub fn sign_raw(&self, header_json: &str, payload_json: &str) -> Option<String> {
        let mut out = b64::encode(header_json);
        out.push('.');
        b64::encode_into(payload_json, &mut out);
        let sig = match &self.pair {
            KeyPairInner::Es256(p) => p
                .sign(&SystemRandom::new(), out.as_bytes())
                .ok()?
                .as_ref()
                .to_vec(),
            KeyPairInner::Ed25519(p) => p.sign(out.as_bytes()).as_ref().to_vec(),
        };
        out.push('.');
        b64::encode_into(sig, &mut out);
        Some(out)
    }

    /// The standard proof header for this key: `{"typ":"dpop+jwt","alg":…,"jwk":…}`.
    pub fn header_json(&self) -> String {
        format!(
            r#"{{"typ":"dpop+jwt","alg":"{}","jwk":{}}}"#,
            self.alg().name(),
            self.jwk.to_json()
        )
    }

    /// A proof for one request: `htm` = method, `htu` = URL (sent as given; query and
    /// fragment should be left out), `ath` computed from `access_token` if given.
    pub fn proof(
        &self,
        htm: &str,
        htu: &str,
        iat: u64,
        jti: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Option<String> {
        let claims = OutClaims {
            jti,
            htm,
            htu,
            iat,
            ath: access_token.map(ath),
            nonce,
        };
        let payload = serde_json::to_string(&claims).ok()?;
        self.sign_raw(&self.header_json(), &payload)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn normalize_htu_rules() {
        let n = |s: &str| normalize_htu(s);
        assert_eq!(
            n("HTTPS://Example.COM:443/a/B?q=1#f").as_deref(),
            Some("https://example.com/a/B")
        );
        assert_eq!(
            n("http://example.com:80").as_deref(),
            Some("http://example.com/")
        );
        assert_eq!(
            n("http://example.com:443/").as_deref(),
            Some("http://example.com:443/")
        );
        assert_eq!(
            n("https://example.com:/x").as_deref(),
            Some("https://example.com/x")
        );
        assert_eq!(
            n("https://example.com:08443/x").as_deref(),
            Some("https://example.com:8443/x")
        );
        assert_eq!(n("https://[::1]:443/x").as_deref(), Some("https://[::1]/x"));
        assert_eq!(
            n("https://[::1]:8443").as_deref(),
            Some("https://[::1]:8443/")
        );
        assert_eq!(
            n("https://example.com?x").as_deref(),
            Some("https://example.com/")
        );
        for bad in [
            "ftp://example.com/",
            "https://user@example.com/",
            "https://user:pw@example.com/",
            "https://exa mple.com/",
            " https://example.com/",
            "https://example.com/\t",
            "https:///path",
            "https://example.com:99999/",
            "https://example.com:12a/",
            "https://exämple.com/",
            "https://[]/",
            "https://[::1/",
            "//example.com/",
            "example.com/",
            "",
        ] {
            assert_eq!(n(bad), None, "{bad:?}");
        }
        assert_eq!(
            n(&format!("https://e.com/{}", "a".repeat(MAX_HTU_LEN))),
            None
        );
    }

    #[test]
    fn ath_of_rfc9449_example_token() {
        // RFC 9449 §7.1, Figures 12 and 13.
        assert_eq!(
            ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn json_arrays_are_not_objects() {
        let r: Result<ObjectOnly<Claims>, _> =
            serde_json::from_str(r#"["j","GET","https://e/",1]"#);
        assert!(r.is_err());
        let r: Result<ObjectOnly<Claims>, _> =
            serde_json::from_str(r#"{"jti":"j","htm":"GET","htu":"https://e/","iat":1}"#);
        assert!(r.is_ok());
    }

    #[test]
    fn generated_keys_round_trip() {
        for alg in [DpopAlg::ES256, DpopAlg::EdDSA] {
            let k = DpopKey::generate(alg).unwrap();
            assert_eq!(DpopJwk::parse(&k.jwk.to_json()).unwrap(), k.jwk);
            assert_eq!(k.thumbprint().len(), 43);
        }
    }
}
