//! HTTP Message Signatures (RFC 9421) with `hmac-sha256`, and `Content-Digest` (RFC 9530),
//! in tessera's profile for service clients (docs/http-api.md, docs/clients.md).
//!
//! Purpose: decide whether a request's `Signature-Input` and `Signature` fields are a
//! fresh, authentic signature by a known client over the parts of the request that
//! matter. Pure: the request's parts, the secret and the time are parameters.
//!
//! # Profile
//! - **One signature.** `Signature-Input` and `Signature` must each hold exactly one
//!   dictionary member, with the same label (any label; [`sign`] uses `sig1`). Several
//!   signatures (e.g. added by a proxy) are refused with [`SigError::MultipleSignatures`].
//! - **Covered components** (at most [`MAX_COMPONENTS`], no duplicates, no component
//!   parameters): `@method` and `@target-uri` always, `content-digest` whenever the request
//!   has a body; optionally `@authority`, `@path`, `@query` (derived from the target URI),
//!   `content-type`, `content-length`. Anything else is refused.
//! - **Parameters**: `created` (integer, required), `keyid` (string, 1–128 bytes,
//!   required), `nonce` (string, 1–128 bytes, required), `alg` (optional, must be
//!   `hmac-sha256`), `expires` (optional integer, enforced). Anything else (including
//!   `tag`) is refused, as are duplicates.
//! - **Time**: `|now - created| <= window` (default [`DEFAULT_WINDOW`], 300 s) and
//!   `now <= expires` if given.
//! - **Replay**: the pair (`keyid`, `nonce`) is accepted once within the window; see
//!   [`SignatureParams::replay_key`] or let [`verify_request`] do it.
//! - **Body**: `Content-Digest` must match the body ([`check_content_digest`]).
//! - **Keys**: HMAC secrets shorter than [`MIN_SECRET_LEN`] bytes are refused.
//!
//! Structured fields (RFC 8941) are parsed by a small strict parser for exactly the
//! subset used here; every input is length-bounded and malformed input is an error,
//! never a panic.
//!
//! # Use
//! [`verify_request`] does everything in the right order: parse, look up the secret by
//! `keyid` (an unknown key id is answered exactly like a bad signature), check the MAC in
//! constant time, then the time window, the body digest, and only then record the nonce
//! (so unauthenticated requests cannot fill the replay cache). [`parse`] and [`verify`]
//! are the parts, for callers who need them separately.
//!
//! ```
//! use tessera_core::httpsig::{self, SignedRequest};
//! use tessera_core::replay::ReplayCache;
//! use tessera_core::UnixTime;
//!
//! let secret = [7u8; 32];
//! let now = UnixTime(1_700_000_000);
//! let body = br#"{"hello":"world"}"#;
//! let digest = httpsig::content_digest(body);
//! let (input, sig) = httpsig::sign(
//!     "POST", "https://api.example/v1/items?x=1", Some(&digest), "client-1", "n-123", now.0, &secret,
//! ).unwrap();
//! let req = SignedRequest {
//!     method: "POST",
//!     target_uri: "https://api.example/v1/items?x=1",
//!     content_digest: Some(&digest),
//!     has_body: true,
//!     signature_input: &input,
//!     signature: &sig,
//!     ..Default::default()
//! };
//! let cache = ReplayCache::new(1000);
//! let lookup = |keyid: &str| (keyid == "client-1").then_some(secret);
//! let params = httpsig::verify_request(&req, body, lookup, &cache, now, 300).unwrap();
//! assert_eq!(params.keyid, "client-1");
//! // The same request again is a replay.
//! assert!(httpsig::verify_request(&req, body, lookup, &cache, now, 300).is_err());
//! ```

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use ring::{digest, hmac};

use crate::replay::{ReplayCache, ReplayError};
use crate::UnixTime;

/// The only signature algorithm accepted.
pub const ALG: &str = "hmac-sha256";
/// The default time window, in seconds, around `created`.
pub const DEFAULT_WINDOW: u64 = 300;
/// The longest `Signature-Input`, `Signature`, `Content-Digest` or other covered header
/// value accepted, in bytes.
pub const MAX_HEADER_LEN: usize = 4096;
/// The longest target URI accepted, in bytes.
pub const MAX_TARGET_URI_LEN: usize = 8192;
/// The most covered components accepted.
pub const MAX_COMPONENTS: usize = 16;
/// The longest `nonce` accepted, in bytes.
pub const MAX_NONCE_LEN: usize = 128;
/// The longest `keyid` accepted, in bytes.
pub const MAX_KEYID_LEN: usize = 128;
/// The shortest HMAC secret accepted, in bytes (RFC 8725 §3.5: at least the hash size).
pub const MIN_SECRET_LEN: usize = 32;

