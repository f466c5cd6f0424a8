//! TLS with rustls (ring provider): a self-signed certificate kept in the data folder, or
//! certificate and key files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::config::{TlsConfig, TlsMode};

/// Builds the rustls server configuration for `tls`, or `None` when TLS is off.
/// `hosts` are extra names for a self-signed certificate.
pub fn server_config(
    tls: &TlsConfig,
    data_dir: &Path,
    hosts: &[String],
) -> Result<Option<Arc<ServerConfig>>, String> {
    let (cert_path, key_path) = match tls.mode {
        TlsMode::Off => return Ok(None),
        TlsMode::Files => match (&tls.cert, &tls.key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            _ => return Err("tls.cert and tls.key are required".into()),
        },
        TlsMode::SelfSigned => ensure_self_signed(data_dir, hosts)?,
    };
    let certs = read_certs(&cert_path)?;
    let key = read_key(&key_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls.cert/tls.key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("tls.cert {}: {e}", path.display()))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_slice()).collect();
    let certs = certs.map_err(|e| format!("tls.cert {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("tls.cert {}: no certificate found", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("tls.key {}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("tls.key {}: {e}", path.display()))?
        .ok_or_else(|| format!("tls.key {}: no private key found", path.display()))
}

/// Makes `data_dir/tls/{cert,key}.pem` once (for localhost, 127.0.0.1, ::1 and `hosts`).
pub fn ensure_self_signed(data_dir: &Path, hosts: &[String]) -> Result<(PathBuf, PathBuf), String> {
    let dir = data_dir.join("tls");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.is_file() && key_path.is_file() {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("data_dir {}: {e}", dir.display()))?;
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for h in hosts {
        if !names.contains(h) {
            names.push(h.clone());
        }
    }
    let cert = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("self-signed certificate: {e}"))?;
    std::fs::write(&cert_path, cert.cert.pem())
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    crate::fsutil::write_private(&key_path, cert.key_pair.serialize_pem().as_bytes())
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    Ok((cert_path, key_path))
}
