//! The access token: an RFC 9068-shaped JWS JWT, and the checks it must pass.

use std::mem::MaybeUninit;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::error::TokenError;
use crate::{b64, Denylist, SessionId, UnixTime, UserId};

/// The longest token accepted, in bytes (checked before anything is split or decoded).
pub const MAX_TOKEN_LEN: usize = 8192;
const MAX_HEADER_LEN: usize = 256;
const MAX_SIGNATURE_LEN: usize = 128;
/// Decoded payloads up to this size are decoded on the stack.
pub(crate) const PAYLOAD_STACK: usize = 1024;

/// The claims of a tessera access token.
///
/// Deserialisation is strict: unknown names, duplicate names and mistyped values
/// (`"exp": "9"`) are refused; numbers must fit in `u64`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessClaims {
    /// Issuer: tessera's public origin.
    pub iss: CompactString,
    /// Audience: the protected API.
    pub aud: CompactString,
    /// The stable user id.
    pub sub: CompactString,
    /// The session (refresh family) id.
    pub sid: CompactString,
    /// Issued at.
    pub iat: u64,
    /// Not before.
    pub nbf: u64,
    /// Expires.
    pub exp: u64,
    /// Token id.
    pub jti: CompactString,
    /// The user's roles.
    pub roles: Vec<CompactString>,
    /// The user's login name.
    pub username: CompactString,
    /// The client the token was issued to (RFC 9068 §2.2): `browser` for the cookie
    /// sessions of the SPA, `api` for the token endpoint's mobile and API clients.
    pub client_id: CompactString,
    /// How the user authenticated for this session (RFC 8176 method values: `pwd` for a
    /// password). Absent in tokens signed before it existed: read as empty.
    #[serde(default)]
    pub amr: Vec<CompactString>,
    /// When the user last authenticated (seconds since the epoch, as OpenID Connect Core
    /// §2 and RFC 9470 use it): a refresh is not an authentication and keeps it. Absent in
    /// tokens signed before it existed: read as 0.
    #[serde(default)]
    pub auth_time: u64,
    /// Confirmation (RFC 7800): the DPoP key thumbprint when bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Cnf>,
}

/// The `cnf` claim of a DPoP-bound token (RFC 9449 §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cnf {
    /// The JWK SHA-256 thumbprint (RFC 7638) of the client's key, base64url.
    pub jkt: CompactString,
}

impl AccessClaims {
    /// A fixed example, for docs and tests.
    pub fn example(now: UnixTime) -> Self {
        AccessClaims {
            iss: "https://issuer.example".into(),
            aud: "https://app.example".into(),
            sub: UserId([1; 16]).to_string().into(),
            sid: SessionId([2; 16]).to_string().into(),
            iat: now.0,
            nbf: now.0,
            exp: now.0 + 300,
            jti: "jti-example".into(),
            roles: vec!["user".into()],
            username: "alice".into(),
            client_id: "browser".into(),
            amr: vec!["pwd".into()],
            auth_time: now.0,
            cnf: None,
        }
    }

    /// Parses claims JSON strictly (see the type's documentation); `None` if refused.
    /// The verification path's parser: a fast path for the layout tessera signs, the
    /// derived serde implementation for anything else, with the same verdicts.
    pub fn from_json(json: &[u8]) -> Option<Self> {
        crate::claims_json::parse(json)
    }

    /// Decodes a payload segment strictly (one decoder, [`b64::decode_uninit`]), on the
    /// stack when it fits (a tessera token's claims are a few hundred bytes), else in
    /// `heap`'s spare capacity. Neither buffer is zeroed first.
    pub(crate) fn decode_payload<'b>(
        payload: &str,
        stack: &'b mut [MaybeUninit<u8>; PAYLOAD_STACK],
        heap: &'b mut Vec<u8>,
    ) -> Result<&'b [u8], TokenError> {
        let most = payload.len() / 4 * 3 + 2;
        let out: &'b mut [MaybeUninit<u8>] = if most <= stack.len() {
            stack
        } else {
            heap.reserve(most);
            heap.spare_capacity_mut()
        };
        b64::decode_uninit(payload, out).ok_or(TokenError::Malformed)
    }

    /// The session id, parsed.
    pub fn session_id(&self) -> Option<SessionId> {
        SessionId::parse(&self.sid)
    }

    /// The user id, parsed.
    pub fn user_id(&self) -> Option<UserId> {
        UserId::parse(&self.sub)
    }
}

/// The three segments of a compact JWS, bounded, not yet trusted.
///
/// Only lengths and separators (exactly three segments) are checked here; no segment is
/// trusted to be base64url until it has been through its own check in [`crate::KeyRing`],
/// each before any cryptography and with no second pass over the bytes: the header must
/// equal, byte for byte, the header of one of our keys (which is base64url); the payload
/// is checked by its strict decoding; the signature by its strict decoding into exactly 32
/// or 64 bytes.
#[derive(Debug, Clone, Copy)]
pub struct TokenParts<'a> {
    /// The protected header segment.
    pub header: &'a str,
    /// The payload (claims) segment.
    pub payload: &'a str,
    /// The signature segment.
    pub signature: &'a str,
}