const MAX_LABEL_LEN: usize = 64;
const MAX_PARAMS: usize = 8;
const MAX_DIGEST_MEMBERS: usize = 8;

/// The component identifiers tessera supports.
const SUPPORTED_COMPONENTS: [&str; 8] = [
    "@method",
    "@target-uri",
    "@authority",
    "@path",
    "@query",
    "content-digest",
    "content-type",
    "content-length",
];

/// Structured-field byte sequences: standard base64; padding optional as RFC 8941 §4.2.7
/// asks of parsers, but non-canonical trailing bits refused.
const SF_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(false),
);

/// Why a signed request was refused. Shown to operators in logs; clients get a plain 401.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// A field value, the target URI, or a list is longer than its bound.
    #[error("signature field too large")]
    TooLarge,
    /// `Signature-Input` or `Signature` is not a well-formed structured field of the
    /// expected shape.
    #[error("malformed signature field")]
    Malformed,
    /// More than one signature in `Signature-Input` or `Signature`.
    #[error("more than one signature")]
    MultipleSignatures,
    /// The `Signature` label is not the `Signature-Input` label.
    #[error("signature label mismatch")]
    LabelMismatch,
    /// A covered component tessera does not support (or one with parameters).
    #[error("unsupported covered component")]
    UnknownComponent,
    /// A component is listed twice.
    #[error("duplicate covered component")]
    DuplicateComponent,
    /// A component the profile requires is not covered.
    #[error("required component {0} not covered")]
    MissingComponent(&'static str),
    /// A covered header component is absent from the request.
    #[error("covered header {0} absent from the request")]
    MissingHeader(&'static str),
    /// A covered header value has control or non-ASCII characters.
    #[error("bad covered header value")]
    BadHeaderValue,
    /// The method is not an HTTP token.
    #[error("bad method")]
    BadMethod,
    /// The target URI is not an absolute http(s) URI without userinfo or fragment.
    #[error("bad target URI")]
    BadTargetUri,
    /// A required parameter is missing.
    #[error("required parameter {0} missing")]
    MissingParameter(&'static str),
    /// A parameter tessera does not support.
    #[error("unsupported signature parameter")]
    UnknownParameter,
    /// A parameter of the wrong type, out of bounds, or given twice.
    #[error("bad signature parameter")]
    BadParameter,
    /// `alg` is present and is not `hmac-sha256`.
    #[error("unsupported signature algorithm")]
    UnsupportedAlgorithm,
    /// The HMAC secret is shorter than [`MIN_SECRET_LEN`].
    #[error("HMAC secret too short")]
    WeakKey,
    /// The signature does not verify (or the key id is unknown, see [`verify_request`]).
    #[error("bad signature")]
    BadSignature,
    /// `created` is more than `window` seconds in the past.
    #[error("signature too old")]
    Stale,
    /// `created` is more than `window` seconds in the future.
    #[error("signature created in the future")]
    FromFuture,
    /// `expires` has passed.
    #[error("signature expired")]
    Expired,
    /// `Content-Digest` is missing, malformed, has no supported algorithm, or does not
    /// match the body.
    #[error("content digest mismatch")]
    DigestMismatch,
    /// The (`keyid`, `nonce`) pair was used before within the window.
    #[error("nonce replayed")]
    Replayed,
    /// The replay cache is full; the request is refused (fail closed).
    #[error("replay cache full")]
    ReplayCacheFull,
}

/// The parts of a request a signature can cover, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignedRequest<'a> {
    /// The method, exactly as received (case-sensitive, RFC 9421 §2.2.1).
    pub method: &'a str,
    /// The absolute target URI as the client addressed it: `https://host[:port]/path?query`
    /// (built from the configured public origin and the request target).
    pub target_uri: &'a str,
    /// The `Content-Digest` field value, if present.
    pub content_digest: Option<&'a str>,
    /// The `Content-Type` field value, if present (only needed if covered).
    pub content_type: Option<&'a str>,
    /// The `Content-Length` field value, if present (only needed if covered).
    pub content_length: Option<&'a str>,
    /// True if the request has a non-empty body: `content-digest` must then be covered.
    pub has_body: bool,
    /// The `Signature-Input` field value (several field lines joined with `, `).
    pub signature_input: &'a str,
    /// The `Signature` field value (several field lines joined with `, `).
    pub signature: &'a str,
}

/// The parameters of a parsed signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureParams {
    /// The signature's label in the two fields.
    pub label: String,
    /// The client's key id.
    pub keyid: String,
    /// The client's one-time nonce.
    pub nonce: String,
    /// When the signature was made (seconds since the epoch).
    pub created: u64,
    /// When it stops being valid, if the client said.
    pub expires: Option<u64>,
    /// The covered component identifiers, in order, without quotes.
    pub components: Vec<String>,
}

