//! RFC 9421 signed requests from service clients: checked from the headers before any
//! body byte is read, the body then buffered within `signatures.max_buffered_bytes`.

use std::sync::Arc;

use axum::body::{Body, HttpBody as _};
use axum::extract::Request;
use axum::http::{header, HeaderMap};

use crate::auth::{self};
use crate::http::error::{AppError, ErrorCode};
use crate::metrics::inc;
use crate::state::AppState;

fn one_header<'a>(h: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, AppError> {
    let mut it = h.get_all(name).iter();
    let first = it.next();
    if it.next().is_some() {
        return Err(AppError::invalid_request("repeated signature header"));
    }
    first
        .map(|v| {
            v.to_str()
                .map_err(|_| AppError::invalid_request("malformed header"))
        })
        .transpose()
}

fn signature_refused(why: impl std::fmt::Display) -> AppError {
    tracing::debug!(reason = %why, "request signature refused");
    AppError::unauthenticated().challenge("Signature")
}

/// 503 `overloaded`: `signatures.max_buffered_bytes` of signed bodies are held already.
fn bodies_overloaded() -> AppError {
    AppError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Overloaded,
        "too many signed request bodies at once; try again shortly",
    )
    .retry_after(1)
}

/// 408 `request_timeout`: the body did not arrive within `signatures.body_timeout`.
fn body_too_slow() -> AppError {
    AppError::new(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        ErrorCode::RequestTimeout,
        "the request body took too long",
    )
}

/// The `Content-Length` a request declares, if any; one that is not a number is 400.
fn declared_length(h: &HeaderMap) -> Result<Option<u64>, AppError> {
    match h.get(header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| AppError::invalid_request("malformed Content-Length")),
    }
}

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
enum BodyError {
    /// More than the bytes allowed.
    TooLarge,
    /// The client went away or broke the framing.
    Aborted,
}

/// Reads at most `most` bytes of `body` into one buffer that never holds more than
/// `most` bytes of capacity (grown exactly, not doubled past it).
async fn read_bounded(mut body: Body, most: usize) -> Result<axum::body::Bytes, BodyError> {
    use http_body_util::BodyExt as _;
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| BodyError::Aborted)?.into_data() else {
            continue;
        };
        let needed = buf.len().saturating_add(data.len());
        if needed > most {
            return Err(BodyError::TooLarge);
        }
        if needed > buf.capacity() {
            let grown = needed.max(buf.capacity().saturating_mul(2)).min(most);
            buf.reserve_exact(grown - buf.len());
        }
        buf.extend_from_slice(&data);
    }
    Ok(axum::body::Bytes::from(buf))
}

