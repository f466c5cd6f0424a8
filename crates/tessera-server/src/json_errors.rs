//! JSON bodies for the answers hyper writes itself.
//!
//! hyper answers an HTTP/1.1 request it cannot parse (a malformed request line or header,
//! conflicting `Content-Length`s, a `Transfer-Encoding` other than `chunked`, an unknown
//! version…) before tessera sees the request, with an empty body, and has no hook to
//! change that answer. The contract wants every error as JSON. [`JsonErrors`] wraps a
//! connection and recognises exactly that answer as it is written: a `4xx`/`5xx` status
//! line followed by nothing but `connection: close`, `content-length: 0` and `date`.
//! It writes tessera's JSON error in its place. Tessera's own responses always carry more
//! headers (`x-request-id`, the security headers), so they never match. After a
//! `101 Switching Protocols` the connection is not HTTP any more and is passed through.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// hyper's error answers are shorter than this; anything longer is passed on unexamined.
const MAX_HYPER_ANSWER: usize = 160;
/// What follows the status line in hyper's error answer, up to the date.
const HYPER_TAIL: &[u8] = b"connection: close\r\ncontent-length: 0\r\ndate: ";
/// An IMF-fixdate, as hyper writes it.
const DATE_LEN: usize = 29;

/// A connection whose writes are checked for hyper's own error answers.
#[derive(Debug)]
pub struct JsonErrors<T> {
    io: T,
    /// A replacement answer and how much of it is written.
    pending: Option<(Vec<u8>, usize)>,
    /// Set after a `101`: the rest is another protocol.
    upgraded: bool,
}

impl<T> JsonErrors<T> {
    /// Wraps `io`.
    pub fn new(io: T) -> Self {
        JsonErrors {
            io,
            pending: None,
            upgraded: false,
        }
    }
}

/// tessera's JSON answer in place of hyper's answer `buf`, if `buf` is one.
fn replacement(buf: &[u8]) -> Option<Vec<u8>> {
    if buf.len() > MAX_HYPER_ANSWER {
        return None;
    }
    let rest = buf.strip_prefix(b"HTTP/1.1 ")?;
    let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
    let (status_line, tail) = (&rest[..line_end], &rest[line_end + 2..]);
    let code = status_line.get(..3)?;
    if !matches!(code[0], b'4' | b'5') || !code[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let date = tail.strip_prefix(HYPER_TAIL)?;
    if date.len() != DATE_LEN + 4 || !date.ends_with(b"\r\n\r\n") {
        return None;
    }
    let (error, message) = match code {
        b"431" => ("headers_too_large", "request headers too large"),
        b"414" => ("uri_too_long", "request target too long"),
        b"505" => ("invalid_request", "HTTP version not supported"),
        _ => ("invalid_request", "malformed HTTP request"),
    };
    let body = format!(r#"{{"error":"{error}","message":"{message}"}}"#);
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status_line);
    out.extend_from_slice(
        b"\r\ncontent-type: application/json\r\ncache-control: no-store\r\n\
          x-content-type-options: nosniff\r\nconnection: close\r\ncontent-length: ",
    );
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\ndate: ");
    out.extend_from_slice(&date[..DATE_LEN]);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

impl<T: AsyncWrite + Unpin> JsonErrors<T> {
    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((buf, at)) = &mut self.pending {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &buf[*at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *at += n;
            if *at >= buf.len() {
                self.pending = None;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `buf` in place of the replacement when it is hyper's error answer; the
    /// replacement is then written by this and later calls. `None`: write `buf` itself.
    fn substitute(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Option<io::Result<usize>> {
        if self.upgraded {
            return None;
        }
        if buf.starts_with(b"HTTP/1.1 101 ") {
            self.upgraded = true;
            return None;
        }
        let reply = replacement(buf)?;
        self.pending = Some((reply, 0));
        // Written now if the socket takes it, else by the flush hyper does next.
        match self.poll_pending(cx) {
            Poll::Ready(Err(e)) => Some(Err(e)),
            _ => Some(Ok(buf.len())),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrors<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrors<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if let Some(r) = this.substitute(cx, buf) {
            return Poll::Ready(r);
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        // hyper's error answer is a head alone, written as one slice.
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(first), None) = (filled.next(), filled.next()) {
            if let Some(r) = this.substitute(cx, first) {
                return Poll::Ready(r);
            }
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYPER_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 20:12:43 GMT\r\n\r\n";

    #[test]
    fn hypers_error_answers_become_json() {
        let out = replacement(HYPER_400).unwrap();
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(
            head.contains("\r\ncontent-type: application/json\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
        assert!(
            head.contains("\r\ndate: Tue, 01 Dec 2026 20:12:43 GMT"),
            "{head}"
        );
        assert!(
            head.contains(&format!("\r\ncontent-length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "invalid_request");
        let h431 = String::from_utf8_lossy(HYPER_400)
            .replace("400 Bad Request", "431 Request Header Fields Too Large");
        let out = String::from_utf8(replacement(h431.as_bytes()).unwrap()).unwrap();
        assert!(out.contains(r#""error":"headers_too_large""#), "{out}");
    }

    #[test]
    fn other_answers_are_left_alone() {
        let text = String::from_utf8_lossy(HYPER_400).into_owned();
        for other in [
            // tessera's own answers carry more headers
            text.replace(
                "connection: close\r\n",
                "x-request-id: a\r\nconnection: close\r\n",
            ),
            text.replace("\r\n\r\n", "\r\nx-request-id: a\r\n\r\n"),
            // a body
            format!("{text}x"),
            // not an error
            text.replace("400 Bad Request", "200 OK"),
            text.replace("400 Bad Request", "101 Switching Protocols"),
            text.replace("HTTP/1.1", "HTTP/1.0"),
            String::new(),
        ] {
            assert!(replacement(other.as_bytes()).is_none(), "{other}");
        }
    }
}
