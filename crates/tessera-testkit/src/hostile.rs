//! A scriptable hostile HTTP/1.1 upstream on raw tokio sockets, for tests of what tessera
//! does with an upstream that breaks keep-alive framing *between* requests: bytes after a
//! complete answer, a body where none may be, an unsolicited `408`, a duplicated answer,
//! a close while idle.
//!
//! Every answer's body names the request it was for: `for user=<x-tessera-user>
//! username=<x-tessera-username> target=<target>`, so a test can tell whose answer
//! arrived. The stray bytes (written [`Hostile::delay`] after the answer, so they arrive
//! once the connection is back in tessera's pool) name that same earlier request; a
//! client that reads them as the answer to the next request hands one user another's.
//!
//! Each request's [`Plan`] (misbehaviour and timing) is chosen by the script given to
//! [`Hostile::start_with`]; [`Hostile::start`] reads it from the target's `m=<name>` and
//! `t=together` query parameters ([`Plan::from_target`]). The stray bytes come
//! [`Hostile::delay`] after the answer ([`Timing::Delayed`]: they reach a client that has
//! already pooled the connection) or in the same write ([`Timing::Together`]: the client
//! reads them with the answer). Once they are written (or the connection is closed) the
//! upstream reports a [`Stray`] event, so a test waits for it ([`Hostile::stray_written`])
//! rather than sleeping.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

/// Largest request head read.
const MAX_HEAD: usize = 64 * 1024;

/// What the upstream does after (or instead of) a well-framed answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Misbehaviour {
    /// A well-framed `200` with a `Content-Length` body, nothing more.
    None,
    /// A `Content-Length` answer, then a whole second answer.
    ExtraAfterBody,
    /// A chunked answer, then a whole second answer after the last chunk.
    AfterLastChunk,
    /// A `204`, then a body (a whole answer).
    BodyOn204,
    /// A `304`, then a body (a whole answer).
    BodyOn304,
    /// For `HEAD`: a head with `Content-Length`, then the body it describes (a whole
    /// answer). For other methods as [`Misbehaviour::None`].
    BodyOnHead,
    /// A good answer, then an unsolicited `408 Request Timeout` (connection kept open).
    Unsolicited408,
    /// A good answer, then the same answer again.
    Duplicate,
    /// A good answer, then the connection closed.
    CloseAfter,
}

impl Misbehaviour {
    /// Every misbehaviour that sends or does something after the answer.
    pub const HOSTILE: [Misbehaviour; 8] = [
        Misbehaviour::ExtraAfterBody,
        Misbehaviour::AfterLastChunk,
        Misbehaviour::BodyOn204,
        Misbehaviour::BodyOn304,
        Misbehaviour::BodyOnHead,
        Misbehaviour::Unsolicited408,
        Misbehaviour::Duplicate,
        Misbehaviour::CloseAfter,
    ];

    /// Its name in a target's `m=` parameter.
    pub fn name(self) -> &'static str {
        match self {
            Misbehaviour::None => "none",
            Misbehaviour::ExtraAfterBody => "extra-after-body",
            Misbehaviour::AfterLastChunk => "after-last-chunk",
            Misbehaviour::BodyOn204 => "body-on-204",
            Misbehaviour::BodyOn304 => "body-on-304",
            Misbehaviour::BodyOnHead => "body-on-head",
            Misbehaviour::Unsolicited408 => "unsolicited-408",
            Misbehaviour::Duplicate => "duplicate",
            Misbehaviour::CloseAfter => "close-after",
        }
    }

    /// The misbehaviour a target's `m=<name>` query parameter names (`None` without one).
    pub fn from_target(target: &str) -> Misbehaviour {
        let query = target.split_once('?').map_or("", |(_, q)| q);
        let name = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("m="))
            .unwrap_or("none");
        Self::HOSTILE
            .into_iter()
            .find(|m| m.name() == name)
            .unwrap_or(Misbehaviour::None)
    }

    /// The status of the (real) answer the client should get.
    pub fn status(self) -> u16 {
        match self {
            Misbehaviour::BodyOn204 => 204,
            Misbehaviour::BodyOn304 => 304,
            _ => 200,
        }
    }

    /// Whether the real answer has a body (for a request of `method`).
    pub fn has_body(self, method: &str) -> bool {
        method != "HEAD" && !matches!(self, Misbehaviour::BodyOn204 | Misbehaviour::BodyOn304)
    }
}

/// When the stray bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timing {
    /// [`Hostile::delay`] after the answer.
    Delayed,
    /// In the same write as the answer (a close still comes after the delay).
    Together,
}

/// What the upstream does for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Plan {
    /// What it sends.
    pub misbehaviour: Misbehaviour,
    /// When.
    pub timing: Timing,
}

impl Plan {
    /// The plan a target's query names: `m=<misbehaviour name>`, and `t=together` for
    /// [`Timing::Together`] (otherwise delayed).
    pub fn from_target(target: &str) -> Plan {
        let together = target
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|kv| kv == "t=together"));
        Plan {
            misbehaviour: Misbehaviour::from_target(target),
            timing: if together {
                Timing::Together
            } else {
                Timing::Delayed
            },
        }
    }
}

/// A request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The connection it came on, numbered from 0 in accept order.
    pub conn: usize,
    /// Its place on that connection, from 0.
    pub nth: usize,
    /// The method.
    pub method: String,
    /// The request target.
    pub target: String,
    /// Header fields, names lowercased (the last value of a repeated name).
    pub headers: HashMap<String, String>,
}

