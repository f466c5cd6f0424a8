//! Service clients that sign requests (RFC 9421, `hmac-sha256`): their secrets live in the
//! store sealed under the master key and in memory unsealed, so a signed request is
//! checked without a database round trip.

use std::collections::HashMap;
use std::sync::Arc;

use tessera_core::{b64, random_bytes, MasterKey, UnixTime};
use tessera_store::{Store, StoreError, StoredClient};
use zeroize::Zeroizing;

use crate::state::AppState;

/// A client as verification needs it.
pub struct Client {
    /// Its name (forwarded as `X-Tessera-Client`).
    pub name: String,
    /// The HMAC key.
    pub secret: Zeroizing<Vec<u8>>,
}

/// Clients by key id.
#[derive(Default)]
pub struct ClientTable(pub HashMap<String, Arc<Client>>);

fn label(key_id: &str) -> String {
    format!("client:{key_id}")
}

/// A new client: returns the stored record and the secret to show once (base64url of the
/// 32-byte HMAC key).
pub fn new_client(
    master: &MasterKey,
    name: &str,
    now: UnixTime,
) -> (StoredClient, Zeroizing<String>) {
    let key_id = b64::encode(random_bytes::<12>());
    let secret = Zeroizing::new(random_bytes::<32>());
    let stored = StoredClient {
        sealed: master.seal(&label(&key_id), secret.as_ref()),
        key_id,
        name: name.to_owned(),
        created_at: now,
        disabled: false,
    };
    (stored, Zeroizing::new(b64::encode(secret.as_ref())))
}

/// Reloads every client from the store.
pub async fn reload(state: &AppState) -> Result<(), StoreError> {
    let mut table = HashMap::new();
    for c in state.store.list_clients().await? {
        if c.disabled {
            continue;
        }
        match state.master.open(&label(&c.key_id), &c.sealed) {
            Ok(secret) => {
                table.insert(
                    c.key_id.clone(),
                    Arc::new(Client {
                        name: c.name,
                        secret: Zeroizing::new(secret),
                    }),
                );
            }
            Err(_) => {
                tracing::warn!(key_id = %c.key_id, "client secret cannot be opened with this master key")
            }
        }
    }
    state.clients.store(Arc::new(ClientTable(table)));
    Ok(())
}

/// The client with `key_id`. A miss asks the store for that one key id (an indexed
/// lookup), so a client added by the CLI works at once; misses are served one at a time,
/// so a flood of unknown ids costs the store one small query at a time, never a pile-up.
pub async fn lookup(state: &AppState, key_id: &str) -> Option<Arc<Client>> {
    if let Some(c) = state.clients.load().0.get(key_id) {
        return Some(Arc::clone(c));
    }
    if key_id.is_empty() || key_id.len() > 128 {
        return None;
    }
    let _one_at_a_time = state.clients_miss.lock().await;
    if let Some(c) = state.clients.load().0.get(key_id) {
        return Some(Arc::clone(c));
    }
    let stored = state.store.client(key_id).await.ok()??;
    if stored.disabled {
        return None;
    }
    let secret = state
        .master
        .open(&label(&stored.key_id), &stored.sealed)
        .ok()?;
    let client = Arc::new(Client {
        name: stored.name,
        secret: Zeroizing::new(secret),
    });
    let mut table: HashMap<String, Arc<Client>> = state.clients.load().0.clone();
    table.insert(stored.key_id, Arc::clone(&client));
    state.clients.store(Arc::new(ClientTable(table)));
    Some(client)
}

/// Adds a client to `store`.
pub async fn add(
    store: &dyn Store,
    master: &MasterKey,
    name: &str,
    now: UnixTime,
) -> Result<(StoredClient, Zeroizing<String>), StoreError> {
    let (stored, secret) = new_client(master, name, now);
    store.create_client(&stored).await?;
    Ok((stored, secret))
}

/// Reloads the table every `sync.key_poll`, so a client added or disabled on any node
/// (or with the CLI) takes effect here within that time.
pub(crate) fn spawn_reload(state: std::sync::Arc<AppState>) {
    crate::cluster::sync::every(state.config.sync.key_poll, move || {
        let state = std::sync::Arc::clone(&state);
        async move {
            if let Err(e) = reload(&state).await {
                tracing::debug!(error = %e, "client reload failed");
            }
        }
    });
}