impl SignatureParams {
    /// The key to record in a [`ReplayCache`]: `"sig:" + keyid + "\n" + nonce` (a newline
    /// cannot occur in either, so this is unambiguous).
    pub fn replay_key(&self) -> String {
        format!("sig:{}\n{}", self.keyid, self.nonce)
    }

    /// Until when the replay entry must be kept (inclusive): the last second at which the
    /// signature would still pass the time checks, `min(created + window, expires)`.
    pub fn replay_expires(&self, window: u64) -> UnixTime {
        let end = self.created.saturating_add(window);
        UnixTime(self.expires.map_or(end, |e| e.min(end)))
    }
}

/// A parsed signature: its parameters, the signature bytes and the signature base they
/// must authenticate. Pass to [`verify`] with the secret for `params.keyid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSignature {
    /// The signature parameters.
    pub params: SignatureParams,
    /// The signature bytes from the `Signature` field.
    pub signature: Vec<u8>,
    /// The signature base (RFC 9421 §2.5) built from the request.
    pub base: String,
}

/// Parses and checks the request's signature fields against tessera's profile and builds
/// the signature base. Does not check the MAC, the time, the digest or replay.
pub fn parse(req: &SignedRequest<'_>) -> Result<ParsedSignature, SigError> {
    if req.signature_input.len() > MAX_HEADER_LEN || req.signature.len() > MAX_HEADER_LEN {
        return Err(SigError::TooLarge);
    }
    let input = parse_signature_input(req.signature_input)?;
    let (sig_label, signature) = parse_signature_field(req.signature)?;
    if sig_label != input.label {
        return Err(SigError::LabelMismatch);
    }
    let params = check_profile(&input, req.has_body)?;
    let base = build_base(req, &params.components, input.raw_params)?;
    Ok(ParsedSignature {
        params,
        signature,
        base,
    })
}

/// Checks the MAC (constant time) with `secret`, then the time: `|now - created| <= window`
/// and `now <= expires` if given.
pub fn verify(
    parsed: &ParsedSignature,
    secret: &[u8],
    now: UnixTime,
    window: u64,
) -> Result<(), SigError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(SigError::WeakKey);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, parsed.base.as_bytes(), &parsed.signature)
        .map_err(|_| SigError::BadSignature)?;
    check_time(&parsed.params, now, window)
}

fn check_time(params: &SignatureParams, now: UnixTime, window: u64) -> Result<(), SigError> {
    if params.created > now.0.saturating_add(window) {
        return Err(SigError::FromFuture);
    }
    if params.created.saturating_add(window) < now.0 {
        return Err(SigError::Stale);
    }
    if params.expires.is_some_and(|e| now.0 > e) {
        return Err(SigError::Expired);
    }
    Ok(())
}

/// Everything that can be checked before the body is read, in order: [`parse`]; the
/// secret for `keyid` from `secret_for` (an unknown key id costs the same HMAC and gives
/// the same [`SigError::BadSignature`] as a wrong signature); [`verify`] (MAC, then time);
/// and, whenever `req.has_body` or `content-digest` is covered, a `Content-Digest` field
/// that [`check_content_digest`] could accept (well-formed, a supported algorithm).
///
/// The signature base holds the `Content-Digest` *value*, not the body, so the MAC proves
/// the client's secret before a byte of the body is read: a caller that reads the body
/// only after this returns buffers bodies for holders of a client secret only. Then it
/// records the nonce ([`SignatureParams::replay_key`]) and checks the body with
/// [`VerifiedHead::check_body`]. Does not touch any replay cache.
pub fn verify_head<S: AsRef<[u8]>>(
    req: &SignedRequest<'_>,
    secret_for: impl FnOnce(&str) -> Option<S>,
    now: UnixTime,
    window: u64,
) -> Result<VerifiedHead, SigError> {
    let parsed = parse(req)?;
    match secret_for(&parsed.params.keyid) {
        Some(secret) => verify(&parsed, secret.as_ref(), now, window)?,
        None => {
            // Same work and answer as a wrong signature: key ids cannot be probed.
            let dummy = hmac::Key::new(hmac::HMAC_SHA256, &[0u8; MIN_SECRET_LEN]);
            let _ = hmac::verify(&dummy, parsed.base.as_bytes(), &parsed.signature);
            return Err(SigError::BadSignature);
        }
    }
    let covers_digest = parsed
        .params
        .components
        .iter()
        .any(|c| c == "content-digest");
    let digest = if covers_digest || req.has_body {
        let header = req.content_digest.ok_or(SigError::DigestMismatch)?;
        if !digest_is_usable(header) {
            return Err(SigError::DigestMismatch);
        }
        Some(header.to_owned())
    } else {
        None
    };
    Ok(VerifiedHead {
        params: parsed.params,
        digest,
    })
}

