//! Who is at the other end: the TCP peer, and the client IP behind trusted proxies.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

use crate::state::AppState;

/// The TCP peer of a connection, put into request extensions by the server loop.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The client IP: the socket peer, unless the peer is a trusted proxy, in which case the
/// rightmost `X-Forwarded-For` hop that is not itself a trusted proxy.
pub(crate) fn client_ip(
    state: &AppState,
    peer: Option<PeerAddr>,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    let peer_ip = peer?.0.ip();
    let trusted = &state.config.trusted_proxies;
    if !trusted.contains(&peer_ip) {
        return Some(peer_ip);
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        let Ok(s) = v.to_str() else {
            return Some(peer_ip);
        };
        for part in s.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                Err(_) => return Some(peer_ip),
            }
        }
    }
    Some(
        hops.into_iter()
            .rev()
            .find(|ip| !trusted.contains(ip))
            .unwrap_or(peer_ip),
    )
}