/// A buffered signed body that keeps its share of `signatures.max_buffered_bytes` until
/// the upstream client has taken and dropped it.
struct HeldBody {
    data: Option<axum::body::Bytes>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl http_body::Body for HeldBody {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(
            self.get_mut()
                .data
                .take()
                .map(|d| Ok(http_body::Frame::data(d))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// A request signed by a service client (RFC 9421, `hmac-sha256`).
///
/// Everything the headers can decide is decided before a byte of the body is read, so a
/// caller without a client's secret never gets a body buffered: `Content-Length` within
/// `limits.max_body_bytes` (413), the signature fields' shape and the covered components
/// (401), a known key id and a MAC that verifies over the signature base — which holds
/// the `Content-Digest` value, not the body — (401, unknown key ids answered like bad
/// signatures), `created` within the window (401), a `Content-Digest` when a body is
/// declared (401). Then the nonce is claimed, on this node and in the store for every
/// node ([`crate::cluster::sync::claim_once`]; 401 if seen, 503 if the store cannot say): consumed
/// now rather than after the body, so two racing copies of one signed request cannot both
/// have their bodies read, and a body that then fails its digest has burnt a nonce only a
/// holder of the signed headers could send. Only then is the body read: its bytes
/// reserved from `signatures.max_buffered_bytes` (503 `overloaded` when they do not fit,
/// no queue), within `signatures.body_timeout` (408), checked against the digest (401),
/// and handed back to be forwarded with `X-Tessera-Client`.
pub(crate) async fn signed_request(
    state: &AppState,
    req: Request,
) -> Result<(Request, String), AppError> {
    use tessera_core::httpsig;
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    let limit = state.config.limits.max_body_bytes;
    let declared = declared_length(h)?;
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(AppError::payload_too_large());
    }
    let target_uri = format!(
        "{}{}",
        auth::csrf::request_origin(state, h),
        parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
    );
    let signed = httpsig::SignedRequest {
        method: parts.method.as_str(),
        target_uri: &target_uri,
        content_digest: one_header(h, "content-digest")?,
        content_type: one_header(h, "content-type")?,
        content_length: one_header(h, "content-length")?,
        has_body: declared.is_some_and(|n| n > 0),
        signature_input: one_header(h, "signature-input")?.unwrap_or_default(),
        signature: one_header(h, "signature")?
            .ok_or_else(|| signature_refused("no Signature header"))?,
    };
    let keyid = httpsig::parse(&signed)
        .map_err(signature_refused)?
        .params
        .keyid;
    let client = crate::auth::clients::lookup(state, &keyid).await;
    let window = state.config.signatures.window.as_secs();
    let head = httpsig::verify_head(
        &signed,
        |_| client.as_ref().map(|c| c.secret.clone()),
        state.clock.now(),
        window,
    )
    .map_err(signature_refused)?;
    let Some(client) = client else {
        return Err(signature_refused("unknown key id"));
    };
    let params = &head.params;
    let claimed = crate::cluster::sync::claim_once(
        state,
        tessera_store::ReplayKind::Signature,
        &params.replay_key(),
        params.replay_expires(window),
    )
    .await;
    match claimed {
        Ok(()) => {}
        Err(crate::cluster::sync::ClaimError::Unavailable(detail)) => {
            return Err(AppError::from(detail))
        }
        Err(e) => return Err(signature_refused(format!("nonce: {e:?}"))),
    }
    let timeout = state.config.signatures.body_timeout;
    let body = if body.is_end_stream() {
        head.check_body(b"").map_err(signature_refused)?;
        Body::empty()
    } else if !head.body_allowed() {
        // No digest covered: only an empty body (e.g. an empty chunked one) may follow, and
        // a single byte of it is refused, so nothing is buffered.
        match tokio::time::timeout(timeout, read_bounded(body, 0)).await {
            Err(_) => return Err(body_too_slow()),
            Ok(Err(BodyError::TooLarge)) => {
                return Err(signature_refused("a body the signature does not cover"))
            }
            Ok(Err(BodyError::Aborted)) => {
                return Err(AppError::invalid_request("request body could not be read"))
            }
            Ok(Ok(_)) => Body::empty(),
        }
    } else {
        // `declared` is within `limit`, and `limit` within the semaphore's size and u32
        // (config validation), so the reservation can succeed once the node has room.
        let most = declared.map_or(limit, |n| usize::try_from(n).unwrap_or(limit));
        let permit = u32::try_from(most)
            .ok()
            .and_then(|n| {
                Arc::clone(&state.sig_body_bytes)
                    .try_acquire_many_owned(n)
                    .ok()
            })
            .ok_or_else(bodies_overloaded)?;
        let bytes = match tokio::time::timeout(timeout, read_bounded(body, most)).await {
            Err(_) => return Err(body_too_slow()),
            Ok(Err(BodyError::TooLarge)) => return Err(AppError::payload_too_large()),
            Ok(Err(BodyError::Aborted)) => {
                return Err(AppError::invalid_request("request body could not be read"))
            }
            Ok(Ok(b)) => b,
        };
        head.check_body(&bytes).map_err(signature_refused)?;
        if bytes.is_empty() {
            Body::empty()
        } else {
            Body::new(HeldBody {
                data: Some(bytes),
                _permit: permit,
            })
        }
    };
    inc(&state.metrics.verify_ok);
    Ok((Request::from_parts(parts, body), client.name.clone()))
}
