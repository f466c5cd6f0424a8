//! A bare axum + hyper-util proxy: hyper's server and hyper-util's pooled client,
//! forwarding every request unchanged, with no authentication, no header rewriting, no
//! timeout and no middleware. `bench/run` puts it next to tessera and nginx. It is what
//! tessera's proxy path was built on before tessera wrote its own HTTP/1.1 upstream client
//! for bodiless requests (bench/log/2026-11-23_to_2026-12-02.md: this stack alone reached about 0.6–0.8 × nginx).
//! Not a product: it checks nothing.
//!
//! `proxy_floor <listen addr> <upstream host:port>`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Uri;
use axum::response::Response;
use axum::Router;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

struct Upstream {
    client: Client<HttpConnector, Body>,
    authority: String,
}

async fn forward(State(up): State<Arc<Upstream>>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let pq = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(up.authority.as_str())
        .path_and_query(pq)
        .build()
        .unwrap();
    match up.client.request(Request::from_parts(parts, body)).await {
        Ok(res) => res.map(Body::new),
        Err(_) => Response::builder().status(502).body(Body::empty()).unwrap(),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().expect("listen address");
    let authority = args.next().expect("upstream host:port");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .build(connector);
        let app = Router::new()
            .fallback(forward)
            .with_state(Arc::new(Upstream { client, authority }));
        let listener = tokio::net::TcpListener::bind(&listen).await.unwrap();
        println!("listening on {listen}");
        axum::serve(listener, app).await.unwrap();
    });
}
