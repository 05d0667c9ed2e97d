//! Test support: the shared test server and raw client (`ftpgate_test_support::server`: a real
//! server on 127.0.0.1:0 per test, and a control connection spoken by hand), plus helpers only
//! the engine's tests use (files on the local root, suppaftp errors, TLS configurations).

#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::sync::Arc;

pub use ftpgate_test_support::server::*;

pub fn write_file(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

/// The reply code of a failed suppaftp call.
pub fn code_of<T: std::fmt::Debug>(result: suppaftp::FtpResult<T>) -> u32 {
    match result {
        Err(suppaftp::FtpError::UnexpectedResponse(response)) => response.status.code(),
        other => panic!("expected an FTP error reply, got {other:?}"),
    }
}

/// A self-signed certificate for "localhost" and a rustls server configuration around it,
/// as an operator would configure it (ALPN "ftp").
pub fn tls_server_config() -> (
    Arc<rustls::ServerConfig>,
    rustls::pki_types::CertificateDer<'static>,
) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = generated.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"ftp".to_vec()];
    (Arc::new(config), cert)
}

/// A client configuration that trusts `cert` (and resumes sessions, as rustls clients do).
pub fn tls_client_config(
    cert: &rustls::pki_types::CertificateDer<'static>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}
