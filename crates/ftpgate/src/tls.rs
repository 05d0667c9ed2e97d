//! TLS on control and data connections (RFC 4217).
//!
//! A protected data connection must resume a TLS session, so a connection stolen by a third
//! party (which has no such session) is refused. How strictly the session is tied to the data
//! connection's control connection is [`SessionReuse`]:
//!
//! - `SameUser` (default): a session this server issued to a control connection logged in as the
//!   same user from the same address. On TLS 1.3 every ticket carries a random token of the
//!   control connection that issued it (`set_resumption_data`), recorded against the user at
//!   login; TLS 1.2 does not expose that data, so there the session must simply be resumed from
//!   this server (what vsftpd's `require_ssl_reuse` checks). Clients such as rclone, which share
//!   one TLS session cache across all their connections, work in this mode.
//! - `SameConnection`: each control connection gets its own session cache and ticket keys, so
//!   only its own sessions can be resumed, whatever the TLS version.
//! - `Off`: any handshake, for clients that cannot resume (Python's stock `ftplib`).

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rand::RngCore;
use rustls::server::ServerSessionMemoryCache;
use rustls::{HandshakeKind, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Which TLS session a protected data connection must resume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SessionReuse {
    /// A session issued to a control connection of the same user from the same address.
    #[default]
    SameUser,
    /// The session of the data connection's own control connection.
    SameConnection,
    /// No resumption required (for clients that cannot resume).
    Off,
}

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
    /// Which TLS session a protected data connection must resume.
    pub session_reuse: SessionReuse,
    /// CCC is accepted (the control connection goes back to clear text after login).
    pub allow_ccc: bool,
    /// Longest a TLS handshake may take.
    pub handshake_timeout: Duration,
}

impl TlsConfig {
    /// Settings with the safe defaults: TLS optional, session reuse required (same user), no
    /// CCC, 10-second handshakes.
    pub fn new(server_config: Arc<rustls::ServerConfig>) -> Self {
        TlsConfig {
            server_config,
            required_for_login: false,
            required_for_data: false,
            session_reuse: SessionReuse::default(),
            allow_ccc: false,
            handshake_timeout: Duration::from_secs(10),
        }
    }

    /// TLS 1.2 and 1.3 (ring) with the certificate chain and private key in these PEM files,
    /// ALPN `ftp`, no client certificates, and the defaults of [`new`](Self::new).
    pub fn from_pem_files(cert: &std::path::Path, key: &std::path::Path) -> io::Result<Self> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let bad = |path: &std::path::Path, e: &dyn std::fmt::Display| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| bad(cert, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(cert, &e))?;
        if chain.is_empty() {
            return Err(bad(cert, &"no certificate in the file"));
        }
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
        Self::from_der(chain, key_der)
    }

    /// Like [`from_pem_files`](Self::from_pem_files), with a certificate generated now for
    /// `names` (host names or IP addresses): for tests and first trials.
    #[cfg(feature = "self-signed")]
    pub fn self_signed(names: &[&str]) -> io::Result<Self> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let generated = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
        let key =
            rustls_pki_types::PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
        Self::from_der(vec![generated.cert.der().clone()], key)
    }

    fn from_der(
        chain: Vec<rustls_pki_types::CertificateDer<'static>>,
        key: rustls_pki_types::PrivateKeyDer<'static>,
    ) -> io::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        // RFC 4217 clients that offer ALPN must offer "ftp"; those that offer none are fine.
        config.alpn_protocols = vec![b"ftp".to_vec()];
        Ok(TlsConfig::new(Arc::new(config)))
    }
}

/// Acceptors sharing one session cache and one set of ticket keys.
///
/// Only control connections create resumable sessions. Data connections may resume them but
/// never get a session of their own (no TLS 1.3 tickets, no TLS 1.2 ticket or cache entry):
/// otherwise an intruder whose data connection was refused would leave with a fresh session it
/// could resume on the next attempt. It also means no unread tickets wait in an uploading
/// client's socket, whose close would then become a reset that can cut the upload short.
struct Acceptors {
    control: TlsAcceptor,
    data: TlsAcceptor,
}