/// A request whose signature fields verified ([`verify_head`]); its body is still to be
/// checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedHead {
    /// The signature parameters.
    pub params: SignatureParams,
    /// The `Content-Digest` value the body must match, when the signature covers one or
    /// the request said it has a body; `None`: the body must be empty.
    digest: Option<String>,
}

impl VerifiedHead {
    /// True if the request may carry a body: a `Content-Digest` was required and present.
    /// Otherwise only an empty body passes [`check_body`](Self::check_body), so a caller
    /// need not buffer anything.
    pub fn body_allowed(&self) -> bool {
        self.digest.is_some()
    }

    /// The body against the checked `Content-Digest`; without one the body must be empty.
    pub fn check_body(&self, body: &[u8]) -> Result<(), SigError> {
        match &self.digest {
            Some(header) if check_content_digest(header, body) => Ok(()),
            Some(_) => Err(SigError::DigestMismatch),
            // Not covered: a body would be content no signature vouches for.
            None if body.is_empty() => Ok(()),
            None => Err(SigError::MissingComponent("content-digest")),
        }
    }
}

/// Everything, in order: [`verify_head`]; the body against `Content-Digest`; and last the
/// (`keyid`, `nonce`) pair in `replay` until [`SignatureParams::replay_expires`].
///
/// `body` is the request body as received (empty if none); a non-empty body makes
/// `has_body` true whatever `req.has_body` says. For a request read from the network
/// prefer [`verify_head`] before reading the body.
pub fn verify_request<S: AsRef<[u8]>>(
    req: &SignedRequest<'_>,
    body: &[u8],
    secret_for: impl FnOnce(&str) -> Option<S>,
    replay: &ReplayCache,
    now: UnixTime,
    window: u64,
) -> Result<SignatureParams, SigError> {
    let req = SignedRequest {
        has_body: req.has_body || !body.is_empty(),
        ..*req
    };
    let head = verify_head(&req, secret_for, now, window)?;
    head.check_body(body)?;
    let params = head.params;
    replay
        .check_and_insert(params.replay_key(), params.replay_expires(window), now)
        .map_err(|e| match e {
            ReplayError::Replayed => SigError::Replayed,
            // Expired cannot happen after check_time; Full and anything new fail closed.
            _ => SigError::ReplayCacheFull,
        })?;
    Ok(params)
}

/// Signs a request for clients and tests, covering `@method`, `@target-uri` and, when
/// `content_digest` is given, `content-digest`, with parameters
/// `created`, `keyid`, `nonce` and `alg="hmac-sha256"`, under the label `sig1`.
///
/// Returns `(Signature-Input value, Signature value)`. Fails on inputs the verifier would
/// refuse (bad method or URI, `keyid`/`nonce` empty, too long or not printable ASCII,
/// short secret).
pub fn sign(
    method: &str,
    target_uri: &str,
    content_digest: Option<&str>,
    keyid: &str,
    nonce: &str,
    created: u64,
    secret: &[u8],
) -> Result<(String, String), SigError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(SigError::WeakKey);
    }
    let mut input = String::from("sig1=(\"@method\" \"@target-uri\"");
    if content_digest.is_some() {
        input.push_str(" \"content-digest\"");
    }
    input.push_str(&format!(
        ");created={created};keyid={};nonce={};alg=\"{ALG}\"",
        sf_string_serialize(keyid)?,
        sf_string_serialize(nonce)?
    ));
    // Build the base exactly as the verifier will, and check the result parses.
    let req = SignedRequest {
        method,
        target_uri,
        content_digest,
        content_type: None,
        content_length: None,
        has_body: content_digest.is_some(),
        signature_input: &input,
        signature: "sig1=::",
    };
    let parsed = parse(&req)?;
    let tag = sign_base(&parsed.base, secret);
    let signature = format!("sig1=:{}:", SF_B64.encode(tag));
    Ok((input, signature))
}

/// HMAC-SHA256 of a signature base (RFC 9421 §3.3.3) — the signature bytes.
pub fn sign_base(base: &str, secret: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut out = [0u8; 32];
    out.copy_from_slice(hmac::sign(&key, base.as_bytes()).as_ref());
    out
}

