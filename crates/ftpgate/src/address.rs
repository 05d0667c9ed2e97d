//! The address announced in PASV (227) replies, chosen per client.
//!
//! In order: a [`PassiveAddressResolver`] callback (when it answers), the first
//! [`PassiveAddressRule`] whose network holds the client, the public host (an address, or a name
//! looked up again every `public_host_refresh`), and last the control connection's own local
//! address. EPSV (229) replies carry only a port, so none of this applies to them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ftpgate_proto::hostport::canonical;
use ipnet::IpNet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// A PASV address for the clients of one network: clients whose address is in `network` are
/// told to connect to `address`.
///
/// IPv4-mapped IPv6 client addresses (`::ffff:10.1.2.3`, seen on dual-stack listeners) are
/// matched in their IPv4 form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassiveAddressRule {
    /// The clients this rule applies to, e.g. `10.0.0.0/8`.
    pub network: IpNet,
    /// The address announced to them.
    pub address: Ipv4Addr,
}

impl PassiveAddressRule {
    /// A rule announcing `address` to clients in `network`.
    pub fn new(network: IpNet, address: Ipv4Addr) -> Self {
        PassiveAddressRule { network, address }
    }

    /// Whether the rule applies to a client at `client`.
    pub fn matches(&self, client: IpAddr) -> bool {
        self.network.contains(&canonical(client))
    }
}

/// The signature of a [`PassiveAddressResolver`]'s function.
type ResolveFn = dyn Fn(IpAddr, IpAddr) -> Option<Ipv4Addr> + Send + Sync;

/// A function that picks the PASV address for a client, for rules that a list of networks
/// cannot express (a lookup table, a per-tenant address, …).
///
/// It is called on every PASV with the client's address and the local address of its control
/// connection (both in IPv4 form when they are IPv4-mapped), and runs on the session's task, so
/// it must answer at once (no blocking I/O). `Some` wins over
/// [`ServerConfig::passive_address_rules`](crate::ServerConfig::passive_address_rules);
/// `None` lets the rules, then the public host, then the local address decide.
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr};
/// use ftpgate::PassiveAddressResolver;
///
/// let resolver = PassiveAddressResolver::new(|client: IpAddr, _local: IpAddr| {
///     client.is_loopback().then_some(Ipv4Addr::LOCALHOST)
/// });
/// assert_eq!(
///     resolver.resolve("127.0.0.9".parse().unwrap(), "127.0.0.1".parse().unwrap()),
///     Some(Ipv4Addr::LOCALHOST)
/// );
/// ```
#[derive(Clone)]
pub struct PassiveAddressResolver(Arc<ResolveFn>);

impl PassiveAddressResolver {
    /// Wraps `f(client_ip, local_ip)`.
    pub fn new<F>(f: F) -> Self
    where
        F: Fn(IpAddr, IpAddr) -> Option<Ipv4Addr> + Send + Sync + 'static,
    {
        PassiveAddressResolver(Arc::new(f))
    }

    /// The address `f` picks for a client at `client` whose control connection arrived on
    /// `local`.
    pub fn resolve(&self, client: IpAddr, local: IpAddr) -> Option<Ipv4Addr> {
        (self.0)(canonical(client), canonical(local))
    }
}

impl fmt::Debug for PassiveAddressResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PassiveAddressResolver(..)")
    }
}

/// The configured public host: a fixed address, or a name whose last good address is kept.
enum PublicHost {
    None,
    Fixed(Ipv4Addr),
    Name {
        name: String,
        /// The last address the name resolved to; kept when a later lookup fails.
        last: Mutex<Option<Ipv4Addr>>,
    },
}

/// Chooses PASV addresses; shared by every session.
pub(crate) struct PassiveAddresses {
    resolver: Option<PassiveAddressResolver>,
    rules: Vec<PassiveAddressRule>,
    public: PublicHost,
    refresh: Duration,
}

/// Longest a single lookup of the public host may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// While the public host has never resolved, how soon to try again.
const FIRST_LOOKUP_RETRY: Duration = Duration::from_secs(5);