impl<'a> TokenParts<'a> {
    /// Splits a compact JWS: exactly three non-empty segments, within bounds.
    /// JSON serialization and JWE (five segments) are refused here.
    pub fn from_compact(token: &'a str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLarge);
        }
        let mut it = token.splitn(3, '.');
        let (Some(header), Some(payload), Some(signature)) = (it.next(), it.next(), it.next())
        else {
            return Err(TokenError::Malformed);
        };
        Self::checked(header, payload, signature)
    }

    /// Reassembles a split-cookie token: the readable claims cookie holds the payload, the
    /// HttpOnly cookie holds `header.signature`.
    pub fn from_split(claims_cookie: &'a str, sig_cookie: &'a str) -> Result<Self, TokenError> {
        if claims_cookie.len() + sig_cookie.len() + 1 > MAX_TOKEN_LEN {
            return Err(TokenError::TooLarge);
        }
        // `.` is ASCII, so the split falls on character boundaries.
        let Some(dot) = memchr::memchr(b'.', sig_cookie.as_bytes()) else {
            return Err(TokenError::Malformed);
        };
        let (header, signature) = (&sig_cookie[..dot], &sig_cookie[dot + 1..]);
        // As in the compact form, the payload holds no separator, so both forms split the
        // same bytes the same way (a fast byte search; its other characters are checked by
        // its strict decoding, and a second '.' in the signature cookie by the signature's).
        if memchr::memchr(b'.', claims_cookie.as_bytes()).is_some() {
            return Err(TokenError::Malformed);
        }
        Self::checked(header, claims_cookie, signature)
    }

    fn checked(header: &'a str, payload: &'a str, signature: &'a str) -> Result<Self, TokenError> {
        if header.len() > MAX_HEADER_LEN || signature.len() > MAX_SIGNATURE_LEN {
            return Err(TokenError::TooLarge);
        }
        if header.is_empty() || payload.is_empty() || signature.is_empty() {
            return Err(TokenError::Malformed);
        }
        // Exactly three segments: the last one holds no further separator (JWE's five
        // segments, or a split cookie `header.x.sig`, end here).
        if memchr::memchr(b'.', signature.as_bytes()).is_some() {
            return Err(TokenError::Malformed);
        }
        Ok(TokenParts {
            header,
            payload,
            signature,
        })
    }

    /// Splits a compact token into the two cookie values of split mode:
    /// `(claims cookie = payload, sig cookie = header.signature)`.
    pub fn split_cookies(token: &str) -> Option<(String, String)> {
        let parts = TokenParts::from_compact(token).ok()?;
        Some((
            parts.payload.to_owned(),
            format!("{}.{}", parts.header, parts.signature),
        ))
    }
}

/// What a token must say to be accepted here.
#[derive(Debug, Clone)]
pub struct Verifier {
    issuer: String,
    audience: String,
    leeway: u64,
}

impl Verifier {
    /// Accept tokens for exactly this `issuer` and `audience`, allowing `leeway_secs`
    /// of clock skew (capped at 60 s, RFC 8725 practice).
    pub fn new(issuer: &str, audience: &str, leeway_secs: u64) -> Self {
        Verifier {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway: leeway_secs.min(60),
        }
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// The audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }
    /// The leeway in seconds.
    pub fn leeway(&self) -> u64 {
        self.leeway
    }

    pub(crate) fn check(
        &self,
        claims: &AccessClaims,
        denylist: &Denylist,
        now: UnixTime,
    ) -> Result<(), TokenError> {
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if claims.aud != self.audience {
            return Err(TokenError::WrongAudience);
        }
        if now.0 >= claims.exp.saturating_add(self.leeway) {
            return Err(TokenError::Expired);
        }
        let future = now.0.saturating_add(self.leeway);
        if claims.nbf > future || claims.iat > future {
            return Err(TokenError::NotYetValid);
        }
        let (Some(sid), Some(sub)) = (claims.session_id(), claims.user_id()) else {
            return Err(TokenError::BadClaims);
        };
        if denylist.denies(&sid, &sub, UnixTime(claims.iat)) {
            return Err(TokenError::Revoked);
        }
        Ok(())
    }
}

/// A token whose signature, claims and revocation status have been checked.
/// Only [`crate::KeyRing::verify`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    claims: std::sync::Arc<AccessClaims>,
    kid: std::sync::Arc<str>,
}

impl VerifiedToken {
    pub(crate) fn new(claims: std::sync::Arc<AccessClaims>, kid: std::sync::Arc<str>) -> Self {
        VerifiedToken { claims, kid }
    }
    /// The verified claims.
    pub fn claims(&self) -> &AccessClaims {
        &self.claims
    }
    /// Consumes the token, keeping its (shared) claims.
    pub fn into_shared_claims(self) -> std::sync::Arc<AccessClaims> {
        self.claims
    }
    /// Consumes the token, keeping its claims.
    pub fn into_claims(self) -> AccessClaims {
        std::sync::Arc::unwrap_or_clone(self.claims)
    }
    /// The id of the key that signed it.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}