/// TLS 1.3 tickets a control connection hands out; clients that use each ticket once (rustls)
/// can open this many protected data connections per control connection. rustls clients keep
/// at most eight per server.
const CONTROL_TICKETS: usize = 8;

/// Resumes sessions from the shared cache but stores none.
#[derive(Debug)]
struct ResumeOnlyCache(Arc<dyn rustls::server::StoresServerSessions>);

impl rustls::server::StoresServerSessions for ResumeOnlyCache {
    fn put(&self, _key: Vec<u8>, _value: Vec<u8>) -> bool {
        false
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(key)
    }
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.take(key)
    }
    fn can_cache(&self) -> bool {
        false
    }
}

/// Decrypts tickets with the shared keys but issues none.
#[derive(Debug)]
struct DecryptOnlyTicketer(Arc<dyn rustls::server::ProducesTickets>);

impl rustls::server::ProducesTickets for DecryptOnlyTicketer {
    fn enabled(&self) -> bool {
        true
    }
    fn lifetime(&self) -> u32 {
        self.0.lifetime()
    }
    fn encrypt(&self, _plain: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.0.decrypt(cipher)
    }
}

impl Acceptors {
    fn new(base: &rustls::ServerConfig) -> Result<Acceptors, rustls::Error> {
        let mut control = base.clone();
        control.session_storage = ServerSessionMemoryCache::new(1024);
        control.ticketer = rustls::crypto::ring::Ticketer::new()?;
        control.send_tls13_tickets = CONTROL_TICKETS;
        let mut data = control.clone();
        data.session_storage = Arc::new(ResumeOnlyCache(control.session_storage.clone()));
        data.ticketer = Arc::new(DecryptOnlyTicketer(control.ticketer.clone()));
        data.send_tls13_tickets = 0;
        Ok(Acceptors {
            control: TlsAcceptor::from(Arc::new(control)),
            data: TlsAcceptor::from(Arc::new(data)),
        })
    }
}

#[derive(Debug, Clone)]
struct Owner {
    ip: IpAddr,
    /// None until the control connection logs in.
    user: Option<String>,
    since: Instant,
}

/// How long a data connection waits for the control connection whose ticket it presents to
/// finish logging in (clients that share a session cache may use a ticket of a connection they
/// opened a moment ago).
const PENDING_LOGIN_WAIT: Duration = Duration::from_secs(3);

/// Tokens remembered at most, and for how long (longer than a ticket lives).
const MAX_OWNERS: usize = 100_000;
const OWNER_LIFETIME: Duration = Duration::from_secs(13 * 3600);

/// The server's TLS state, shared by all sessions.
pub(crate) struct ServerTls {
    settings: TlsConfig,
    shared: Arc<Acceptors>,
    /// TLS 1.3 ticket token -> the logged-in control connection that issued it.
    owners: Mutex<HashMap<[u8; 16], Owner>>,
}

impl ServerTls {
    pub(crate) fn new(settings: TlsConfig) -> Result<ServerTls, rustls::Error> {
        let shared = Arc::new(Acceptors::new(&settings.server_config)?);
        Ok(ServerTls {
            settings,
            shared,
            owners: Mutex::new(HashMap::new()),
        })
    }

    /// TLS for one control connection from `peer_ip`.
    pub(crate) fn session(self: &Arc<Self>, peer_ip: IpAddr) -> Result<SessionTls, rustls::Error> {
        let acceptors = match self.settings.session_reuse {
            SessionReuse::SameConnection => Arc::new(Acceptors::new(&self.settings.server_config)?),
            SessionReuse::SameUser | SessionReuse::Off => self.shared.clone(),
        };
        let mut token = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut token);
        let session = SessionTls {
            server: self.clone(),
            acceptors,
            token,
            peer_ip,
        };
        session.record(None);
        Ok(session)
    }

    fn owner(&self, token: &[u8]) -> Option<Owner> {
        let token: [u8; 16] = token.try_into().ok()?;
        self.owners.lock().ok()?.get(&token).cloned()
    }
}

/// One control connection's TLS context, shared with its data connections.
pub(crate) struct SessionTls {
    server: Arc<ServerTls>,
    acceptors: Arc<Acceptors>,
    token: [u8; 16],
    peer_ip: IpAddr,
}

