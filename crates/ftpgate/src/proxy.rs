//! The PROXY protocol (HAProxy's, version 1 text and version 2 binary) in front of the control
//! and passive data connections, for servers behind a TCP load balancer.
//!
//! Whether a connection carries a header is decided by its peer address alone, never by looking
//! at its first bytes: FTP speaks first, so waiting "in case" a header comes would delay every
//! banner. A connection from a [`ProxyProtocol::trusted`] network must start with a header (read
//! before the 220 and before an implicit TLS handshake, within `header_timeout` and
//! `max_header_bytes`); a connection from anywhere else is the client itself, and a header it
//! sends is never believed (the control connection closes it, see `control/`).
//!
//! Parsing is the `ppp` crate's; this module only reads the bytes. It peeks at what has arrived
//! and consumes exactly the header's bytes, so whatever follows (a TLS ClientHello sent in the
//! same segment, upload data) stays in the socket for the code that reads next.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ftpgate_proto::hostport::canonical;
use ipnet::IpNet;
use ppp::{HeaderResult, PartialResult, v1, v2};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tracing::debug;

/// The smallest `max_header_bytes` accepted: a version 2 header with UNIX addresses (16 + 216
/// bytes); a version 1 header is at most 107.
pub const MIN_PROXY_HEADER_BYTES: usize = 232;
/// The longest version 1 header, CRLF included (the protocol's limit).
const V1_MAX_LENGTH: usize = 107;
/// The largest header version 2 can describe (16 + 65,535 bytes).
pub const MAX_PROXY_HEADER_BYTES: usize = 16 + 65_535;

/// The PROXY protocol settings: who sends headers, and what passive data connections expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocol {
    /// The load balancers: every connection from these networks must start with a PROXY
    /// header (version 1 or 2), and the client address it names is used everywhere the peer
    /// address would be (limits, bans, logs, metrics, events, the authenticator). Connections
    /// from other addresses are served directly and their headers are never believed.
    pub trusted: Vec<IpNet>,
    /// What passive data connections from the load balancers carry.
    pub data: ProxyData,
    /// How long a trusted peer may take to send its header (the load balancer sends it at once).
    pub header_timeout: Duration,
    /// The longest header accepted, TLVs included.
    pub max_header_bytes: usize,
}

/// What passive data connections from a trusted load balancer carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProxyData {
    /// A PROXY header, like the control connection: it is read (before any TLS handshake) and
    /// its source must be the control connection's client.
    #[default]
    Required,
    /// No header: a connection from a load balancer is accepted as the client's. Only TLS
    /// session reuse (PROT P with `session_reuse`) then tells the client apart from others
    /// behind the same load balancer.
    Off,
}

impl ProxyProtocol {
    /// Headers from these networks, with the default data mode, timeout and size cap.
    pub fn new(trusted: Vec<IpNet>) -> Self {
        ProxyProtocol {
            trusted,
            ..ProxyProtocol::default()
        }
    }

    /// Whether connections from `ip` must start with a header.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted.iter().any(|net| net.contains(&ip))
    }
}

impl Default for ProxyProtocol {
    fn default() -> Self {
        ProxyProtocol {
            trusted: Vec::new(),
            data: ProxyData::Required,
            header_timeout: Duration::from_secs(5),
            max_header_bytes: 4096,
        }
    }
}

/// Where a control connection comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    /// The client: the header's source, or the peer of a direct connection.
    pub(crate) client: SocketAddr,
    /// The address the client dialled (the header's destination), behind a load balancer.
    pub(crate) dialled: Option<SocketAddr>,
    /// The load balancer the connection came through.
    pub(crate) via: Option<SocketAddr>,
}

/// What a header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proxied {
    /// A relayed connection: the client's address and the address it dialled.
    Client {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// The load balancer's own connection (a v2 LOCAL command, a v1 UNKNOWN, or addresses that
    /// are not TCP/IP): it is served as a plain connection from the load balancer.
    Local,
}

/// Why no header could be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeaderError {
    #[error("no PROXY header within {0:?}")]
    Timeout(Duration),
    #[error("PROXY header longer than {0} bytes")]
    TooLong(usize),
    #[error("invalid PROXY header: {0}")]
    Invalid(String),
    #[error("connection closed before the end of the PROXY header")]
    Closed,
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
}

/// Whether the first bytes of a direct connection are a PROXY header (a forgery: the peer is
/// not trusted to send one). Text that merely begins like a header is not one.
pub(crate) fn looks_like_header(first: &[u8]) -> bool {
    first.starts_with(v1::PROTOCOL_PREFIX.as_bytes()) && first.get(5) == Some(&b' ')
        || first.starts_with(v2::PROTOCOL_PREFIX)
}

