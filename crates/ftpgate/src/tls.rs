//! TLS on control and data connections (RFC 4217).
//!
//! Each TLS session gets its own copy of the server configuration with its own session cache
//! and ticket keys, so a data connection can only resume a session that this control
//! connection started: a stolen or foreign data connection cannot, whatever the TLS version.
//! On TLS 1.3 the resumed ticket must also carry this session's random token
//! (`set_resumption_data`), which pins it to the control connection exactly.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rand::RngCore;
use rustls::server::ServerSessionMemoryCache;
use rustls::{HandshakeKind, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// TLS settings for the engine. The daemon (or an embedding program) builds the rustls
/// configuration: certificates, versions, client-certificate verification.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The rustls server configuration (certificate resolver, versions, ALPN).
    pub server_config: Arc<rustls::ServerConfig>,
    /// USER/PASS are refused before AUTH TLS.
    pub required_for_login: bool,
    /// Transfers are refused unless protected with PROT P.
    pub required_for_data: bool,
    /// A TLS data connection must resume the control connection's TLS session (as vsftpd's
    /// `require_ssl_reuse`). Turn off only for clients that cannot resume.
    pub require_session_reuse: bool,
    /// CCC is accepted (the control connection goes back to clear text after login).
    pub allow_ccc: bool,
    /// Longest a TLS handshake may take.
    pub handshake_timeout: Duration,
}

impl TlsConfig {
    /// Settings with the safe defaults: TLS optional, session reuse required, no CCC,
    /// 10-second handshakes.
    pub fn new(server_config: Arc<rustls::ServerConfig>) -> Self {
        TlsConfig {
            server_config,
            required_for_login: false,
            required_for_data: false,
            require_session_reuse: true,
            allow_ccc: false,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// One control connection's TLS context, shared with its data connections.
pub(crate) struct SessionTls {
    acceptor: TlsAcceptor,
    /// For downloads and listings: two new TLS 1.3 tickets each, since some clients (rustls)
    /// use every ticket once.
    download_acceptor: TlsAcceptor,
    /// For uploads: no new tickets. A client that only writes never reads them, and closing a
    /// socket with unread data sends a reset that can lose the end of the upload.
    upload_acceptor: TlsAcceptor,
    token: [u8; 16],
    require_reuse: bool,
    handshake_timeout: Duration,
}

impl SessionTls {
    pub(crate) fn new(settings: &TlsConfig) -> Result<SessionTls, rustls::Error> {
        let mut config = (*settings.server_config).clone();
        config.session_storage = ServerSessionMemoryCache::new(64);
        config.ticketer = rustls::crypto::ring::Ticketer::new()?;
        let mut token = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut token);
        let mut download = config.clone();
        download.send_tls13_tickets = 2;
        let mut upload = config.clone();
        upload.send_tls13_tickets = 0;
        config.send_tls13_tickets = 4;
        Ok(SessionTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            download_acceptor: TlsAcceptor::from(Arc::new(download)),
            upload_acceptor: TlsAcceptor::from(Arc::new(upload)),
            token,
            require_reuse: settings.require_session_reuse,
            handshake_timeout: settings.handshake_timeout,
        })
    }

    /// Runs the server side of the control connection's handshake, bounded by the handshake
    /// timeout.
    pub(crate) async fn accept(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.handshake(&self.acceptor, tcp).await
    }

    /// The same for a data connection carrying an upload or a download.
    pub(crate) async fn accept_data(
        &self,
        tcp: TcpStream,
        upload: bool,
    ) -> io::Result<TlsStream<TcpStream>> {
        let acceptor = if upload {
            &self.upload_acceptor
        } else {
            &self.download_acceptor
        };
        self.handshake(acceptor, tcp).await
    }

    async fn handshake(
        &self,
        acceptor: &TlsAcceptor,
        tcp: TcpStream,
    ) -> io::Result<TlsStream<TcpStream>> {
        let token = self.token;
        let handshake = acceptor.accept_with(tcp, move |conn| conn.set_resumption_data(&token));
        match tokio::time::timeout(self.handshake_timeout, handshake).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }

    /// Whether a data connection may be used: it resumed this control connection's session,
    /// or reuse is not required.
    pub(crate) fn accepts_data_connection(&self, stream: &TlsStream<TcpStream>) -> bool {
        if !self.require_reuse {
            return true;
        }
        let conn = stream.get_ref().1;
        if conn.handshake_kind() != Some(HandshakeKind::Resumed) {
            return false;
        }
        match conn.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => {
                conn.received_resumption_data() == Some(&self.token[..])
            }
            // TLS 1.2 resumption data is not exposed, but the session cache and ticket keys
            // belong to this control connection alone.
            _ => true,
        }
    }
}

/// A human-readable summary of a TLS connection for the log.
pub(crate) fn describe(stream: &TlsStream<TcpStream>) -> String {
    let conn = stream.get_ref().1;
    let version = conn
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    let suite = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    let resumed = if conn.handshake_kind() == Some(HandshakeKind::Resumed) {
        ", resumed"
    } else {
        ""
    };
    format!("{version} {suite}{resumed}")
}

/// A connection that is clear or TLS.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while a TLS upgrade or CCC is in progress.
    Closed,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection closed")
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }
}