impl SessionTls {
    /// Runs the server side of the control connection's handshake, bounded by the handshake
    /// timeout.
    pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        tcp: S,
    ) -> io::Result<TlsStream<S>> {
        self.handshake(&self.acceptors.control, tcp).await
    }

    /// The same for a data connection.
    pub(crate) async fn accept_data(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.handshake(&self.acceptors.data, tcp).await
    }

    async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        acceptor: &TlsAcceptor,
        tcp: S,
    ) -> io::Result<TlsStream<S>> {
        let token = self.token;
        let handshake = acceptor.accept_with(tcp, move |conn| conn.set_resumption_data(&token));
        match tokio::time::timeout(self.server.settings.handshake_timeout, handshake).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }

    /// The control connection logged in as `user`: its tickets now vouch for that user.
    pub(crate) fn logged_in(&self, user: &str) {
        self.record(Some(user.to_string()));
    }

    /// Records who this connection's token stands for (pending until login). Pending entries
    /// exist only for open connections, so they are bounded by the connection limit.
    fn record(&self, user: Option<String>) {
        if self.server.settings.session_reuse != SessionReuse::SameUser {
            return;
        }
        let Ok(mut owners) = self.server.owners.lock() else {
            return;
        };
        if owners.len() >= MAX_OWNERS {
            let now = Instant::now();
            owners.retain(|_, o| now.duration_since(o.since) < OWNER_LIFETIME);
            if owners.len() >= MAX_OWNERS {
                // Forget the oldest half rather than grow without bound.
                let mut ages: Vec<Instant> = owners.values().map(|o| o.since).collect();
                ages.sort();
                let cutoff = ages[ages.len() / 2];
                owners.retain(|_, o| o.since > cutoff);
            }
        }
        owners.insert(
            self.token,
            Owner {
                ip: self.peer_ip,
                user,
                since: Instant::now(),
            },
        );
    }

    /// Whether a protected data connection of `user` may be used.
    pub(crate) async fn accepts_data_connection(
        &self,
        stream: &TlsStream<TcpStream>,
        user: &str,
    ) -> bool {
        let conn = stream.get_ref().1;
        let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
        let tls13 = conn.protocol_version() == Some(ProtocolVersion::TLSv1_3);
        match self.server.settings.session_reuse {
            SessionReuse::Off => true,
            SessionReuse::SameConnection => {
                // TLS 1.2 resumption data is not exposed, but the session cache and ticket
                // keys belong to this control connection alone.
                resumed && (!tls13 || conn.received_resumption_data() == Some(&self.token[..]))
            }
            SessionReuse::SameUser => {
                if !resumed {
                    return false;
                }
                if !tls13 {
                    return true;
                }
                match conn.received_resumption_data() {
                    Some(token) if token == self.token => true,
                    Some(token) => self.sibling_vouches(token, user).await,
                    None => false,
                }
            }
        }
    }
}

impl SessionTls {
    /// Whether the control connection that issued `token` is logged in as `user` from this
    /// address, waiting a little if it is still logging in.
    async fn sibling_vouches(&self, token: &[u8], user: &str) -> bool {
        let deadline = Instant::now() + PENDING_LOGIN_WAIT;
        loop {
            match self.server.owner(token) {
                Some(owner) if owner.ip != self.peer_ip => return false,
                Some(Owner {
                    user: Some(owner), ..
                }) => return owner == user,
                Some(Owner { user: None, .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => return false,
            }
        }
    }
}

impl Drop for SessionTls {
    fn drop(&mut self) {
        // A connection that never logged in vouches for nobody.
        if let Ok(mut owners) = self.server.owners.lock() {
            if owners.get(&self.token).is_some_and(|o| o.user.is_none()) {
                owners.remove(&self.token);
            }
        }
    }
}

/// A human-readable summary of a TLS connection for the log.
pub(crate) fn describe<S>(stream: &TlsStream<S>) -> String {
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

/// A connection that is clear or TLS: a data connection over a plain `TcpStream`, the control
/// connection over its [`ControlSocket`](crate::control_socket::ControlSocket).
pub(crate) enum Stream<S = TcpStream> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
    /// Only while a TLS upgrade or CCC is in progress.
    Closed,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection closed")
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
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

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
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
