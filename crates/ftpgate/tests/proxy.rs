//! The PROXY protocol in the engine: the client a header names is the session's client (live
//! sessions, per-IP limits, PASV), passive data connections from the load balancer carry a
//! header naming that client (`data = "required"`) or none (`data = "off"`), and active mode
//! through the load balancer is refused.
//!
//! 127.0.0.4 stands for the load balancer (the trusted address); the clients it relays for
//! are named in the headers only.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use ftpgate::{ProxyData, ProxyProtocol, ServerConfig};

const LB: &str = "127.0.0.4";

fn server(data: ProxyData, per_ip: usize) -> TestServer {
    let mut options = Options::default();
    options.config = ServerConfig {
        max_connections_per_ip: per_ip,
        proxy_protocol: Some(ProxyProtocol {
            data,
            header_timeout: Duration::from_millis(500),
            ..ProxyProtocol::new(vec![format!("{LB}/32").parse().unwrap()])
        }),
        ..options.config
    };
    TestServer::start_with(options)
}

/// A control connection relayed by the load balancer for `client`, who dialled `dialled`.
fn relayed(addr: SocketAddr, client: &str, dialled: &str) -> Raw {
    let mut stream = connect_from(LB, addr);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "PROXY TCP4 {client} {dialled} 40000 21\r\n").unwrap();
    let mut raw = Raw::from_stream(stream);
    let (code, _) = raw.reply();
    assert_eq!(code, 220);
    raw
}

fn data_from_lb(port: u16, header_for: Option<&str>) -> TcpStream {
    let mut data = connect_from(LB, SocketAddr::from(([127, 0, 0, 1], port)));
    data.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    if let Some(client) = header_for {
        write!(data, "PROXY TCP4 {client} 127.0.0.1 40001 {port}\r\n").unwrap();
    }
    data
}

#[test]
fn the_header_names_the_client_and_pasv_the_address_it_dialled() {
    let server = server(ProxyData::Required, 1);
    write_file(&server.path("f.txt"), b"relayed");
    let mut raw = relayed(server.addr, "127.0.0.9", "203.0.113.10");
    raw.login(USER, PASS);
    let clients: Vec<SocketAddr> = server
        .sessions
        .snapshot()
        .iter()
        .map(|s| s.client)
        .collect();
    assert_eq!(clients, vec!["127.0.0.9:40000".parse().unwrap()]);
    // PASV announces the address the client dialled, with this node's port.
    let announced = raw.pasv();
    assert_eq!(announced.ip().to_string(), "203.0.113.10");
    // The transfer waits for its data connection. One from the load balancer without a
    // header waits out the header timeout and is refused; the listener keeps waiting.
    raw.send("RETR f.txt");
    let mut bare = data_from_lb(announced.port(), None);
    let began = Instant::now();
    let mut sink = Vec::new();
    let _ = bare.read_to_end(&mut sink);
    assert!(sink.is_empty() && began.elapsed() >= Duration::from_millis(400));
    // One relayed for another client is refused too.
    let mut other = data_from_lb(announced.port(), Some("127.0.0.66"));
    let _ = other.read_to_end(&mut sink);
    assert!(sink.is_empty());
    let mut data = data_from_lb(announced.port(), Some("127.0.0.9"));
    assert_eq!(raw.reply().0, 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"relayed");
    assert_eq!(raw.reply().0, 226);
    // Active mode cannot work through the load balancer.
    let (code, text) = raw.cmd("PORT 127,0,0,9,100,1");
    assert_eq!(code, 502, "{text}");
    assert!(text.contains("load balancer"), "{text}");

    // Per-IP limits count clients, not the load balancer: a second client is served, a second
    // connection of the first one (limit 1) is refused.
    let mut second = relayed(server.addr, "127.0.0.10", "203.0.113.10");
    second.login(USER, PASS);
    let mut stream = connect_from(LB, server.addr);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"PROXY TCP4 127.0.0.9 203.0.113.10 40002 21\r\n")
        .unwrap();
    let mut refused = String::new();
    let _ = stream.read_to_string(&mut refused);
    assert!(refused.starts_with("421 "), "{refused}");
}

#[test]
fn data_off_accepts_the_load_balancers_connection_without_a_header() {
    let server = server(ProxyData::Off, 32);
    write_file(&server.path("g.txt"), b"no header on data");
    let mut raw = relayed(server.addr, "127.0.0.9", "127.0.0.1");
    raw.login(USER, PASS);
    let port = raw.epsv().port();
    let mut data = data_from_lb(port, None);
    raw.send("RETR g.txt");
    assert_eq!(raw.reply().0, 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"no header on data");
    assert_eq!(raw.reply().0, 226);
    // A direct client on the same server: served without a header, and a header it sends is
    // a forgery that closes its connection.
    let mut direct = Raw::connect_from("127.0.0.7", server.addr);
    direct.send("PROXY TCP4 127.0.0.9 127.0.0.1 40000 21");
    let (code, text) = direct.reply();
    assert_eq!(code, 421, "{text}");
    assert!(direct.is_closed());
}
