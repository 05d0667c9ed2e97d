//! The `Authenticator` trait: who may log in, where their home is, and what they may do; the
//! [`LoginRequest`] it is given; and [`AuthChain`], several authenticators asked in turn.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use ftpgate_proto::{Password, PermissionMap};
use rustls_pki_types::CertificateDer;

/// One login attempt: the name and password, and where and how the client connected.
///
/// The engine makes one per PASS; [`LoginRequest::new`] and the `with_` methods make one in
/// tests and in authenticators that ask others (an [`AuthChain`]).
#[derive(Debug, Clone)]
pub struct LoginRequest<'a> {
    username: &'a str,
    password: &'a Password,
    client: SocketAddr,
    local: SocketAddr,
    tls: bool,
    client_certificates: &'a [CertificateDer<'static>],
    host: Option<&'a str>,
    session_id: u64,
}

impl<'a> LoginRequest<'a> {
    /// A request for `username` and `password`, from and to `0.0.0.0:0`, without TLS,
    /// certificate or virtual host, session 0.
    pub fn new(username: &'a str, password: &'a Password) -> Self {
        let nowhere = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        LoginRequest {
            username,
            password,
            client: nowhere,
            local: nowhere,
            tls: false,
            client_certificates: &[],
            host: None,
            session_id: 0,
        }
    }

    /// The client's and the server's ends of the control connection.
    pub fn with_addresses(mut self, client: SocketAddr, local: SocketAddr) -> Self {
        self.client = client;
        self.local = local;
        self
    }

    /// Whether the control connection is TLS, and the client's certificate chain (end entity
    /// first, verified by the TLS layer against the configured client CA), if it gave one.
    pub fn with_tls(mut self, tls: bool, certificates: &'a [CertificateDer<'static>]) -> Self {
        self.tls = tls;
        self.client_certificates = certificates;
        self
    }

    /// The virtual host chosen with HOST.
    pub fn with_host(mut self, host: Option<&'a str>) -> Self {
        self.host = host;
        self
    }

    /// The session's number (unique among the server's connections since it started).
    pub fn with_session_id(mut self, id: u64) -> Self {
        self.session_id = id;
        self
    }

    /// The login name, as the client sent it.
    pub fn username(&self) -> &'a str {
        self.username
    }

    /// The password (empty for `PASS` with no argument).
    pub fn password(&self) -> &'a Password {
        self.password
    }

    /// The client's address.
    pub fn client(&self) -> SocketAddr {
        self.client
    }

    /// The server's address the client connected to.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Whether the control connection is TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The client certificate chain (DER, end entity first); empty without one.
    pub fn client_certificates(&self) -> &'a [CertificateDer<'static>] {
        self.client_certificates
    }

    /// The virtual host chosen with HOST, if any.
    pub fn host(&self) -> Option<&'a str> {
        self.host
    }

    /// The session's number.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }
}

/// A user who logged in.
#[derive(Debug, Clone)]
pub struct User {
    /// The login name.
    pub name: String,
    /// The home, in the storage factory's terms (a directory on disk, a bucket prefix, ...).
    pub home: String,
    /// What the user may do where.
    pub permissions: PermissionMap,
    /// The user must log in over TLS and protect data connections.
    pub tls_required: bool,
    /// Most bytes the user's files may take, enforced while uploads arrive.
    pub quota_bytes: Option<u64>,
    /// Most files the user may have: an upload that would make one more is refused;
    /// replacing a file does not count, deleting one frees a place.
    pub quota_files: Option<u64>,
    /// Bandwidth, sessions, networks and validity, enforced by the engine.
    pub limits: UserLimits,
}

/// A user's policy beyond permissions and quota. The default limits nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserLimits {
    /// Bytes per second the user may upload, in each session and across all its sessions.
    pub upload_rate: Option<u64>,
    /// Bytes per second the user may download, in each session and across all its sessions.
    pub download_rate: Option<u64>,
    /// Rates for clients in particular networks (the first that holds the client wins), in
    /// place of `upload_rate` and `download_rate`.
    pub network_rates: Vec<NetworkRate>,
    /// Most sessions logged in as this user at once.
    pub max_sessions: Option<u32>,
    /// If not empty, the user may log in only from these networks.
    pub allowed_networks: Vec<ipnet::IpNet>,
    /// The user may not log in from these networks.
    pub denied_networks: Vec<ipnet::IpNet>,
    /// The account may not log in from this time on.
    pub expires_at: Option<std::time::SystemTime>,
    /// The account may not log in at all.
    pub disabled: bool,
}

