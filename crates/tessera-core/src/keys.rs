//! Signing keys and the key ring.
//!
//! A key's life is given by timestamps, so every node derives the same state from the
//! same rows: it is *next* before `activates_at` (published, verifies, does not sign),
//! *active* while it is the newest activated key (signs), *retired* once a newer key is
//! active or `retires_at` has passed (verifies and is published until `expires_at`).

use std::fmt;

use ring::hmac;
use ring::rand::SystemRandom;
use ring::signature::{self, Ed25519KeyPair, KeyPair};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::b64;
use crate::error::TokenError;
use crate::ids::random_bytes;
use crate::token::{AccessClaims, TokenParts, VerifiedToken, Verifier, PAYLOAD_STACK};
use crate::{Denylist, UnixTime};

/// A signature algorithm tessera signs access tokens with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub enum Algorithm {
    /// Ed25519 (RFC 8037). The default: downstream services verify with the public key.
    EdDSA,
    /// HMAC-SHA256 with a 256-bit random key. Only tessera itself can verify.
    HS256,
}

impl Algorithm {
    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::HS256 => "HS256",
        }
    }

    /// Parses a JOSE `alg` name (exact, case-sensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "EdDSA" => Some(Algorithm::EdDSA),
            "HS256" => Some(Algorithm::HS256),
            _ => None,
        }
    }
}

// A process holds a handful of keys: the size difference costs nothing, boxing the MAC
// state would add an indirection to every check.
#[allow(clippy::large_enum_variant)]
enum Material {
    Ed25519 {
        pair: Ed25519KeyPair,
        pkcs8: Zeroizing<Vec<u8>>,
        public: [u8; 32],
    },
    Hmac {
        key: hmac::Key,
        /// The MAC state after this key's header segment and the '.' that follows it:
        /// every token this key verifies starts with exactly those bytes, so their
        /// SHA-256 blocks are hashed once here, not on every request.
        after_header: hmac::Context,
        secret: Zeroizing<Vec<u8>>,
    },
}

/// A signing key with its life timestamps. The private part never prints.
pub struct SigningKey {
    kid: String,
    kid_shared: std::sync::Arc<str>,
    alg: Algorithm,
    created_at: UnixTime,
    activates_at: UnixTime,
    retires_at: Option<UnixTime>,
    expires_at: Option<UnixTime>,
    material: Material,
    /// The exact header segment tokens signed by this key carry.
    header_b64: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("activates_at", &self.activates_at)
            .field("retires_at", &self.retires_at)
            .field("expires_at", &self.expires_at)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// Why key material could not be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The PKCS#8 document or HMAC secret is not a valid key for the algorithm.
    #[error("invalid key material")]
    Invalid,
    /// An HMAC secret shorter than the hash output (RFC 8725 §3.5, RFC 7518 §3.2).
    #[error("HS256 secret of {0} bytes is too short: at least 32 bytes (256 bits) are required")]
    TooShort(usize),
}

impl SigningKey {
    /// A new random key that signs from `now`.
    pub fn generate(alg: Algorithm, now: UnixTime) -> Result<Self, KeyError> {
        let secret: Vec<u8> = match alg {
            Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(|_| KeyError::Invalid)?
                .as_ref()
                .to_vec(),
            Algorithm::HS256 => random_bytes::<32>().to_vec(),
        };
        let kid = b64::encode(random_bytes::<9>());
        Self::from_parts(kid, alg, now, now, None, None, &secret)
    }

