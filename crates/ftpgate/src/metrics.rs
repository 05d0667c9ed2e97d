//! Prometheus metrics of the engine (`prometheus-client`), optional: give the server an
//! [`Arc<Metrics>`] with [`Server::with_metrics`](crate::Server::with_metrics), made by
//! [`Metrics::register`] into the embedder's registry.
//!
//! Every label value the engine uses is known when the metrics are made, so each counter and
//! histogram a session touches is resolved once, here, into a plain handle (an `Arc` of an
//! atomic): a command costs one index into an array and one atomic add, with no lookup, lock or
//! allocation. Connection counters are resolved per listener when its accept loop starts. No
//! label carries a user name or a path.

use std::net::SocketAddr;
use std::time::Duration;

use ftpgate_proto::command::COMMANDS;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

/// Which way a transfer's bytes went, as a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Download = 0,
    Upload = 1,
    List = 2,
}

const FLOWS: [&str; 3] = ["download", "upload", "list"];

/// How a transfer ended, as a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Complete = 0,
    Aborted = 1,
    Failed = 2,
}

const ENDINGS: [&str; 3] = ["complete", "aborted", "failed"];

/// Why a connection was refused before its session started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    MaxConnections = 0,
    PerIp = 1,
    Banned = 2,
    Tls = 3,
    /// A trusted peer sent no valid PROXY header (or an untrusted one sent a header).
    ProxyHeader = 4,
}

const REJECTIONS: [&str; 5] = ["max_connections", "per_ip", "banned", "tls", "proxy_header"];

/// Which deadline ended a session or a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timeout {
    Idle = 0,
    Login = 1,
    Data = 2,
}

const TIMEOUTS: [&str; 3] = ["idle", "login", "data"];

/// The engine's metrics, registered into a [`Registry`].
pub struct Metrics {
    connections: Family<Labels, Counter>,
    pub(crate) connections_active: Gauge,
    rejected: [Counter; 5],
    /// `[result ok/failed][method password/anonymous]`.
    logins: [[Counter; 2]; 2],
    pub(crate) login_duration: Histogram,
    /// One per `COMMANDS` entry, then the one for lines that are no command.
    commands: Vec<Counter>,
    replies: [Counter; 5],
    transfers: [[Counter; 3]; 3],
    transfer_bytes: [Counter; 3],
    transfer_duration: [Histogram; 3],
    transfer_size: [Histogram; 3],
    tls_handshakes_ok: [Counter; 2],
    tls_handshakes_failed: Counter,
    pub(crate) passive_ports_in_use: Gauge,
    pub(crate) passive_ports_exhausted: Counter,
    pub(crate) bans_active: Gauge,
    timeouts: [Counter; 3],
    pub(crate) shared_state_failures: Counter,
}