/// Rates for clients in one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRate {
    /// The clients' network.
    pub network: ipnet::IpNet,
    /// Upload bytes per second (`None`: unlimited).
    pub upload_rate: Option<u64>,
    /// Download bytes per second (`None`: unlimited).
    pub download_rate: Option<u64>,
}

impl UserLimits {
    /// Why a login from `client` at `now` is refused, if it is.
    pub fn refusal(
        &self,
        client: std::net::IpAddr,
        now: std::time::SystemTime,
    ) -> Option<&'static str> {
        if self.disabled {
            return Some("the account is disabled");
        }
        if self.expires_at.is_some_and(|at| now >= at) {
            return Some("the account has expired");
        }
        if self.denied_networks.iter().any(|n| n.contains(&client)) {
            return Some("the client's network is denied to this user");
        }
        if !self.allowed_networks.is_empty()
            && !self.allowed_networks.iter().any(|n| n.contains(&client))
        {
            return Some("the client's network is not allowed for this user");
        }
        None
    }

    /// Checks limits that came from outside (a configuration file, a directory, a login
    /// service): a rate of 0 bytes per second or `max_sessions = 0` is a mistake, never a
    /// limit (leave a rate out for none; use `disabled` to refuse every login).
    pub fn check(&self) -> Result<(), String> {
        let rates = [
            ("upload_rate", self.upload_rate),
            ("download_rate", self.download_rate),
        ];
        let network_rates = self.network_rates.iter().flat_map(|r| {
            [
                ("network_rates[].upload_rate", r.upload_rate),
                ("network_rates[].download_rate", r.download_rate),
            ]
        });
        for (name, rate) in rates.into_iter().chain(network_rates) {
            if rate == Some(0) {
                return Err(format!(
                    "{name}: must be more than 0 bytes per second (leave it out for no limit)"
                ));
            }
        }
        if self.max_sessions == Some(0) {
            return Err(
                "max_sessions: must be at least 1 (use disabled to refuse every login)".into(),
            );
        }
        Ok(())
    }

    /// The (upload, download) rates for a client at `client`.
    pub fn rates_for(&self, client: std::net::IpAddr) -> (Option<u64>, Option<u64>) {
        match self
            .network_rates
            .iter()
            .find(|r| r.network.contains(&client))
        {
            Some(rate) => (rate.upload_rate, rate.download_rate),
            None => (self.upload_rate, self.download_rate),
        }
    }
}

/// A CIDR network (`10.0.0.0/8`, `2001:db8::/32`), or one address as a network of its own.
pub fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        return Ok(net);
    }
    match text.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(ipnet::IpNet::from(ip)),
        Err(_) => Err(format!(
            "{text:?} is not a network (10.0.0.0/8, 2001:db8::/32) or an address"
        )),
    }
}

impl User {
    /// A user with `permissions` everywhere in `home`, no quota and no TLS requirement; set the
    /// public fields for the rest.
    pub fn new(
        name: impl Into<String>,
        home: impl Into<String>,
        permissions: ftpgate_proto::Permissions,
    ) -> User {
        User {
            name: name.into(),
            home: home.into(),
            permissions: PermissionMap::uniform(permissions),
            tls_required: false,
            quota_bytes: None,
            quota_files: None,
            limits: UserLimits::default(),
        }
    }
}

/// Why a login failed.
///
/// The client gets 530 for [`InvalidCredentials`](AuthError::InvalidCredentials) and
/// [`UnknownUser`](AuthError::UnknownUser) alike (both count towards login delays and bans),
/// and 421 with the connection closed for [`Unavailable`](AuthError::Unavailable) (logged, never
/// counted as a failed login).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The user is known and the password (or certificate) is wrong.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// This authenticator does not know the user: in an [`AuthChain`] the next one is asked.
    #[error("unknown user")]
    UnknownUser,
    /// The authenticator could not decide (its backend is unreachable or timed out).
    #[error("authentication unavailable: {0}")]
    Unavailable(String),
}

/// Checks credentials.
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// The user for this login. Implementations should take the same time for an unknown
    /// user as for a wrong password.
    async fn authenticate(&self, request: &LoginRequest<'_>) -> Result<User, AuthError>;
}