/// The `Content-Digest` value for `body` (RFC 9530): `sha-256=:<base64>:`.
pub fn content_digest(body: &[u8]) -> String {
    let d = digest::digest(&digest::SHA256, body);
    format!("sha-256=:{}:", SF_B64.encode(d.as_ref()))
}

/// True if `header` (a `Content-Digest` value) matches `body`: it must be a well-formed
/// dictionary of byte sequences without parameters or duplicate keys, at most 8 members,
/// name at least one supported algorithm (`sha-256`, `sha-512`), and every supported
/// member must match. Members with other algorithm names are ignored.
pub fn check_content_digest(header: &str, body: &[u8]) -> bool {
    if !digest_is_usable(header) {
        return false;
    }
    let Some(members) = parse_digest_dict(header) else {
        return false;
    };
    let mut supported = 0;
    for (alg, value) in &members {
        let d = match *alg {
            "sha-256" => digest::digest(&digest::SHA256, body),
            "sha-512" => digest::digest(&digest::SHA512, body),
            _ => continue,
        };
        supported += 1;
        if d.as_ref() != value.as_slice() {
            return false;
        }
    }
    supported > 0
}

/// True if `header` is a `Content-Digest` value that [`check_content_digest`] could accept
/// for some body: bounded, well-formed, naming at least one supported algorithm.
fn digest_is_usable(header: &str) -> bool {
    header.len() <= MAX_HEADER_LEN
        && parse_digest_dict(header).is_some_and(|m| {
            m.iter()
                .any(|(alg, _)| matches!(*alg, "sha-256" | "sha-512"))
        })
}

// ---- profile and signature base ------------------------------------------------------

struct SignatureInput<'a> {
    label: &'a str,
    components: Vec<String>,
    /// The inner list and its parameters exactly as received: the `@signature-params` value.
    raw_params: &'a str,
    params: Vec<(&'a str, Bare)>,
}

fn check_profile(input: &SignatureInput<'_>, has_body: bool) -> Result<SignatureParams, SigError> {
    for (i, c) in input.components.iter().enumerate() {
        if !SUPPORTED_COMPONENTS.contains(&c.as_str()) {
            return Err(SigError::UnknownComponent);
        }
        if input.components[..i].contains(c) {
            return Err(SigError::DuplicateComponent);
        }
    }
    let covers = |name: &str| input.components.iter().any(|c| c == name);
    for required in ["@method", "@target-uri"] {
        if !covers(required) {
            return Err(SigError::MissingComponent(required));
        }
    }
    if has_body && !covers("content-digest") {
        return Err(SigError::MissingComponent("content-digest"));
    }

    let (mut created, mut expires, mut nonce, mut keyid) = (None, None, None, None);
    for (name, value) in &input.params {
        match (*name, value) {
            ("created", Bare::Integer(n)) => {
                created = Some(u64::try_from(*n).map_err(|_| SigError::BadParameter)?)
            }
            ("expires", Bare::Integer(n)) => {
                expires = Some(u64::try_from(*n).map_err(|_| SigError::BadParameter)?)
            }
            ("nonce", Bare::String(s)) => nonce = Some(s.clone()),
            ("keyid", Bare::String(s)) => keyid = Some(s.clone()),
            ("alg", Bare::String(s)) => {
                if s != ALG {
                    return Err(SigError::UnsupportedAlgorithm);
                }
            }
            ("created" | "expires" | "nonce" | "keyid" | "alg", _) => {
                return Err(SigError::BadParameter)
            }
            _ => return Err(SigError::UnknownParameter),
        }
    }
    let created = created.ok_or(SigError::MissingParameter("created"))?;
    let keyid = keyid.ok_or(SigError::MissingParameter("keyid"))?;
    let nonce = nonce.ok_or(SigError::MissingParameter("nonce"))?;
    if keyid.is_empty()
        || keyid.len() > MAX_KEYID_LEN
        || nonce.is_empty()
        || nonce.len() > MAX_NONCE_LEN
    {
        return Err(SigError::BadParameter);
    }
    if expires.is_some_and(|e| e < created) {
        return Err(SigError::BadParameter);
    }
    Ok(SignatureParams {
        label: input.label.to_owned(),
        keyid,
        nonce,
        created,
        expires,
        components: input.components.clone(),
    })
}

/// The parts of an absolute `http(s)` target URI that derived components need.
struct Target<'a> {
    /// Lowercased host, default port dropped (RFC 9421 §2.2.3).
    authority: String,
    /// The path, `/` if empty.
    path: &'a str,
    /// The query without `?`, if any.
    query: Option<&'a str>,
}