impl Request {
    /// The body every answer to this request carries: who and what it was for.
    pub fn label(&self) -> String {
        let h = |n: &str| self.headers.get(n).map_or("-", String::as_str);
        format!(
            "for user={} username={} target={}",
            h("x-tessera-user"),
            h("x-tessera-username"),
            self.target
        )
    }
}

/// Reported once a misbehaving answer's stray bytes are written (or its connection closed).
#[derive(Debug, Clone)]
pub struct Stray {
    /// The request whose answer they followed.
    pub request: Request,
    /// What was done.
    pub plan: Plan,
}

type Script = dyn Fn(&Request) -> Plan + Send + Sync;

/// The running upstream; stops when dropped.
pub struct Hostile {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    strays: Mutex<mpsc::UnboundedReceiver<Stray>>,
    task: JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hostile {
    /// How long after an answer the stray bytes are written.
    pub fn delay() -> Duration {
        Duration::from_millis(3)
    }

    /// An upstream whose plan per request the target's query gives ([`Plan::from_target`]).
    pub async fn start() -> Hostile {
        Self::start_with(|r| Plan::from_target(&r.target)).await
    }

    /// An upstream whose plan per request `script` chooses.
    pub async fn start_with(script: impl Fn(&Request) -> Plan + Send + Sync + 'static) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the hostile upstream");
        let addr = listener.local_addr().expect("its address");
        let accepts = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::unbounded_channel();
        let script: Arc<Script> = Arc::new(script);
        let task = {
            let (accepts, requests) = (accepts.clone(), requests.clone());
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let conn = accepts.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(
                        stream,
                        conn,
                        script.clone(),
                        requests.clone(),
                        tx.clone(),
                    ));
                }
            })
        };
        Hostile {
            addr,
            accepts,
            requests,
            strays: Mutex::new(rx),
            task,
        }
    }

    /// Connections accepted so far.
    pub fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Waits (at most 5 s, then panics) for the next misbehaving answer's stray bytes to
    /// have been written.
    pub async fn stray_written(&self) -> Stray {
        let mut rx = self.strays.lock().await;
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the hostile upstream wrote no stray bytes within 5 s")
            .expect("the hostile upstream stopped")
    }
}

/// `200 OK` with `body` framed by `Content-Length`.
fn framed(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The whole answer a poisoned connection would hand the next request.
fn stray_answer(req: &Request) -> String {
    framed("200 OK", &format!("stray {}", req.label()))
}

/// What to write: the answer, then (after the delay) the stray bytes, or `None` to close.
fn script_bytes(req: &Request, m: Misbehaviour) -> (String, Option<String>) {
    let label = req.label();
    let is_head = req.method == "HEAD";
    let mut answer = framed("200 OK", &label);
    if is_head {
        // The head a GET would get, without its body (RFC 9110 §9.3.2).
        answer.truncate(answer.len() - label.len());
    }
    match m {
        Misbehaviour::None => (answer, Some(String::new())),
        Misbehaviour::BodyOnHead if !is_head => (answer, Some(String::new())),
        Misbehaviour::ExtraAfterBody => (answer, Some(stray_answer(req))),
        Misbehaviour::AfterLastChunk => (
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{label}\r\n0\r\n\r\n",
                label.len()
            ),
            Some(stray_answer(req)),
        ),
        Misbehaviour::BodyOn204 => (
            "HTTP/1.1 204 No Content\r\n\r\n".into(),
            Some(stray_answer(req)),
        ),
        Misbehaviour::BodyOn304 => (
            "HTTP/1.1 304 Not Modified\r\netag: \"1\"\r\n\r\n".into(),
            Some(stray_answer(req)),
        ),
        Misbehaviour::BodyOnHead => {
            let body = stray_answer(req);
            (
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                ),
                Some(body),
            )
        }
        Misbehaviour::Unsolicited408 => (
            answer,
            Some(framed("408 Request Timeout", &format!("408 {label}"))),
        ),
        Misbehaviour::Duplicate => (answer.clone(), Some(answer)),
        Misbehaviour::CloseAfter => (answer, None),
    }
}

async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = buf.drain(..i + 4).collect();
            return String::from_utf8(head).ok();
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn parse(head: &str, conn: usize, nth: usize) -> Request {
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let target = first.next().unwrap_or("").to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Request {
        conn,
        nth,
        method,
        target,
        headers,
    }
}

async fn connection(
    mut stream: TcpStream,
    conn: usize,
    script: Arc<Script>,
    requests: Arc<AtomicUsize>,
    strays: mpsc::UnboundedSender<Stray>,
) {
    let mut buf = Vec::new();
    for nth in 0.. {
        // Requests through tessera's bodiless path carry no body (a POST says
        // `content-length: 0`): the head is the whole request.
        let Some(head) = read_head(&mut stream, &mut buf).await else {
            return;
        };
        requests.fetch_add(1, Ordering::SeqCst);
        let req = parse(&head, conn, nth);
        let plan = script(&req);
        let (mut answer, after) = script_bytes(&req, plan.misbehaviour);
        let hostile = after.as_ref().is_none_or(|s| !s.is_empty());
        let together = plan.timing == Timing::Together;
        if together {
            if let Some(bytes) = &after {
                answer.push_str(bytes);
            }
        }
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        if !hostile {
            continue;
        }
        let event = Stray { request: req, plan };
        match after {
            Some(bytes) => {
                if !together {
                    tokio::time::sleep(Hostile::delay()).await;
                    // The client may rightly have closed the connection already.
                    let _ = stream.write_all(bytes.as_bytes()).await;
                }
                let _ = strays.send(event);
            }
            None => {
                tokio::time::sleep(Hostile::delay()).await;
                drop(stream);
                let _ = strays.send(event);
                return;
            }
        }
    }
}