    /// A key from stored parts; `secret` is the PKCS#8 document (EdDSA) or the raw HMAC
    /// key (HS256, at least 32 bytes).
    pub fn from_parts(
        kid: String,
        alg: Algorithm,
        created_at: UnixTime,
        activates_at: UnixTime,
        retires_at: Option<UnixTime>,
        expires_at: Option<UnixTime>,
        secret: &[u8],
    ) -> Result<Self, KeyError> {
        if kid.is_empty() || kid.len() > 64 || !b64::is_b64url(&kid) {
            return Err(KeyError::Invalid);
        }
        let header_b64 = b64::encode(format!(
            r#"{{"alg":"{}","typ":"at+jwt","kid":"{}"}}"#,
            alg.name(),
            kid
        ));
        let material = match alg {
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(secret)
                    .map_err(|_| KeyError::Invalid)?;
                let public: [u8; 32] = pair
                    .public_key()
                    .as_ref()
                    .try_into()
                    .map_err(|_| KeyError::Invalid)?;
                Material::Ed25519 {
                    pair,
                    pkcs8: Zeroizing::new(secret.to_vec()),
                    public,
                }
            }
            Algorithm::HS256 => {
                // RFC 8725 §3.5: HMAC keys are random and at least as long as the hash.
                if secret.len() < 32 {
                    return Err(KeyError::TooShort(secret.len()));
                }
                let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
                let mut after_header = hmac::Context::with_key(&key);
                after_header.update(header_b64.as_bytes());
                after_header.update(b".");
                Material::Hmac {
                    key,
                    after_header,
                    secret: Zeroizing::new(secret.to_vec()),
                }
            }
        };
        Ok(SigningKey {
            header_b64,
            kid_shared: kid.as_str().into(),
            kid,
            alg,
            created_at,
            activates_at,
            retires_at,
            expires_at,
            material,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }
    /// The algorithm this key signs and verifies with, and no other.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }
    /// When the key was made.
    pub fn created_at(&self) -> UnixTime {
        self.created_at
    }
    /// When it starts signing.
    pub fn activates_at(&self) -> UnixTime {
        self.activates_at
    }
    /// When it stops signing, if decided.
    pub fn retires_at(&self) -> Option<UnixTime> {
        self.retires_at
    }
    /// When it stops verifying and leaves JWKS, if decided.
    pub fn expires_at(&self) -> Option<UnixTime> {
        self.expires_at
    }

    /// The private key bytes, for sealing under the master key before storage.
    /// Nothing else should call this.
    pub fn export_secret(&self) -> Zeroizing<Vec<u8>> {
        match &self.material {
            Material::Ed25519 { pkcs8, .. } => pkcs8.clone(),
            Material::Hmac { secret, .. } => secret.clone(),
        }
    }

    /// The public JWK (RFC 7517/8037), or `None` for a symmetric key, which is never published.
    pub fn public_jwk(&self) -> Option<PublicJwk> {
        match &self.material {
            Material::Ed25519 { public, .. } => Some(PublicJwk {
                kty: "OKP",
                crv: "Ed25519",
                x: b64::encode(public),
                kid: self.kid.clone(),
                alg: "EdDSA",
                use_: "sig",
            }),
            Material::Hmac { .. } => None,
        }
    }

    fn sign_bytes(&self, msg: &[u8]) -> Vec<u8> {
        match &self.material {
            Material::Ed25519 { pair, .. } => pair.sign(msg).as_ref().to_vec(),
            Material::Hmac { key, .. } => hmac::sign(key, msg).as_ref().to_vec(),
        }
    }

    /// Checks `sig_b64` over this key's header segment, '.', and `payload`: callers have
    /// matched the token's header to [`SigningKey::header_b64`] byte for byte.
    fn verify_signature(&self, payload: &str, sig_b64: &str) -> bool {
        match &self.material {
            Material::Ed25519 { public, .. } => {
                let Some(sig) = b64::decode_array::<64>(sig_b64) else {
                    return false;
                };
                let header = &self.header_b64;
                let mut msg = Vec::with_capacity(header.len() + 1 + payload.len());
                msg.extend_from_slice(header.as_bytes());
                msg.push(b'.');
                msg.extend_from_slice(payload.as_bytes());
                signature::UnparsedPublicKey::new(&signature::ED25519, public)
                    .verify(&msg, &sig)
                    .is_ok()
            }
            Material::Hmac { after_header, .. } => {
                let Some(tag) = b64::decode_array::<32>(sig_b64) else {
                    return false;
                };
                let mut ctx = after_header.clone();
                ctx.update(payload.as_bytes());
                let expected = ctx.sign();
                // Constant-time comparison of the tags.
                ring_ct_eq(expected.as_ref(), &tag)
            }
        }
    }
}

/// Constant-time equality of two byte strings (length is not secret).
pub(crate) fn ring_ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

/// A public key as published in `/.well-known/jwks.json`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PublicJwk {
    /// Key type (`OKP`).
    pub kty: &'static str,
    /// Curve (`Ed25519`).
    pub crv: &'static str,
    /// The public key, base64url.
    pub x: String,
    /// Key id.
    pub kid: String,
    /// The only algorithm this key is for.
    pub alg: &'static str,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: &'static str,
}

