//! TLS with rustls (ring provider): a self-signed certificate kept in the data folder, or
//! certificate and key files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::config::{TlsConfig, TlsMode};

/// Why TLS could not be set up; each message names the configuration key it is about.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `tls.mode = "files"` without both files.
    #[error("configuration key `tls.cert`/`tls.key`: both are required with mode \"files\"")]
    MissingFiles,
    /// A file could not be read or written.
    #[error("configuration key `{key}`: {path}: {source}")]
    File {
        /// `tls.cert`, `tls.key` or `data_dir`.
        key: &'static str,
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A file holds no usable PEM certificate or key.
    #[error("configuration key `{key}`: {path}: {detail}")]
    Pem {
        /// `tls.cert` or `tls.key`.
        key: &'static str,
        /// The file.
        path: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The certificate and key do not go together (or rustls refused them).
    #[error("configuration key `tls.cert`/`tls.key`: {0}")]
    Rustls(#[from] rustls::Error),
    /// The self-signed certificate could not be made.
    #[error("configuration key `tls.mode`: self-signed certificate: {0}")]
    SelfSigned(#[from] rcgen::Error),
}

fn file_error<'a>(
    key: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> TlsError + 'a {
    move |source| TlsError::File {
        key,
        path: path.display().to_string(),
        source,
    }
}

/// Builds the rustls server configuration for `tls`, or `None` when TLS is off.
/// `hosts` are extra names for a self-signed certificate.
pub fn server_config(
    tls: &TlsConfig,
    data_dir: &Path,
    hosts: &[String],
) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    let (cert_path, key_path) = match tls.mode {
        TlsMode::Off => return Ok(None),
        TlsMode::Files => match (&tls.cert, &tls.key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            _ => return Err(TlsError::MissingFiles),
        },
        TlsMode::SelfSigned => ensure_self_signed(data_dir, hosts)?,
    };
    let certs = read_certs(&cert_path)?;
    let key = read_key(&key_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(file_error("tls.cert", path))?;
    let pem_error = |detail: String| TlsError::Pem {
        key: "tls.cert",
        path: path.display().to_string(),
        detail,
    };
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_slice()).collect();
    let certs = certs.map_err(|e| pem_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("no certificate found".into()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = std::fs::read(path).map_err(file_error("tls.key", path))?;
    let pem_error = |detail: String| TlsError::Pem {
        key: "tls.key",
        path: path.display().to_string(),
        detail,
    };
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| pem_error(e.to_string()))?
        .ok_or_else(|| pem_error("no private key found".into()))
}

/// Makes `data_dir/tls/{cert,key}.pem` once (for localhost, 127.0.0.1, ::1 and `hosts`).
pub fn ensure_self_signed(
    data_dir: &Path,
    hosts: &[String],
) -> Result<(PathBuf, PathBuf), TlsError> {
    let dir = data_dir.join("tls");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.is_file() && key_path.is_file() {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(&dir).map_err(file_error("data_dir", &dir))?;
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for h in hosts {
        if !names.contains(h) {
            names.push(h.clone());
        }
    }
    let cert = rcgen::generate_simple_self_signed(names)?;
    std::fs::write(&cert_path, cert.cert.pem()).map_err(file_error("data_dir", &cert_path))?;
    crate::fsutil::write_private(&key_path, cert.key_pair.serialize_pem().as_bytes())
        .map_err(file_error("data_dir", &key_path))?;
    Ok((cert_path, key_path))
}

/// The host of `origin` (`scheme://host[:port]`), without an IPv6 literal's brackets: the
/// name a self-signed certificate must carry besides localhost. Empty without one.
pub fn origin_host(origin: &str) -> String {
    origin
        .parse::<axum::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(|h| h.trim_matches(['[', ']']).to_owned()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::origin_host;

    #[test]
    fn origin_hosts() {
        assert_eq!(origin_host("https://app.example.com"), "app.example.com");
        assert_eq!(
            origin_host("https://app.example.com:8443"),
            "app.example.com"
        );
        assert_eq!(origin_host("https://127.0.0.1:3000"), "127.0.0.1");
        assert_eq!(origin_host("https://[::1]:3000"), "::1");
        assert_eq!(origin_host("https://[::1]"), "::1");
        assert_eq!(origin_host("not an origin"), "");
    }
}