/// Authenticators asked in order: the first that knows the user decides.
///
/// A wrong password stops the chain (no later, perhaps weaker, authenticator is asked); an
/// unknown user goes on to the next; an unavailable authenticator stops the chain with
/// [`AuthError::Unavailable`] unless it was added with `fallthrough_when_unavailable`, in which
/// case the next is asked, and if no later one knows the user the answer is still
/// `Unavailable` (the user may exist where nobody could look).
#[derive(Clone, Default)]
pub struct AuthChain {
    entries: Vec<(Arc<dyn Authenticator>, bool)>,
}

impl AuthChain {
    /// An empty chain (it knows nobody).
    pub fn new() -> Self {
        AuthChain::default()
    }

    /// Adds `auth` at the end; `fallthrough_when_unavailable` lets the chain go on when it
    /// cannot decide.
    pub fn push(
        mut self,
        auth: Arc<dyn Authenticator>,
        fallthrough_when_unavailable: bool,
    ) -> Self {
        self.entries.push((auth, fallthrough_when_unavailable));
        self
    }

    /// How many authenticators the chain holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the chain holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl std::fmt::Debug for AuthChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthChain")
            .field("entries", &self.entries.len())
            .finish()
    }
}

#[async_trait]
impl Authenticator for AuthChain {
    async fn authenticate(&self, request: &LoginRequest<'_>) -> Result<User, AuthError> {
        let mut skipped: Option<String> = None;
        for (auth, fallthrough) in &self.entries {
            match auth.authenticate(request).await {
                Err(AuthError::UnknownUser) => continue,
                Err(AuthError::Unavailable(why)) if *fallthrough => {
                    skipped.get_or_insert(why);
                }
                decided => return decided,
            }
        }
        Err(match skipped {
            Some(why) => AuthError::Unavailable(why),
            None => AuthError::UnknownUser,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftpgate_proto::Permissions;

    /// Knows `name` with password `pw`; or answers `Unavailable` for everyone.
    struct One {
        name: &'static str,
        pw: &'static str,
        down: bool,
    }

    #[async_trait]
    impl Authenticator for One {
        async fn authenticate(&self, request: &LoginRequest<'_>) -> Result<User, AuthError> {
            if self.down {
                return Err(AuthError::Unavailable("down".into()));
            }
            match (request.username(), request.password().expose()) {
                (n, p) if n == self.name && p == self.pw => {
                    Ok(User::new(n, self.pw, Permissions::ALL))
                }
                (n, _) if n == self.name => Err(AuthError::InvalidCredentials),
                _ => Err(AuthError::UnknownUser),
            }
        }
    }

    fn one(name: &'static str, pw: &'static str, down: bool) -> Arc<dyn Authenticator> {
        Arc::new(One { name, pw, down })
    }

    async fn login(chain: &AuthChain, name: &str, pw: &str) -> Result<User, AuthError> {
        let password = Password::new(pw);
        chain
            .authenticate(&LoginRequest::new(name, &password))
            .await
    }

    #[tokio::test]
    async fn the_first_that_knows_the_user_decides() {
        let chain = AuthChain::new()
            .push(one("a", "1", false), false)
            .push(one("a", "2", false), false)
            .push(one("b", "3", false), false);
        assert_eq!(login(&chain, "a", "1").await.unwrap().home, "1");
        // A wrong password stops the chain: the second "a" is never asked.
        assert!(matches!(
            login(&chain, "a", "2").await,
            Err(AuthError::InvalidCredentials)
        ));
        assert_eq!(login(&chain, "b", "3").await.unwrap().home, "3");
        assert!(matches!(
            login(&chain, "c", "3").await,
            Err(AuthError::UnknownUser)
        ));
    }

    #[tokio::test]
    async fn unavailable_stops_unless_the_entry_falls_through() {
        let strict = AuthChain::new()
            .push(one("a", "1", true), false)
            .push(one("b", "2", false), false);
        assert!(matches!(
            login(&strict, "b", "2").await,
            Err(AuthError::Unavailable(_))
        ));
        let lenient = AuthChain::new()
            .push(one("a", "1", true), true)
            .push(one("b", "2", false), false);
        assert_eq!(login(&lenient, "b", "2").await.unwrap().name, "b");
        assert!(matches!(
            login(&lenient, "b", "x").await,
            Err(AuthError::InvalidCredentials)
        ));
        // Nobody after it knows the user: it may exist where nobody could look.
        assert!(matches!(
            login(&lenient, "z", "2").await,
            Err(AuthError::Unavailable(_))
        ));
    }
}
