//! Fresh PostgreSQL databases for the tests that need one (cluster mode).
//!
//! The server comes from `TESSERA_TEST_PG_URL` (default the local one). When it cannot be
//! reached the test says so loudly and passes — unless `TESSERA_REQUIRE_POSTGRES=1` (CI),
//! where that is a failure.

use sqlx::Connection;

/// The admin URL tests create their databases with.
pub fn admin_url() -> String {
    std::env::var("TESSERA_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database made for one test; [`Database::drop_now`] removes it.
#[derive(Debug)]
pub struct Database {
    /// `postgres://…/<name>`.
    pub url: String,
    /// Its name.
    pub name: String,
    admin: String,
}

impl Database {
    /// Drops the database (connections are closed with it).
    pub async fn drop_now(self) {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await;
        }
    }
}

/// A new, empty database named `tessera_<label>_<pid>` (a leftover of that name is dropped
/// first); `None`, with a loud message, if PostgreSQL is unreachable and not required.
pub async fn fresh_database(label: &str) -> Option<Database> {
    let admin = admin_url();
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("TESSERA_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("PostgreSQL required but unreachable at {admin}: {e}");
            }
            eprintln!("POSTGRESQL TESTS DID NOT RUN: {e}");
            return None;
        }
    };
    let name = format!("tessera_{label}_{}", std::process::id());
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Some(Database {
        url: format!("{base}/{name}"),
        name,
        admin,
    })
}

impl Database {
    /// `host:port` of the PostgreSQL server.
    pub fn host_port(&self) -> String {
        self.admin
            .split_once('@')
            .map_or(self.admin.as_str(), |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or("127.0.0.1:5432")
            .to_owned()
    }

    /// The database's URL through a relay on `127.0.0.1:port` (see [`Relay`]).
    pub fn url_via(&self, port: u16) -> String {
        let user = self
            .admin
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('@'))
            .map_or("postgres", |(user, _)| user);
        format!("postgres://{user}@127.0.0.1:{port}/{}", self.name)
    }
}

/// A TCP relay to PostgreSQL that can be cut (every connection closed, new ones refused)
/// and restored: a database outage as the nodes see it.
pub struct Relay {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Relay {
    /// A relay to `target` (`host:port`), passing connections on until [`Relay::cut`].
    pub async fn start(target: String) -> Relay {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (up2, conns2) = (Arc::clone(&up), Arc::clone(&conns));
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().await.push(task);
            }
        });
        Relay {
            port,
            up,
            conns,
            accept,
        }
    }

    /// Closes every relayed connection and refuses new ones.
    pub async fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for t in self.conns.lock().await.drain(..) {
            t.abort();
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