/// Reads the header a trusted peer's connection starts with, within the timeout and size cap.
pub(crate) async fn read_header(
    stream: &mut TcpStream,
    settings: &ProxyProtocol,
) -> Result<Proxied, HeaderError> {
    match tokio::time::timeout(
        settings.header_timeout,
        read_header_bytes(stream, settings.max_header_bytes),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(HeaderError::Timeout(settings.header_timeout)),
    }
}

async fn read_header_bytes(stream: &mut TcpStream, cap: usize) -> Result<Proxied, HeaderError> {
    let mut header: Vec<u8> = Vec::with_capacity(128);
    let mut peeked = vec![0u8; 512];
    loop {
        let room = cap.saturating_sub(header.len()).min(peeked.len());
        if room == 0 {
            return Err(HeaderError::TooLong(cap));
        }
        // Peek, then consume only the bytes that belong to the header. Bytes consumed are
        // gone from the socket, so the next peek waits for new ones (no busy loop).
        let n = stream.peek(&mut peeked[..room]).await?;
        if n == 0 {
            return Err(HeaderError::Closed);
        }
        let before = header.len();
        header.extend_from_slice(&peeked[..n]);
        match parse(&header, cap)? {
            Parsed::Complete(len, proxied) => {
                let mut take = vec![0u8; len - before];
                stream.read_exact(&mut take).await?;
                return Ok(proxied);
            }
            Parsed::Incomplete => {
                // Every byte so far is part of the header.
                let mut take = vec![0u8; n];
                stream.read_exact(&mut take).await?;
            }
        }
    }
}

enum Parsed {
    /// The header is the first `usize` bytes.
    Complete(usize, Proxied),
    /// Every byte given belongs to a header that goes on.
    Incomplete,
}

