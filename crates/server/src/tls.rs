//! HTTPS on the listener: rustls with the certificate chain and key of `[tls]`.
//!
//! Both files are read at start-up (a bad one stops the node with the file and the
//! problem named), then watched: when either changes (a renewed certificate), the pair
//! is read again and new connections use it. A pair that does not load (a half-written
//! renewal, a key that does not match) is logged and the previous one kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_util::sync::CancellationToken;

/// How often the files are checked for a change.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// What identifies a version of a file: its modification time and length.
type Stamp = Option<(SystemTime, u64)>;

/// The listener's TLS settings, reloaded when the files change.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Loaded>,
}

struct Loaded {
    stamps: (Stamp, Stamp),
    acceptor: TlsAcceptor,
}

impl Tls {
    /// Reads the certificate chain and the key; the error names the file and what is wrong.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Tls>, String> {
        let stamps = (stamp(cert), stamp(key));
        let config = server_config(cert, key)?;
        Ok(Arc::new(Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Loaded {
                stamps,
                acceptor: TlsAcceptor::from(Arc::new(config)),
            }),
        }))
    }

    /// The acceptor for a new connection (the latest pair that loaded).
    pub fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .acceptor
            .clone()
    }

    /// Reads the pair again if either file changed since it was last read. Returns
    /// whether new connections now use a new pair.
    pub fn reload_if_changed(&self) -> bool {
        let stamps = (stamp(&self.cert), stamp(&self.key));
        if self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .stamps
            == stamps
        {
            return false;
        }
        let loaded = server_config(&self.cert, &self.key);
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        // Whatever happens, this version of the files is not read again.
        current.stamps = stamps;
        match loaded {
            Ok(config) => {
                current.acceptor = TlsAcceptor::from(Arc::new(config));
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "the changed TLS files do not load; the previous certificate stays in use");
                false
            }
        }
    }

    /// Watches the files until `stop`.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(WATCH_EVERY) => {}
                _ = stop.cancelled() => return,
            }
            let tls = self.clone();
            // Reading files blocks; keep it off the runtime's threads.
            let _ = tokio::task::spawn_blocking(move || tls.reload_if_changed()).await;
        }
    }
}

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("tls.cert: {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "tls.cert: {}: no PEM certificate in the file",
            cert.display()
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("tls.key: {}: {e}", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            format!(
                "tls: the key {} does not go with the certificate {}: {e}",
                key.display(),
                cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