/// Where a key stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Published and verifying; will sign from `activates_at`.
    Next,
    /// Signs new tokens.
    Active,
    /// Superseded; verifies tokens it signed until `expires_at`.
    Retired,
    /// Past `expires_at`: neither verifies nor is published.
    Expired,
}

/// The keys a node verifies with and the one it signs with, as of one moment.
///
/// Built anew whenever keys change (rotation, reload from the store); lookups are a
/// linear scan over a handful of keys, which beats hashing at this size.
pub struct KeyRing {
    keys: Vec<SigningKey>,
    active: Option<usize>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("keys", &self.keys)
            .field("active", &self.active.map(|i| &self.keys[i].kid))
            .finish()
    }
}

impl KeyRing {
    /// A ring of `keys` as of `now`; expired keys are dropped.
    pub fn new(keys: Vec<SigningKey>, now: UnixTime) -> Self {
        let keys: Vec<SigningKey> = keys
            .into_iter()
            .filter(|k| k.expires_at.is_none_or(|e| e > now))
            .collect();
        let active = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.activates_at <= now && k.retires_at.is_none_or(|r| r > now))
            .max_by_key(|(_, k)| (k.activates_at, k.created_at))
            .map(|(i, _)| i);
        KeyRing { keys, active }
    }

    /// The status of `key` in this ring at `now`.
    pub fn status(&self, kid: &str, now: UnixTime) -> KeyStatus {
        match self.keys.iter().position(|k| k.kid == kid) {
            None => KeyStatus::Expired,
            Some(i) if Some(i) == self.active => KeyStatus::Active,
            Some(i) if self.keys[i].activates_at > now => KeyStatus::Next,
            Some(_) => KeyStatus::Retired,
        }
    }

    /// Every key still verifying, oldest first.
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// The key that signs now, if any.
    pub fn active(&self) -> Option<&SigningKey> {
        self.active.map(|i| &self.keys[i])
    }

    /// The public keys to publish: next, active and retired-but-verifying asymmetric keys.
    pub fn jwks(&self) -> Vec<PublicJwk> {
        self.keys
            .iter()
            .filter_map(SigningKey::public_jwk)
            .collect()
    }

    /// Signs `claims` with the active key, as a compact JWS.
    pub fn sign(&self, claims: &AccessClaims) -> Option<String> {
        let key = self.active()?;
        let payload = serde_json::to_vec(claims).ok()?;
        let mut out = String::with_capacity(key.header_b64.len() + payload.len() * 4 / 3 + 100);
        out.push_str(&key.header_b64);
        out.push('.');
        b64::encode_into(&payload, &mut out);
        let sig = key.sign_bytes(out.as_bytes());
        out.push('.');
        b64::encode_into(&sig, &mut out);
        Some(out)
    }

    /// Verifies a compact JWS access token. See [`KeyRing::verify_parts`].
    pub fn verify(
        &self,
        token: &str,
        verifier: &Verifier,
        denylist: &Denylist,
        now: UnixTime,
    ) -> Result<VerifiedToken, TokenError> {
        let parts = TokenParts::from_compact(token)?;
        self.verify_parts(parts, verifier, denylist, now)
    }

    /// The one road from untrusted bytes to a [`VerifiedToken`].
    ///
    /// Order matters: bounds and shape first, then the header must be byte-for-byte the
    /// header of one of our keys (so `alg` comes from the key, `none`, foreign `alg`,
    /// `jku`/`jwk`/`x5u`/`crit` and duplicate names cannot pass), then the signature, and
    /// only then are claims parsed and checked, ending with the denylist.
    pub fn verify_parts(
        &self,
        parts: TokenParts<'_>,
        verifier: &Verifier,
        denylist: &Denylist,
        now: UnixTime,
    ) -> Result<VerifiedToken, TokenError> {
        let (claims, kid) = self.verify_signed(&parts)?;
        verifier.check(&claims, denylist, now)?;
        Ok(VerifiedToken::new(claims, kid))
    }

    /// Like [`KeyRing::verify_parts`], but a token seen before skips the header match,
    /// signature and claim parsing (only after they all passed once). Issuer, audience,
    /// time and denylist checks run on every call, so revocation and expiry win over the
    /// cache. Clear the cache whenever the ring is replaced.
    pub fn verify_parts_cached(
        &self,
        parts: TokenParts<'_>,
        verifier: &Verifier,
        denylist: &Denylist,
        now: UnixTime,
        cache: &crate::VerifyCache,
    ) -> Result<VerifiedToken, TokenError> {
        if let Some((claims, kid)) = cache.get(&parts) {
            verifier.check(&claims, denylist, now)?;
            return Ok(VerifiedToken::new(claims, kid));
        }
        let (claims, kid) = self.verify_signed(&parts)?;
        verifier.check(&claims, denylist, now)?;
        cache.insert(&parts, &claims, &kid);
        Ok(VerifiedToken::new(claims, kid))
    }

    fn verify_signed(
        &self,
        parts: &TokenParts<'_>,
    ) -> Result<(std::sync::Arc<AccessClaims>, std::sync::Arc<str>), TokenError> {
        let key = self.key_for_header(parts.header)?;
        // Strict decoding is the payload's alphabet check: malformed input never reaches
        // the signature.
        let mut stack = [std::mem::MaybeUninit::uninit(); PAYLOAD_STACK];
        let mut heap = Vec::new();
        let json = AccessClaims::decode_payload(parts.payload, &mut stack, &mut heap)?;
        if !key.verify_signature(parts.payload, parts.signature) {
            return Err(Self::classify_bad_signature(parts.signature));
        }
        let claims = crate::claims_json::parse_shared(json).ok_or(TokenError::BadClaims)?;
        Ok((claims, std::sync::Arc::clone(&key.kid_shared)))
    }

    fn key_for_header(&self, header: &str) -> Result<&SigningKey, TokenError> {
        if let Some(k) = self.keys.iter().find(|k| k.header_b64 == header) {
            return Ok(k);
        }
        Err(self.classify_bad_header(header))
    }

    /// Only on the failure path: a signature outside the alphabet is malformed, not wrong.
    #[cold]
    fn classify_bad_signature(signature: &str) -> TokenError {
        if b64::is_b64url(signature) {
            TokenError::BadSignature
        } else {
            TokenError::Malformed
        }
    }

    /// Only on the failure path: says why a header matched no key, for logs and tests.
    #[cold]
    fn classify_bad_header(&self, header: &str) -> TokenError {
        let Some(bytes) = b64::decode(header) else {
            return TokenError::Malformed;
        };
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return TokenError::BadHeader;
        };
        let alg = value.get("alg").and_then(|v| v.as_str());
        let kid = value.get("kid").and_then(|v| v.as_str());
        match (alg, kid) {
            (Some(alg), Some(kid)) => match self.keys.iter().find(|k| k.kid == kid) {
                None => TokenError::UnknownKey,
                Some(k) if k.alg.name() != alg => TokenError::AlgorithmMismatch,
                Some(_) => TokenError::BadHeader,
            },
            (Some(alg), None) if Algorithm::parse(alg).is_none() => TokenError::AlgorithmMismatch,
            (None, _) => TokenError::AlgorithmMismatch,
            _ => TokenError::BadHeader,
        }
    }
}