impl Metrics {
    /// Registers the engine's metrics (all named `ftpgate_*`) into `registry`.
    pub fn register(registry: &mut Registry) -> std::sync::Arc<Metrics> {
        registry.register(
            "ftpgate_build",
            "The engine's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let connections = Family::<Labels, Counter>::default();
        registry.register(
            "ftpgate_connections",
            "Control connections accepted, by listener and whether it is implicit TLS",
            connections.clone(),
        );
        let connections_active = Gauge::default();
        registry.register(
            "ftpgate_connections_active",
            "Control connections open now",
            connections_active.clone(),
        );
        let rejected_family = Family::<Labels, Counter>::default();
        registry.register(
            "ftpgate_connections_rejected",
            "Connections refused before a session started, by reason",
            rejected_family.clone(),
        );
        let rejected = REJECTIONS.map(|r| {
            rejected_family
                .get_or_create(&labels(&[("reason", r)]))
                .clone()
        });
        let logins_family = Family::<Labels, Counter>::default();
        registry.register(
            "ftpgate_logins",
            "Logins, by result (ok, failed) and method (password, anonymous)",
            logins_family.clone(),
        );
        let logins = ["ok", "failed"].map(|result| {
            ["password", "anonymous"].map(|method| {
                logins_family
                    .get_or_create(&labels(&[("result", result), ("method", method)]))
                    .clone()
            })
        });
        let login_duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "ftpgate_login_duration_seconds",
            "Time to check a login (authenticator and opening the home), failed ones included",
            login_duration.clone(),
        );
        let commands_family = Family::<Labels, Counter>::default();
        registry.register(
            "ftpgate_commands",
            "Commands received, by verb (lines that are no command as \"unknown\")",
            commands_family.clone(),
        );
        let commands = COMMANDS
            .iter()
            .map(|spec| spec.verb)
            .chain(std::iter::once("unknown"))
            .map(|verb| {
                commands_family
                    .get_or_create(&labels(&[("command", verb)]))
                    .clone()
            })
            .collect();
        let replies_family = Family::<Labels, Counter>::default();
        registry.register(
            "ftpgate_replies",
            "Replies sent, by class (1xx to 5xx)",
            replies_family.clone(),
        );
        let replies = ["1xx", "2xx", "3xx", "4xx", "5xx"].map(|class| {
            replies_family
                .get_or_create(&labels(&[("class", class)]))
                .clone()
        });
        let transfers_family = Family::<Labels, Counter>::default();
        registry.register(
            "ftpgate_transfers",
            "Transfers ended, by direction (download, upload, list) and result (complete, aborted, failed)",
            transfers_family.clone(),
        );
        let transfers = FLOWS.map(|direction| {
            ENDINGS.map(|result| {
                transfers_family
                    .get_or_create(&labels(&[("direction", direction), ("result", result)]))
                    .clone()
            })
        });
        let bytes_family = Family::<Labels, Counter>::default();
        registry.register(
            "ftpgate_transfer_bytes",
            "Bytes moved on data connections, by direction",
            bytes_family.clone(),
        );
        let transfer_bytes = FLOWS.map(|d| {
            bytes_family
                .get_or_create(&labels(&[("direction", d)]))
                .clone()
        });
        let duration_family: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 4.0, 12)));
        registry.register(
            "ftpgate_transfer_duration_seconds",
            "Transfer time, from the command to the end, by direction",
            duration_family.clone(),
        );
        let transfer_duration = FLOWS.map(|d| {
            duration_family
                .get_or_create(&labels(&[("direction", d)]))
                .clone()
        });
        let size_family: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(1024.0, 4.0, 14)));
        registry.register(
            "ftpgate_transfer_size_bytes",
            "Bytes moved per transfer, by direction",
            size_family.clone(),
        );
        let transfer_size = FLOWS.map(|d| {
            size_family
                .get_or_create(&labels(&[("direction", d)]))
                .clone()
        });
        let tls_family = Family::<Labels, Counter>::default();
        registry.register(
            "ftpgate_tls_handshakes",
            "TLS handshakes on control and data connections, by result and protocol version",
            tls_family.clone(),
        );
        let tls_handshakes_ok = ["TLSv1.2", "TLSv1.3"].map(|version| {
            tls_family
                .get_or_create(&labels(&[("result", "ok"), ("version", version)]))
                .clone()
        });
        let tls_handshakes_failed = tls_family
            .get_or_create(&labels(&[("result", "failed"), ("version", "unknown")]))
            .clone();
        let passive_ports_in_use = Gauge::default();
        registry.register(
            "ftpgate_passive_ports_in_use",
            "Passive endpoints open now (a listener of a session's own, or a place in a shared port's queue)",
            passive_ports_in_use.clone(),
        );
        let passive_ports_exhausted = Counter::default();
        registry.register(
            "ftpgate_passive_ports_exhausted",
            "PASV/EPSV refused because no port of the range was free",
            passive_ports_exhausted.clone(),
        );
        let bans_active = Gauge::default();
        registry.register(
            "ftpgate_bans_active",
            "Client addresses banned now after failed logins",
            bans_active.clone(),
        );
        let timeouts_family = Family::<Labels, Counter>::default();
        registry.register(
            "ftpgate_timeouts",
            "Deadlines that passed: idle and login (the session closed), data (a transfer stalled)",
            timeouts_family.clone(),
        );
        let timeouts = TIMEOUTS.map(|r| {
            timeouts_family
                .get_or_create(&labels(&[("reason", r)]))
                .clone()
        });
        let shared_state_failures = Counter::default();
        registry.register(
            "ftpgate_shared_state_failures",
            "Requests to the fleet's shared state (Redis) that failed or timed out; the node decided alone",
            shared_state_failures.clone(),
        );
        std::sync::Arc::new(Metrics {
            connections,
            connections_active,
            rejected,
            logins,
            login_duration,
            commands,
            replies,
            transfers,
            transfer_bytes,
            transfer_duration,
            transfer_size,
            tls_handshakes_ok,
            tls_handshakes_failed,
            passive_ports_in_use,
            passive_ports_exhausted,
            bans_active,
            timeouts,
            shared_state_failures,
        })
    }

    /// The accepted-connections counter of one listener, resolved once per accept loop.
    pub(crate) fn connections_of(
        &self,
        listener: Option<SocketAddr>,
        implicit_tls: bool,
    ) -> Counter {
        let listener = listener.map_or_else(String::new, |a| a.to_string());
        let tls = if implicit_tls { "implicit" } else { "none" };
        self.connections
            .get_or_create(&vec![("listener", listener), ("tls", tls.to_string())])
            .clone()
    }

    pub(crate) fn rejected(&self, why: Rejection) {
        self.rejected[why as usize].inc();
    }

    pub(crate) fn login(&self, ok: bool, anonymous: bool, took: Duration) {
        self.logins[usize::from(!ok)][usize::from(anonymous)].inc();
        self.login_duration.observe(took.as_secs_f64());
    }

    /// A command, by its `COMMANDS` index (`None`: a line that was no command).
    pub(crate) fn command(&self, index: Option<usize>) {
        let i = index.unwrap_or(COMMANDS.len()).min(self.commands.len() - 1);
        self.commands[i].inc();
    }

    /// A reply of code `code`.
    pub(crate) fn reply(&self, code: u16) {
        if let Some(counter) = usize::from(code / 100)
            .checked_sub(1)
            .and_then(|i| self.replies.get(i))
        {
            counter.inc();
        }
    }

    pub(crate) fn transfer(&self, flow: Flow, ending: Ending, bytes: u64, took: Duration) {
        let d = flow as usize;
        self.transfers[d][ending as usize].inc();
        self.transfer_bytes[d].inc_by(bytes);
        self.transfer_duration[d].observe(took.as_secs_f64());
        self.transfer_size[d].observe(bytes as f64);
    }

    /// A TLS handshake: the protocol version on success.
    pub(crate) fn tls_handshake(&self, version: Option<rustls::ProtocolVersion>) {
        match version {
            Some(rustls::ProtocolVersion::TLSv1_3) => self.tls_handshakes_ok[1].inc(),
            Some(_) => self.tls_handshakes_ok[0].inc(),
            None => self.tls_handshakes_failed.inc(),
        };
    }

    pub(crate) fn timeout(&self, why: Timeout) {
        self.timeouts[why as usize].inc();
    }
}

/// One open passive endpoint in `ftpgate_passive_ports_in_use`, until dropped.
pub(crate) struct PortInUse(Option<Gauge>);

impl PortInUse {
    pub(crate) fn new(metrics: Option<&Metrics>) -> PortInUse {
        PortInUse(metrics.map(|m| {
            m.passive_ports_in_use.inc();
            m.passive_ports_in_use.clone()
        }))
    }
}

impl Drop for PortInUse {
    fn drop(&mut self) {
        if let Some(gauge) = &self.0 {
            gauge.dec();
        }
    }
}