fn parse_target(uri: &str) -> Result<Target<'_>, SigError> {
    if uri.len() > MAX_TARGET_URI_LEN {
        return Err(SigError::TooLarge);
    }
    if !uri.bytes().all(|b| (0x21..=0x7e).contains(&b)) || uri.contains('#') {
        return Err(SigError::BadTargetUri);
    }
    let (scheme, rest) = uri.split_once("://").ok_or(SigError::BadTargetUri)?;
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        443
    } else if scheme.eq_ignore_ascii_case("http") {
        80
    } else {
        return Err(SigError::BadTargetUri);
    };
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    let (host, port) = crate::dpop::split_host_port(authority).ok_or(SigError::BadTargetUri)?;
    let mut norm = host.to_ascii_lowercase();
    if let Some(p) = port.filter(|&p| p != default_port) {
        norm.push(':');
        norm.push_str(&p.to_string());
    }
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    Ok(Target {
        authority: norm,
        path: if path.is_empty() { "/" } else { path },
        query,
    })
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A covered header's value: trimmed of SP/HTAB, bounded, visible ASCII, SP and HTAB only
/// (so no line break can enter the signature base).
fn header_value<'a>(v: Option<&'a str>, name: &'static str) -> Result<&'a str, SigError> {
    let v = v.ok_or(SigError::MissingHeader(name))?;
    if v.len() > MAX_HEADER_LEN {
        return Err(SigError::TooLarge);
    }
    if !v.bytes().all(|b| b == b'\t' || (0x20..=0x7e).contains(&b)) {
        return Err(SigError::BadHeaderValue);
    }
    Ok(v.trim_matches([' ', '\t']))
}