impl PassiveAddresses {
    pub(crate) fn new(
        resolver: Option<PassiveAddressResolver>,
        rules: Vec<PassiveAddressRule>,
        public_host: Option<&str>,
        refresh: Duration,
    ) -> Self {
        let public = match public_host {
            None => PublicHost::None,
            Some(text) => match text.parse::<Ipv4Addr>() {
                Ok(ip) => PublicHost::Fixed(ip),
                Err(_) => PublicHost::Name {
                    name: text.to_string(),
                    last: Mutex::new(None),
                },
            },
        };
        PassiveAddresses {
            resolver,
            rules,
            public,
            refresh,
        }
    }

    /// The IPv4 address to announce in a 227 reply to `client`, whose control connection is on
    /// `local`; `None` when there is none (an IPv6 control connection and nothing configured).
    pub(crate) fn advertised(&self, client: IpAddr, local: IpAddr) -> Option<Ipv4Addr> {
        if let Some(ip) = self
            .resolver
            .as_ref()
            .and_then(|r| r.resolve(client, local))
        {
            return Some(ip);
        }
        if let Some(rule) = self.rules.iter().find(|r| r.matches(client)) {
            return Some(rule.address);
        }
        match &self.public {
            PublicHost::Fixed(ip) => return Some(*ip),
            PublicHost::Name { last, .. } => {
                if let Some(ip) = last.lock().ok().and_then(|g| *g) {
                    return Some(ip);
                }
                // Never resolved yet: the local address is the best left.
            }
            PublicHost::None => {}
        }
        match canonical(local) {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        }
    }

    /// Looks the public host name up once (at start), if there is one.
    pub(crate) async fn resolve_now(&self) {
        self.refresh_with(lookup_ipv4).await;
    }

    /// Looks the public host name up with `lookup` and keeps the answer; a failed lookup keeps
    /// the last good address. Returns whether there is an address now.
    async fn refresh_with<F, Fut>(&self, lookup: F) -> bool
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Option<Ipv4Addr>>,
    {
        let PublicHost::Name { name, last } = &self.public else {
            return true;
        };
        let found = tokio::time::timeout(LOOKUP_TIMEOUT, lookup(name.clone()))
            .await
            .ok()
            .flatten();
        let Ok(mut last) = last.lock() else {
            return false;
        };
        match (found, *last) {
            (Some(ip), previous) => {
                if previous != Some(ip) {
                    info!(host = %name, address = %ip, previous = previous.map(tracing::field::display), "public_host resolved");
                }
                *last = Some(ip);
                true
            }
            (None, Some(kept)) => {
                warn!(host = %name, keeping = %kept, "cannot resolve public_host; keeping the last address");
                true
            }
            (None, None) => {
                warn!(host = %name, "cannot resolve public_host to an IPv4 address; PASV announces the local address until it resolves");
                false
            }
        }
    }

    /// Looks the public host name up again every `refresh` until `stop` is cancelled (sooner
    /// while it has never resolved). Returns at once when the public host is not a name.
    pub(crate) async fn refresh_loop(self: Arc<Self>, stop: CancellationToken) {
        self.refresh_loop_with(stop, lookup_ipv4).await;
    }

