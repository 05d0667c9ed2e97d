//! FTPS from `[tls]`: certificates from PEM files (reloaded on SIGHUP without dropping
//! sessions) or a self-signed certificate made at start, the rustls server configuration around
//! them, and the engine's TLS settings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::config::{TlsSection, parse_listen};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The SHA-256 fingerprint of a certificate, as `AA:BB:...`.
pub(crate) fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn load(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(cert_path)
        .with_context(|| format!("cannot read certificate {}", cert_path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("bad PEM in {}", cert_path.display()))?;
    if chain.is_empty() {
        bail!("no certificate in {}", cert_path.display());
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .with_context(|| format!("cannot read private key {}", key_path.display()))?;
    CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| anyhow!("certificate and key do not fit together: {e}"))
}

/// The server's certificate, swappable while running.
#[derive(Debug)]
pub(crate) struct CertificateStore {
    files: Option<(PathBuf, PathBuf)>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertificateStore {
    /// A certificate chain and key from PEM files.
    pub(crate) fn from_files(cert: &Path, key: &Path) -> Result<Arc<CertificateStore>> {
        let certified = load(cert, key)?;
        Ok(Arc::new(CertificateStore {
            files: Some((cert.to_path_buf(), key.to_path_buf())),
            current: RwLock::new(Arc::new(certified)),
        }))
    }

    /// A new self-signed certificate for `names` (host names or IP addresses).
    pub(crate) fn self_signed(names: Vec<String>) -> Result<Arc<CertificateStore>> {
        let generated =
            rcgen::generate_simple_self_signed(names).context("cannot generate a certificate")?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            generated.signing_key.serialize_der(),
        ));
        let certified =
            CertifiedKey::from_der(vec![generated.cert.der().clone()], key, &provider())?;
        Ok(Arc::new(CertificateStore {
            files: None,
            current: RwLock::new(Arc::new(certified)),
        }))
    }

    /// Re-reads the PEM files; on error the current certificate stays.
    pub(crate) fn reload(&self) -> Result<bool> {
        let Some((cert, key)) = &self.files else {
            return Ok(false);
        };
        let certified = load(cert, key)?;
        let mut current = self
            .current
            .write()
            .map_err(|_| anyhow!("certificate lock poisoned"))?;
        *current = Arc::new(certified);
        Ok(true)
    }

    /// The fingerprint of the end-entity certificate in use.
    pub(crate) fn fingerprint(&self) -> String {
        match self.current.read() {
            Ok(current) => current.cert.first().map(fingerprint).unwrap_or_default(),
            Err(_) => String::new(),
        }
    }
}

impl ResolvesServerCert for CertificateStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

/// Builds the rustls configuration: TLS 1.2 and 1.3 (or 1.3 only), ALPN `ftp`, optional client
/// certificates checked against a CA.
fn server_config(
    certs: Arc<CertificateStore>,
    min_version: &str,
    client_ca: Option<&Path>,
    require_client_cert: bool,
) -> Result<rustls::ServerConfig> {
    let versions: &[&rustls::SupportedProtocolVersion] = match min_version {
        "1.2" => &[&rustls::version::TLS12, &rustls::version::TLS13],
        "1.3" => &[&rustls::version::TLS13],
        other => bail!("tls.min_version must be \"1.2\" or \"1.3\", not {other:?}"),
    };
    let builder =
        rustls::ServerConfig::builder_with_provider(provider()).with_protocol_versions(versions)?;
    let builder = match client_ca {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("cannot read {}", path.display()))?
            {
                roots.add(cert.with_context(|| format!("bad PEM in {}", path.display()))?)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = if require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(verifier.build()?)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(certs);
    // RFC 4217 clients that offer ALPN must offer "ftp"; those that offer none are fine.
    config.alpn_protocols = vec![b"ftp".to_vec()];
    Ok(config)
}

/// FTPS as configured: the engine's settings, the certificate store (for SIGHUP and the
/// fingerprint) and the implicit listeners.
pub(crate) struct TlsSetup {
    pub(crate) config: ftpgate::TlsConfig,
    pub(crate) certs: Arc<CertificateStore>,
    pub(crate) implicit_listen: Vec<SocketAddr>,
    pub(crate) self_signed: bool,
}

impl TlsSetup {
    /// Checks `section`, loads or makes the certificate and builds the settings; `None` if
    /// FTPS is off. `names` go into a self-signed certificate.
    pub(crate) fn build(section: &TlsSection, names: Vec<String>) -> Result<Option<TlsSetup>> {
        if !section.enabled() {
            if section.required
                || section.required_for_login
                || section.required_for_data
                || !section.implicit_listen.is_empty()
            {
                bail!(
                    "tls: requiring TLS or listening for implicit TLS needs tls.cert and tls.key (or tls.self_signed)"
                );
            }
            return Ok(None);
        }
        let certs = match (&section.cert, &section.key, section.self_signed) {
            (Some(cert), Some(key), false) => {
                CertificateStore::from_files(cert, key).context("tls.cert / tls.key")?
            }
            (None, None, true) => CertificateStore::self_signed(names)?,
            (_, _, true) => bail!("tls: give either cert and key, or self_signed, not both"),
            (Some(_), None, _) => bail!("tls.key: missing (tls.cert is set)"),
            (None, Some(_), _) => bail!("tls.cert: missing (tls.key is set)"),
            (None, None, false) => return Ok(None),
        };
        if section.require_client_cert && section.client_ca.is_none() {
            bail!("tls.require_client_cert needs tls.client_ca");
        }
        let server_config = server_config(
            certs.clone(),
            &section.min_version,
            section.client_ca.as_deref(),
            section.require_client_cert,
        )
        .context("tls")?;
        let mut implicit_listen = Vec::new();
        for (i, text) in section.implicit_listen.iter().enumerate() {
            implicit_listen
                .extend(parse_listen(text).with_context(|| format!("tls.implicit_listen[{i}]"))?);
        }
        let mut config = ftpgate::TlsConfig::new(Arc::new(server_config));
        config.required_for_login = section.required || section.required_for_login;
        config.required_for_data = section.required || section.required_for_data;
        config.session_reuse = match section.session_reuse.as_str() {
            "user" => ftpgate::SessionReuse::SameUser,
            "connection" => ftpgate::SessionReuse::SameConnection,
            "off" => ftpgate::SessionReuse::Off,
            other => bail!(
                "tls.session_reuse must be \"user\", \"connection\" or \"off\", not {other:?}"
            ),
        };
        config.allow_ccc = section.allow_ccc;
        config.handshake_timeout = Duration::from_secs(section.handshake_timeout_secs.max(1));
        Ok(Some(TlsSetup {
            config,
            certs,
            implicit_listen,
            self_signed: section.self_signed,
        }))
    }
}