fn build_base(
    req: &SignedRequest<'_>,
    components: &[String],
    raw_params: &str,
) -> Result<String, SigError> {
    if req.method.is_empty() || req.method.len() > 32 || !req.method.bytes().all(is_tchar) {
        return Err(SigError::BadMethod);
    }
    // Always validated: @target-uri is required.
    let target = parse_target(req.target_uri)?;
    let mut base = String::with_capacity(256 + req.target_uri.len() + raw_params.len());
    let mut query_buf = String::new();
    for c in components {
        let value: &str = match c.as_str() {
            "@method" => req.method,
            "@target-uri" => req.target_uri,
            "@authority" => &target.authority,
            "@path" => target.path,
            "@query" => {
                // RFC 9421 §2.2.7: "?" followed by the query; "?" alone if there is none.
                query_buf.clear();
                query_buf.push('?');
                query_buf.push_str(target.query.unwrap_or(""));
                &query_buf
            }
            "content-digest" => header_value(req.content_digest, "content-digest")?,
            "content-type" => header_value(req.content_type, "content-type")?,
            "content-length" => header_value(req.content_length, "content-length")?,
            _ => return Err(SigError::UnknownComponent),
        };
        base.push('"');
        base.push_str(c);
        base.push_str("\": ");
        base.push_str(value);
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(raw_params);
    Ok(base)
}

// ---- a strict parser for the RFC 8941 subset used here ------------------------------

/// A bare item (RFC 8941 §3.3). Decimals are not supported and are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Bare {
    Integer(i64),
    String(String),
    Token(String),
    Bytes(Vec<u8>),
    Bool(bool),
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor over `s` with leading and trailing SP/HTAB removed (RFC 8941 §4.2 step 1
    /// and the HTTP OWS around a field value).
    fn new(s: &'a str) -> Self {
        Cursor {
            s: s.trim_matches([' ', '\t']),
            i: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), SigError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(SigError::Malformed)
        }
    }

    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn skip_sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// `key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )`
    fn key(&mut self) -> Result<&'a str, SigError> {
        let start = self.i;
        match self.peek() {
            Some(b'a'..=b'z' | b'*') => self.i += 1,
            _ => return Err(SigError::Malformed),
        }
        while let Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*') = self.peek() {
            self.i += 1;
        }
        if self.i - start > MAX_LABEL_LEN {
            return Err(SigError::TooLarge);
        }
        Ok(&self.s[start..self.i])
    }

    /// `sf-string = DQUOTE *( unescaped / "\" ( DQUOTE / "\" ) ) DQUOTE`, printable ASCII.
    fn string(&mut self) -> Result<String, SigError> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(SigError::Malformed),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(char::from(c));
                            self.i += 1;
                        }
                        _ => return Err(SigError::Malformed),
                    }
                }
                Some(c @ 0x20..=0x7e) => {
                    out.push(char::from(c));
                    self.i += 1;
                }
                Some(_) => return Err(SigError::Malformed),
            }
        }
    }

    /// `sf-integer = ["-"] 1*15DIGIT`; a following `.` (a decimal) is refused.
    fn integer(&mut self) -> Result<i64, SigError> {
        let neg = self.eat(b'-');
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        let digits = &self.s[start..self.i];
        if digits.is_empty() || digits.len() > 15 || self.peek() == Some(b'.') {
            return Err(SigError::Malformed);
        }
        let n: i64 = digits.parse().map_err(|_| SigError::Malformed)?;
        Ok(if neg { -n } else { n })
    }

    /// `sf-binary = ":" *(base64) ":"`.
    fn bytes(&mut self) -> Result<Vec<u8>, SigError> {
        self.expect(b':')?;
        let start = self.i;
        while let Some(b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=') = self.peek() {
            self.i += 1;
        }
        let b64 = &self.s[start..self.i];
        self.expect(b':')?;
        SF_B64.decode(b64).map_err(|_| SigError::Malformed)
    }

    /// `sf-token = ( ALPHA / "*" ) *( tchar / ":" / "/" )`.
    fn token(&mut self) -> Result<String, SigError> {
        let start = self.i;
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() || c == b'*' => self.i += 1,
            _ => return Err(SigError::Malformed),
        }
        while let Some(c) = self.peek() {
            if is_tchar(c) || c == b':' || c == b'/' {
                self.i += 1;
            } else {
                break;
            }
        }
        Ok(self.s[start..self.i].to_owned())
    }

    fn bare_item(&mut self) -> Result<Bare, SigError> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.integer().map(Bare::Integer),
            Some(b'"') => self.string().map(Bare::String),
            Some(b':') => self.bytes().map(Bare::Bytes),
            Some(b'?') => {
                self.i += 1;
                match self.peek() {
                    Some(b'0') => {
                        self.i += 1;
                        Ok(Bare::Bool(false))
                    }
                    Some(b'1') => {
                        self.i += 1;
                        Ok(Bare::Bool(true))
                    }
                    _ => Err(SigError::Malformed),
                }
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'*' => self.token().map(Bare::Token),
            _ => Err(SigError::Malformed),
        }
    }

    /// `parameters = *( ";" *SP parameter )`; duplicates refused (stricter than RFC 8941,
    /// which keeps the last), at most [`MAX_PARAMS`].
    fn params(&mut self) -> Result<Vec<(&'a str, Bare)>, SigError> {
        let mut out: Vec<(&'a str, Bare)> = Vec::new();
        while self.eat(b';') {
            self.skip_sp();
            let k = self.key()?;
            let v = if self.eat(b'=') {
                self.bare_item()?
            } else {
                Bare::Bool(true)
            };
            if out.iter().any(|(seen, _)| *seen == k) {
                return Err(SigError::BadParameter);
            }
            if out.len() >= MAX_PARAMS {
                return Err(SigError::TooLarge);
            }
            out.push((k, v));
        }
        Ok(out)
    }

    /// After one dictionary member: the end, or a `,` that starts another member.
    fn end_of_single_member(&mut self) -> Result<(), SigError> {
        self.skip_ows();
        if self.at_end() {
            Ok(())
        } else if self.peek() == Some(b',') {
            Err(SigError::MultipleSignatures)
        } else {
            Err(SigError::Malformed)
        }
    }
}

/// `Signature-Input`: exactly one member `label=("c1" "c2" …);params`.
fn parse_signature_input(v: &str) -> Result<SignatureInput<'_>, SigError> {
    let mut c = Cursor::new(v);
    let label = c.key()?;
    c.expect(b'=')?;
    let start = c.i;
    c.expect(b'(')?;
    let mut components = Vec::new();
    loop {
        c.skip_sp();
        if c.eat(b')') {
            break;
        }
        if components.len() >= MAX_COMPONENTS {
            return Err(SigError::TooLarge);
        }
        if c.peek() != Some(b'"') {
            return Err(SigError::Malformed);
        }
        let name = c.string()?;
        if c.peek() == Some(b';') {
            // Component parameters (`;sf`, `;key`, `;bs`, `;req`, `;name`) are not supported.
            return Err(SigError::UnknownComponent);
        }
        if !matches!(c.peek(), Some(b' ' | b')')) {
            return Err(SigError::Malformed);
        }
        components.push(name);
    }
    let params = c.params()?;
    let raw_params = &c.s[start..c.i];
    c.end_of_single_member()?;
    Ok(SignatureInput {
        label,
        components,
        raw_params,
        params,
    })
}