    async fn refresh_loop_with<F, Fut>(&self, stop: CancellationToken, lookup: F)
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Option<Ipv4Addr>>,
    {
        if !matches!(self.public, PublicHost::Name { .. }) {
            return;
        }
        let mut resolved = self.has_public_address();
        loop {
            let wait = if resolved {
                self.refresh
            } else {
                self.refresh.min(FIRST_LOOKUP_RETRY)
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            resolved = self.refresh_with(&lookup).await;
        }
    }

    fn has_public_address(&self) -> bool {
        match &self.public {
            PublicHost::Name { last, .. } => last.lock().is_ok_and(|g| g.is_some()),
            _ => true,
        }
    }
}

/// The first IPv4 address `name` resolves to.
async fn lookup_ipv4(name: String) -> Option<Ipv4Addr> {
    tokio::net::lookup_host((name.as_str(), 0))
        .await
        .ok()?
        .find_map(|a| match canonical(a.ip()) {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn v4(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    fn rules() -> Vec<PassiveAddressRule> {
        vec![
            PassiveAddressRule::new("10.0.0.0/8".parse().unwrap(), v4("10.1.2.3")),
            PassiveAddressRule::new("10.9.0.0/16".parse().unwrap(), v4("10.9.9.9")),
            PassiveAddressRule::new("fd00::/8".parse().unwrap(), v4("10.7.7.7")),
        ]
    }

    #[test]
    fn first_matching_rule_wins_then_public_then_local() {
        let a = PassiveAddresses::new(None, rules(), Some("203.0.113.5"), Duration::from_secs(60));
        let local = ip("192.168.1.10");
        assert_eq!(a.advertised(ip("10.9.1.1"), local), Some(v4("10.1.2.3")));
        assert_eq!(
            a.advertised(ip("::ffff:10.200.0.1"), local),
            Some(v4("10.1.2.3"))
        );
        assert_eq!(a.advertised(ip("fd12::1"), local), Some(v4("10.7.7.7")));
        assert_eq!(
            a.advertised(ip("198.51.100.7"), local),
            Some(v4("203.0.113.5"))
        );
        let no_public = PassiveAddresses::new(None, rules(), None, Duration::from_secs(60));
        assert_eq!(
            no_public.advertised(ip("198.51.100.7"), local),
            Some(v4("192.168.1.10"))
        );
        assert_eq!(
            no_public.advertised(ip("198.51.100.7"), ip("::ffff:192.168.1.10")),
            Some(v4("192.168.1.10"))
        );
        assert_eq!(no_public.advertised(ip("2001:db8::1"), ip("::1")), None);
    }

    #[test]
    fn the_resolver_wins_when_it_answers() {
        let resolver = PassiveAddressResolver::new(|client, local| {
            assert_eq!(local, ip("192.168.1.10"));
            (client == ip("10.9.1.1")).then(|| v4("172.16.0.1"))
        });
        let a = PassiveAddresses::new(Some(resolver), rules(), None, Duration::from_secs(60));
        let local = ip("::ffff:192.168.1.10");
        assert_eq!(a.advertised(ip("10.9.1.1"), local), Some(v4("172.16.0.1")));
        assert_eq!(a.advertised(ip("10.9.1.2"), local), Some(v4("10.1.2.3")));
    }

    #[tokio::test]
    async fn a_public_name_is_looked_up_again_and_a_failure_keeps_the_last_address() {
        let a = Arc::new(PassiveAddresses::new(
            None,
            Vec::new(),
            Some("ftp.example.test"),
            Duration::from_millis(30),
        ));
        let local = ip("192.168.1.10");
        // Not resolved yet: the local address.
        assert_eq!(
            a.advertised(ip("198.51.100.7"), local),
            Some(v4("192.168.1.10"))
        );
        let answers = [Some(v4("203.0.113.1")), None, Some(v4("203.0.113.2")), None];
        let calls = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let task = {
            let (a, calls, stop) = (a.clone(), calls.clone(), stop.clone());
            tokio::spawn(async move {
                a.refresh_loop_with(stop, |name| {
                    assert_eq!(name, "ftp.example.test");
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    let answer = answers.get(n).copied().flatten();
                    async move { answer }
                })
                .await;
            })
        };
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while calls.load(Ordering::SeqCst) < answers.len() + 1 {
            assert!(tokio::time::Instant::now() < deadline, "lookups stopped");
            let now = a.advertised(ip("198.51.100.7"), local);
            if seen.last() != Some(&now) {
                seen.push(now);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        stop.cancel();
        task.await.unwrap();
        assert_eq!(
            seen,
            vec![
                Some(v4("192.168.1.10")),
                Some(v4("203.0.113.1")),
                Some(v4("203.0.113.2")),
            ]
        );
        assert_eq!(
            a.advertised(ip("198.51.100.7"), local),
            Some(v4("203.0.113.2"))
        );
    }
}
