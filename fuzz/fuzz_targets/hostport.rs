//! PORT and EPRT arguments, PASV and EPSV replies.
//!
//! Checks that `parse_port` and `parse_eprt` never panic on arbitrary text, and that
//! - whatever `parse_port` accepts round-trips: writing the address back as `h1,h2,h3,h4,p1,p2`
//!   and parsing it again gives the same address;
//! - any `SocketAddrV4` written in PORT form parses back to itself, and so does the address
//!   inside a 227 (`format_pasv`) reply; the port of a 229 (`format_epsv`) reply reads back;
//! - whatever `parse_eprt` accepts round-trips through `|af|addr|port|` with any delimiter;
//! - the command parser agrees with these functions for PORT and EPRT lines;
//! - `same_host` is reflexive and symmetric, and `canonical` is idempotent.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use arbitrary::Arbitrary;
use ftpgate_proto::command::{Command, parse_line};
use ftpgate_proto::hostport::{
    canonical, format_epsv, format_pasv, parse_eprt, parse_port, same_host,
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    v4: [u8; 4],
    v6: [u8; 16],
    port: u16,
    delimiter: u8,
    text: String,
}

fn port_string(addr: SocketAddrV4) -> String {
    let [a, b, c, d] = addr.ip().octets();
    format!(
        "{a},{b},{c},{d},{},{}",
        addr.port() >> 8,
        addr.port() & 0xff
    )
}

fn eprt_string(addr: SocketAddr, d: char) -> String {
    match addr {
        SocketAddr::V4(v4) => format!("{d}1{d}{}{d}{}{d}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("{d}2{d}{}{d}{}{d}", v6.ip(), v6.port()),
    }
}

fn check_port_round_trip(addr: SocketAddrV4) {
    let text = port_string(addr);
    assert_eq!(parse_port(&text), Some(addr), "{text}");
    let pasv = format_pasv(*addr.ip(), addr.port());
    let inner = pasv
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(inner, _)| inner)
        .expect("227 text has the address in parentheses");
    assert_eq!(parse_port(inner), Some(addr), "{pasv}");
    match parse_line(&format!("PORT {text}")) {
        Ok((_, Command::Port(a))) => assert_eq!(a, addr),
        other => panic!("PORT {text} parsed as {other:?}"),
    }
}

fn check_eprt_round_trip(addr: SocketAddr, delimiter: char) {
    let text = eprt_string(addr, delimiter);
    // The delimiter must not occur in the address itself (':' does in IPv6, '.' in IPv4).
    let clash = text[1..text.len() - 1].matches(delimiter).count() != 2;
    if !clash {
        assert_eq!(parse_eprt(&text), Some(addr), "{text}");
        match parse_line(&format!("EPRT {text}")) {
            Ok((_, Command::Eprt(a))) => assert_eq!(a, addr),
            other => panic!("EPRT {text} parsed as {other:?}"),
        }
    }
}

fn check_hosts(a: IpAddr, b: IpAddr) {
    assert!(same_host(a, a));
    assert_eq!(same_host(a, b), same_host(b, a));
    assert_eq!(canonical(canonical(a)), canonical(a));
    assert_eq!(same_host(a, b), canonical(a) == canonical(b));
}

fuzz_target!(|input: Input| {
    let text = input.text.as_str();

    // Arbitrary text: no panic, and whatever is accepted round-trips.
    if let Some(addr) = parse_port(text) {
        check_port_round_trip(addr);
    }
    match parse_line(&format!("PORT {text}")) {
        Ok((_, Command::Port(a))) => assert_eq!(parse_port(text), Some(a)),
        Ok((_, other)) => panic!("PORT parsed as {other:?}"),
        Err(_) => assert_eq!(parse_port(text), None),
    }
    if let Some(addr) = parse_eprt(text) {
        assert!(matches!(
            (addr, text.as_bytes().get(1)),
            (SocketAddr::V4(_), Some(b'1')) | (SocketAddr::V6(_), Some(b'2'))
        ));
        let d = text.chars().next().expect("accepted text is not empty");
        check_eprt_round_trip(addr, d);
    }
    if let Ok((_, Command::Eprt(a))) = parse_line(&format!("EPRT {text}")) {
        assert_eq!(parse_eprt(text.trim()), Some(a));
    }

    // Well-formed addresses round-trip.
    let v4 = SocketAddrV4::new(Ipv4Addr::from(input.v4), input.port);
    check_port_round_trip(v4);
    let epsv = format_epsv(input.port);
    assert_eq!(
        epsv.trim_end_matches("|)")
            .rsplit('|')
            .next()
            .and_then(|p| p.parse().ok()),
        Some(input.port),
        "{epsv}"
    );
    let delimiter = char::from(33 + input.delimiter % 94);
    check_eprt_round_trip(SocketAddr::V4(v4), delimiter);
    let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::from(input.v6)), input.port);
    check_eprt_round_trip(v6, delimiter);

    check_hosts(IpAddr::V4(*v4.ip()), v6.ip());
    check_hosts(
        v6.ip(),
        IpAddr::V6(Ipv4Addr::from(input.v4).to_ipv6_mapped()),
    );
    assert!(same_host(
        IpAddr::V4(*v4.ip()),
        IpAddr::V6(v4.ip().to_ipv6_mapped())
    ));
});