/// Parses the header at the start of `bytes`.
fn parse(bytes: &[u8], cap: usize) -> Result<Parsed, HeaderError> {
    // A version 1 header is judged whole: `ppp` takes a piece that ends after a space (a
    // partial read) for a header with an empty field.
    let v1_prefix = v1::PROTOCOL_PREFIX.as_bytes();
    let n = bytes.len().min(v1_prefix.len());
    if bytes[..n] == v1_prefix[..n] && !bytes.contains(&b'\n') {
        if bytes.len() > V1_MAX_LENGTH {
            return Err(HeaderError::Invalid(format!(
                "version 1 header longer than {V1_MAX_LENGTH} bytes"
            )));
        }
        return Ok(Parsed::Incomplete);
    }
    let result = HeaderResult::parse(bytes);
    if result.is_incomplete() {
        if let HeaderResult::V2(Err(v2::ParseError::Partial(_, length))) = &result {
            if 16 + length > cap {
                return Err(HeaderError::TooLong(cap));
            }
        }
        return Ok(Parsed::Incomplete);
    }
    match result {
        HeaderResult::V1(Ok(header)) => {
            let proxied = match header.addresses {
                v1::Addresses::Tcp4(a) => Proxied::Client {
                    source: SocketAddr::from((a.source_address, a.source_port)),
                    destination: SocketAddr::from((a.destination_address, a.destination_port)),
                },
                v1::Addresses::Tcp6(a) => Proxied::Client {
                    source: SocketAddr::from((a.source_address, a.source_port)),
                    destination: SocketAddr::from((a.destination_address, a.destination_port)),
                },
                v1::Addresses::Unknown => Proxied::Local,
            };
            Ok(Parsed::Complete(header.header.len(), proxied))
        }
        HeaderResult::V2(Ok(header)) => {
            let tlvs = header.tlvs().count();
            if tlvs > 0 {
                debug!(tlvs, "PROXY header TLVs ignored");
            }
            let proxied = match (header.command, header.protocol, header.addresses) {
                (v2::Command::Proxy, v2::Protocol::Stream, v2::Addresses::IPv4(a)) => {
                    Proxied::Client {
                        source: SocketAddr::from((a.source_address, a.source_port)),
                        destination: SocketAddr::from((a.destination_address, a.destination_port)),
                    }
                }
                (v2::Command::Proxy, v2::Protocol::Stream, v2::Addresses::IPv6(a)) => {
                    Proxied::Client {
                        source: SocketAddr::from((a.source_address, a.source_port)),
                        destination: SocketAddr::from((a.destination_address, a.destination_port)),
                    }
                }
                // LOCAL (health checks), and addresses the PROXY command may carry but that
                // name no TCP client: the protocol says to use the connection's own.
                _ => Proxied::Local,
            };
            Ok(Parsed::Complete(header.header.len(), proxied))
        }
        HeaderResult::V1(Err(e)) => Err(HeaderError::Invalid(e.to_string())),
        HeaderResult::V2(Err(e)) => Err(HeaderError::Invalid(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_header(command: u8, family: u8, addresses: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut out = v2::PROTOCOL_PREFIX.to_vec();
        out.push(0x20 | command);
        out.push(family);
        let len = u16::try_from(addresses.len() + tlvs.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(addresses);
        out.extend_from_slice(tlvs);
        out
    }

    fn complete(bytes: &[u8]) -> (usize, Proxied) {
        match parse(bytes, 4096) {
            Ok(Parsed::Complete(len, proxied)) => (len, proxied),
            Ok(Parsed::Incomplete) => panic!("incomplete"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn version_1_tcp4_tcp6_and_unknown() {
        let text = b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 21\r\nUSER";
        let (len, proxied) = complete(text);
        assert_eq!(len, text.len() - 4);
        assert_eq!(
            proxied,
            Proxied::Client {
                source: "192.0.2.7:40000".parse().unwrap(),
                destination: "198.51.100.1:21".parse().unwrap(),
            }
        );
        let (_, proxied) = complete(b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 21\r\n");
        assert_eq!(
            proxied,
            Proxied::Client {
                source: "[2001:db8::7]:40000".parse().unwrap(),
                destination: "[2001:db8::1]:21".parse().unwrap(),
            }
        );
        assert_eq!(complete(b"PROXY UNKNOWN\r\n"), (15, Proxied::Local));
    }

    #[test]
    fn version_2_proxy_local_and_tlvs() {
        let addresses = [192, 0, 2, 7, 198, 51, 100, 1, 0x9c, 0x40, 0, 21];
        // One NOOP TLV and one AUTHORITY TLV: both ignored.
        let tlvs = [0x04, 0, 1, 0, 0x02, 0, 3, b'f', b't', b'p'];
        let header = v2_header(1, 0x11, &addresses, &tlvs);
        let mut bytes = header.clone();
        bytes.extend_from_slice(b"\x16\x03\x01");
        let (len, proxied) = complete(&bytes);
        assert_eq!(len, header.len());
        assert_eq!(
            proxied,
            Proxied::Client {
                source: "192.0.2.7:40000".parse().unwrap(),
                destination: "198.51.100.1:21".parse().unwrap(),
            }
        );
        let local = v2_header(0, 0x00, &[], &[]);
        assert_eq!(complete(&local), (16, Proxied::Local));
        // An IPv6 client through an IPv4 load balancer.
        let mut v6 = Vec::new();
        v6.extend_from_slice(
            &"2001:db8::7"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        v6.extend_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        v6.extend_from_slice(&[0x9c, 0x40, 0, 21]);
        let (_, proxied) = complete(&v2_header(1, 0x21, &v6, &[]));
        assert_eq!(
            proxied,
            Proxied::Client {
                source: "[2001:db8::7]:40000".parse().unwrap(),
                destination: "[2001:db8::1]:21".parse().unwrap(),
            }
        );
    }

    #[test]
    fn partial_oversized_and_invalid() {
        let text = b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 21\r\n";
        for cut in 1..text.len() {
            assert!(
                matches!(parse(&text[..cut], 4096), Ok(Parsed::Incomplete)),
                "cut at {cut}"
            );
        }
        let header = v2_header(1, 0x11, &[0; 12], &[]);
        for cut in 1..header.len() {
            assert!(matches!(
                parse(&header[..cut], 4096),
                Ok(Parsed::Incomplete)
            ));
        }
        // A v2 header (16 fixed bytes, then the length) announcing 2000 bytes of TLVs is refused as soon as its length is read.
        let big = v2_header(1, 0x11, &[0; 12], &[0; 2000]);
        assert!(matches!(
            parse(&big[..16], 1024),
            Err(HeaderError::TooLong(1024))
        ));
        assert!(matches!(
            parse(b"USER anonymous\r\n", 4096),
            Err(HeaderError::Invalid(_))
        ));
        assert!(matches!(
            parse(b"PROXY TCP9 x\r\n", 4096),
            Err(HeaderError::Invalid(_))
        ));
    }

    #[test]
    fn trust_is_by_network_in_canonical_form() {
        let proxy = ProxyProtocol::new(vec!["10.0.0.0/8".parse().unwrap()]);
        assert!(proxy.trusts("10.1.2.3".parse().unwrap()));
        assert!(proxy.trusts("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!proxy.trusts("192.0.2.1".parse().unwrap()));
    }
}
