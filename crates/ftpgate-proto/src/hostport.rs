//! Data-connection addresses: PORT and EPRT arguments, PASV and EPSV replies.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

/// Parses a PORT argument `h1,h2,h3,h4,p1,p2` (RFC 959 section 4.1.2).
pub fn parse_port(arg: &str) -> Option<SocketAddrV4> {
    let mut nums = [0u8; 6];
    let mut count = 0;
    for part in arg.trim().split(',') {
        if count == 6 {
            return None;
        }
        nums[count] = part.trim().parse().ok()?;
        count += 1;
    }
    if count != 6 {
        return None;
    }
    let ip = Ipv4Addr::new(nums[0], nums[1], nums[2], nums[3]);
    Some(SocketAddrV4::new(
        ip,
        u16::from(nums[4]) << 8 | u16::from(nums[5]),
    ))
}

/// Parses an EPRT argument `<d>af<d>addr<d>port<d>` (RFC 2428 section 2); `af` 1 is IPv4, 2 is IPv6.
pub fn parse_eprt(arg: &str) -> Option<SocketAddr> {
    let delim = arg.chars().next()?;
    if !(33..=126).contains(&(delim as u32)) {
        return None;
    }
    let fields: Vec<&str> = arg.split(delim).collect();
    // "", af, addr, port, ""
    if fields.len() != 5 || !fields[0].is_empty() || !fields[4].is_empty() {
        return None;
    }
    let port: u16 = fields[3].parse().ok()?;
    let ip: IpAddr = match fields[1] {
        "1" => IpAddr::V4(fields[2].parse::<Ipv4Addr>().ok()?),
        "2" => IpAddr::V6(fields[2].parse::<Ipv6Addr>().ok()?),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The text of a 227 reply for `ip:port`.
pub fn format_pasv(ip: Ipv4Addr, port: u16) -> String {
    let [a, b, c, d] = ip.octets();
    format!(
        "Entering Passive Mode ({a},{b},{c},{d},{},{}).",
        port >> 8,
        port & 0xff
    )
}

/// The text of a 229 reply for `port`.
pub fn format_epsv(port: u16) -> String {
    format!("Entering Extended Passive Mode (|||{port}|)")
}

/// Two addresses are the same host, treating an IPv4-mapped IPv6 address as its IPv4 form.
pub fn same_host(a: IpAddr, b: IpAddr) -> bool {
    canonical(a) == canonical(b)
}

/// The IPv4 form of an IPv4-mapped IPv6 address, or the address itself.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_argument() {
        assert_eq!(
            parse_port("127,0,0,1,4,1"),
            Some("127.0.0.1:1025".parse().unwrap())
        );
        assert_eq!(
            parse_port(" 10,0,0,2,255,255 "),
            Some("10.0.0.2:65535".parse().unwrap())
        );
        assert_eq!(parse_port("127,0,0,1,4"), None);
        assert_eq!(parse_port("127,0,0,1,4,1,1"), None);
        assert_eq!(parse_port("256,0,0,1,4,1"), None);
        assert_eq!(parse_port("a,b,c,d,e,f"), None);
        assert_eq!(parse_port(""), None);
    }

    #[test]
    fn eprt_argument() {
        assert_eq!(
            parse_eprt("|1|132.235.1.2|6275|"),
            Some("132.235.1.2:6275".parse().unwrap())
        );
        assert_eq!(
            parse_eprt("|2|::1|5282|"),
            Some("[::1]:5282".parse().unwrap())
        );
        assert_eq!(
            parse_eprt("!1!127.0.0.1!2000!"),
            Some("127.0.0.1:2000".parse().unwrap())
        );
        assert_eq!(parse_eprt("|1|::1|5282|"), None);
        assert_eq!(parse_eprt("|3|1.2.3.4|5|"), None);
        assert_eq!(parse_eprt("|1|1.2.3.4|70000|"), None);
        assert_eq!(parse_eprt("|1|1.2.3.4|5"), None);
        assert_eq!(parse_eprt(""), None);
    }

    #[test]
    fn passive_replies() {
        assert_eq!(
            format_pasv(Ipv4Addr::new(127, 0, 0, 1), 1025),
            "Entering Passive Mode (127,0,0,1,4,1)."
        );
        assert_eq!(
            format_epsv(50000),
            "Entering Extended Passive Mode (|||50000|)"
        );
    }

    #[test]
    fn mapped_addresses_are_the_same_host() {
        assert!(same_host(
            "::ffff:127.0.0.1".parse().unwrap(),
            "127.0.0.1".parse().unwrap()
        ));
        assert!(!same_host(
            "127.0.0.2".parse().unwrap(),
            "127.0.0.1".parse().unwrap()
        ));
    }
}