/// `Signature`: exactly one member `label=:base64:`, no parameters.
fn parse_signature_field(v: &str) -> Result<(&str, Vec<u8>), SigError> {
    let mut c = Cursor::new(v);
    let label = c.key()?;
    c.expect(b'=')?;
    if c.peek() != Some(b':') {
        return Err(SigError::Malformed);
    }
    let bytes = c.bytes()?;
    if c.peek() == Some(b';') {
        return Err(SigError::Malformed);
    }
    c.end_of_single_member()?;
    Ok((label, bytes))
}

/// `Content-Digest`: a dictionary of `alg=:bytes:` members, no parameters, no duplicates.
fn parse_digest_dict(v: &str) -> Option<Vec<(&str, Vec<u8>)>> {
    let mut c = Cursor::new(v);
    let mut out: Vec<(&str, Vec<u8>)> = Vec::new();
    loop {
        let k = c.key().ok()?;
        if !c.eat(b'=') || c.peek() != Some(b':') {
            return None;
        }
        let b = c.bytes().ok()?;
        if c.peek() == Some(b';') || out.iter().any(|(seen, _)| *seen == k) {
            return None;
        }
        if out.len() >= MAX_DIGEST_MEMBERS {
            return None;
        }
        out.push((k, b));
        c.skip_ows();
        if c.at_end() {
            return Some(out);
        }
        if !c.eat(b',') {
            return None;
        }
        c.skip_ows();
        if c.at_end() {
            return None;
        }
    }
}

/// Serialises an sf-string, refusing what cannot be one (or is empty or over 128 bytes).
fn sf_string_serialize(s: &str) -> Result<String, SigError> {
    if s.is_empty() || s.len() > MAX_NONCE_LEN.max(MAX_KEYID_LEN) {
        return Err(SigError::BadParameter);
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => return Err(SigError::BadParameter),
        }
    }
    out.push('"');
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn signature_input_raw_params_are_kept_verbatim() {
        let v = r#"sig1=("@method" "@target-uri");created=1;keyid="k";nonce="n""#;
        let p = parse_signature_input(v).unwrap();
        assert_eq!(p.label, "sig1");
        assert_eq!(p.components, ["@method", "@target-uri"]);
        assert_eq!(
            p.raw_params,
            r#"("@method" "@target-uri");created=1;keyid="k";nonce="n""#
        );
        assert_eq!(p.params.len(), 3);
    }

    #[test]
    fn sf_strings_escape_and_refuse() {
        assert_eq!(sf_string_serialize(r#"a"b\c"#).unwrap(), r#""a\"b\\c""#);
        assert!(sf_string_serialize("").is_err());
        assert!(sf_string_serialize("a\nb").is_err());
        assert!(sf_string_serialize("é").is_err());
        let mut c = Cursor::new(r#""a\"b\\c""#);
        assert_eq!(c.string().unwrap(), r#"a"b\c"#);
        assert!(Cursor::new(r#""a\nb""#).string().is_err());
        assert!(Cursor::new("\"abc").string().is_err());
    }

    #[test]
    fn integers_and_bare_items() {
        assert_eq!(Cursor::new("123").integer().unwrap(), 123);
        assert_eq!(Cursor::new("-5").integer().unwrap(), -5);
        assert!(Cursor::new("1.5").integer().is_err());
        assert!(Cursor::new("1234567890123456").integer().is_err());
        assert!(Cursor::new("-").integer().is_err());
        assert_eq!(Cursor::new("?1").bare_item().unwrap(), Bare::Bool(true));
        assert_eq!(
            Cursor::new("tok/en").bare_item().unwrap(),
            Bare::Token("tok/en".into())
        );
        assert_eq!(
            Cursor::new(":AQI=:").bare_item().unwrap(),
            Bare::Bytes(vec![1, 2])
        );
        assert_eq!(
            Cursor::new(":AQI:").bare_item().unwrap(),
            Bare::Bytes(vec![1, 2])
        );
        assert!(
            Cursor::new(":AQJ=:").bare_item().is_err(),
            "non-canonical trailing bits"
        );
    }

    #[test]
    fn target_parts() {
        let t = parse_target("HTTPS://API.Example:443/a/b?x=1&y").unwrap();
        assert_eq!(t.authority, "api.example");
        assert_eq!(t.path, "/a/b");
        assert_eq!(t.query, Some("x=1&y"));
        let t = parse_target("http://h:8080?q").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path, t.query),
            ("h:8080", "/", Some("q"))
        );
        for bad in [
            "/relative",
            "https://u@h/",
            "https://h/#f",
            "ftp://h/",
            "https://h/a b",
            "https:///",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }
}
