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
