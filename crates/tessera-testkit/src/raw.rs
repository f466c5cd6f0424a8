//! Hand-written HTTP/1.1 over TLS, for requests a real client library would refuse or
//! normalise: dot segments in the path, huge headers, malformed framing.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::install_crypto_provider;

/// What came back for a raw request.
#[derive(Debug, Clone, Default)]
pub struct RawResponse {
    /// The status code, if a status line was read.
    pub status: Option<u16>,
    /// The response head (status line and headers) as text.
    pub head: String,
    /// The body (chunked encoding decoded).
    pub body: Vec<u8>,
    /// A transport error met on the way, if any (a response may still have been read).
    pub error: Option<String>,
}

impl RawResponse {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Every status line's code in the bytes read (pipelined responses), in order.
    pub fn all_statuses(&self) -> Vec<u16> {
        let mut text = self.head.clone();
        text.push_str("\r\n\r\n");
        text.push_str(&String::from_utf8_lossy(&self.body));
        text.match_indices("HTTP/1.1 ")
            .filter_map(|(i, _)| text[i + 9..].split_whitespace().next()?.parse().ok())
            .collect()
    }

    /// A header of the response (case-insensitive name; the first).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

fn tls_config(cert_pem: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    install_crypto_provider();
    let pem = std::fs::read(cert_pem).map_err(|e| format!("{}: {e}", cert_pem.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| e.to_string())?;
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn decode_chunked(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(data, b"\r\n") {
        let size_line = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            out.extend_from_slice(&data[..size.min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
    out
}

fn parse(bytes: &[u8], error: Option<String>) -> RawResponse {
    let Some(end) = find(bytes, b"\r\n\r\n") else {
        return RawResponse {
            status: None,
            head: String::from_utf8_lossy(bytes).into_owned(),
            body: Vec::new(),
            error: error.or_else(|| Some("no complete response head".into())),
        };
    };
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok());
    let mut res = RawResponse {
        status,
        head,
        body: Vec::new(),
        error,
    };
    let rest = &bytes[end + 4..];
    let chunked = res
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    res.body = if chunked {
        decode_chunked(rest)
    } else {
        rest.to_vec()
    };
    res
}

/// Sends `request` (bytes as given) over TLS to `addr`, trusting `cert_pem`, and reads the
/// answer until the server closes the connection (send `Connection: close`) or 15 s pass.
pub async fn send(addr: SocketAddr, cert_pem: &Path, request: &[u8]) -> RawResponse {
    send_with_timeout(addr, cert_pem, request, Duration::from_secs(15)).await
}

/// [`send`], reading for at most `read_for` (then [`RawResponse::error`] says it timed out
/// and the connection was still open).
pub async fn send_with_timeout(
    addr: SocketAddr,
    cert_pem: &Path,
    request: &[u8],
    read_for: Duration,
) -> RawResponse {
    let config = match tls_config(cert_pem) {
        Ok(c) => c,
        Err(e) => {
            return RawResponse {
                error: Some(e),
                ..Default::default()
            }
        }
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => {
            return RawResponse {
                error: Some(format!("connect: {e}")),
                ..Default::default()
            }
        }
    };
    let name = ServerName::IpAddress(addr.ip().into());
    let mut tls = match connector.connect(name, tcp).await {
        Ok(s) => s,
        Err(e) => {
            return RawResponse {
                error: Some(format!("TLS: {e}")),
                ..Default::default()
            }
        }
    };
    let mut error = None;
    // The server may answer (431, 413…) and close before reading everything; keep going
    // to read what it said.
    if let Err(e) = tls.write_all(request).await {
        error = Some(format!("write: {e}"));
    } else if let Err(e) = tls.flush().await {
        error = Some(format!("flush: {e}"));
    }
    let mut buf = Vec::new();
    let read = tokio::time::timeout(read_for, async {
        let mut chunk = [0u8; 16384];
        loop {
            match tls.read(&mut chunk).await {
                Ok(0) => return Ok(()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    match read {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            if error.is_none() {
                error = Some(format!("read: {e}"));
            }
        }
        Err(_) => {
            if error.is_none() {
                error = Some("read: timed out".into());
            }
        }
    }
    parse(&buf, error)
}

/// A TLS connection (ALPN `http/1.1`) to `addr` trusting `cert_pem`, for tests that
/// write and read at their own pace (slow bodies, many open connections).
pub async fn connect(
    addr: SocketAddr,
    cert_pem: &Path,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let connector = tokio_rustls::TlsConnector::from(tls_config(cert_pem)?);
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::IpAddress(addr.ip().into());
    connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))
}

/// Reads one response head and its `Content-Length` body from `stream` (at most 64 KiB),
/// for [`connect`]ed streams; the connection stays usable.
pub async fn read_response<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> RawResponse {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = parse(&buf[..end + 4], None);
            let want = head
                .header("content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + want {
                return parse(&buf[..end + 4 + want], None);
            }
        }
        if buf.len() > 65536 {
            return parse(&buf, Some("response over 64 KiB".into()));
        }
        match stream.read(&mut chunk).await {
            Ok(0) => return parse(&buf, Some("closed".into())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return parse(&buf, Some(format!("read: {e}"))),
        }
    }
}

/// A `GET` request with `Host`, `Connection: close` and `extra` header lines
/// (`"Name: value"`), with the request target exactly as given.
pub fn get_request(host: &str, target: &str, extra: &[String]) -> Vec<u8> {
    let mut s = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for h in extra {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn parses_plain_and_chunked() {
        let r = parse(
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\r\n{\"a\":1}",
            None,
        );
        assert_eq!(r.status, Some(400));
        assert_eq!(
            r.header("Content-Type").as_deref(),
            Some("application/json")
        );
        assert_eq!(r.json().unwrap()["a"], 1);
        let r = parse(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", None);
        assert_eq!(r.text(), "abcde");
    }
}
