//! FTPS (RFC 4217): explicit and implicit TLS, PROT P and C in both data-connection modes,
//! policies, session reuse on data connections, STARTTLS injection, truncated uploads.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::io::{BufRead, BufReader, Cursor, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ftpgate::{SessionReuse, TlsConfig};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConnection, StreamOwned};
use suppaftp::types::Mode;
use suppaftp::{RustlsConnector, RustlsFtpStream};

type Tls = StreamOwned<ClientConnection, TcpStream>;

struct TlsServer {
    server: TestServer,
    cert: CertificateDer<'static>,
    client: Arc<rustls::ClientConfig>,
}

fn start(configure: impl FnOnce(&mut TlsConfig)) -> TlsServer {
    let (server_config, cert) = tls_server_config();
    let mut tls = TlsConfig::new(server_config);
    configure(&mut tls);
    let mut options = Options::default();
    options.config.tls = Some(tls);
    options.config.implicit_tls_listen = vec!["127.0.0.1:0".parse().unwrap()];
    let server = TestServer::start_with(options);
    let client = tls_client_config(&cert);
    TlsServer {
        server,
        cert,
        client,
    }
}

fn wrap(config: &Arc<rustls::ClientConfig>, tcp: TcpStream) -> Tls {
    let conn =
        ClientConnection::new(config.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
    StreamOwned::new(conn, tcp)
}

/// A control connection over TLS, spoken by hand.
struct TlsControl {
    reader: BufReader<Tls>,
}

impl TlsControl {
    /// Plain connect, AUTH TLS, handshake.
    fn explicit(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> TlsControl {
        let mut raw = Raw::connect(addr);
        assert_eq!(raw.code("AUTH TLS"), 234);
        let tcp = raw.stream.try_clone().unwrap();
        TlsControl {
            reader: BufReader::new(wrap(config, tcp)),
        }
    }

    /// TLS from the first byte.
    fn implicit(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> TlsControl {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut control = TlsControl {
            reader: BufReader::new(wrap(config, tcp)),
        };
        assert_eq!(control.reply().0, 220);
        control
    }

    fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        self.reader.read_line(&mut text).unwrap();
        let code: u16 = text[..3]
            .parse()
            .unwrap_or_else(|_| panic!("bad reply {text:?}"));
        if text.as_bytes()[3] == b'-' {
            loop {
                let mut next = String::new();
                self.reader.read_line(&mut next).unwrap();
                text.push_str(&next);
                if next.starts_with(&format!("{code} ")) {
                    break;
                }
            }
        }
        (code, text)
    }

    fn cmd(&mut self, line: &str) -> (u16, String) {
        let stream = self.reader.get_mut();
        stream.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        stream.flush().unwrap();
        self.reply()
    }

    fn code(&mut self, line: &str) -> u16 {
        self.cmd(line).0
    }

    fn login(&mut self) {
        assert_eq!(self.code(&format!("USER {USER}")), 331);
        assert_eq!(self.code(&format!("PASS {PASS}")), 230);
    }

    fn epsv(&mut self, host: SocketAddr) -> SocketAddr {
        let (code, text) = self.cmd("EPSV");
        assert_eq!(code, 229, "{text}");
        let port: u16 = text
            .split("|||")
            .nth(1)
            .unwrap()
            .split('|')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        SocketAddr::new(host.ip(), port)
    }
}

#[test]
fn explicit_ftps_with_a_client_library_in_every_mode() {
    let s = start(|_| {});
    let data = random_bytes(1_500_000, 11);
    for (i, mode) in [Mode::Passive, Mode::ExtendedPassive, Mode::Active]
        .into_iter()
        .enumerate()
    {
        let ftp = RustlsFtpStream::connect(s.server.addr).unwrap();
        let mut ftp = ftp
            .into_secure(RustlsConnector::from(s.client.clone()), "localhost")
            .unwrap();
        ftp.login(USER, PASS).unwrap();
        ftp.transfer_type(suppaftp::types::FileType::Binary)
            .unwrap();
        ftp.set_mode(mode);
        let name = format!("tls{i}.bin");
        ftp.put_file(&name, &mut Cursor::new(&data)).unwrap();
        assert_eq!(
            std::fs::read(s.server.path(&name)).unwrap(),
            data,
            "{mode:?}"
        );
        assert_eq!(
            ftp.retr_as_buffer(&name).unwrap().into_inner(),
            data,
            "{mode:?}"
        );
        assert!(ftp.nlst(None).unwrap().contains(&name));
        ftp.quit().unwrap();
    }
}

#[test]
fn feat_advertises_tls_and_prot_c_still_works() {
    let s = start(|_| {});
    let mut raw = s.server.raw();
    let (_, feat) = raw.cmd("FEAT");
    for f in [" AUTH TLS\r\n", " PBSZ\r\n", " PROT\r\n"] {
        assert!(feat.contains(f), "{f:?} in {feat}");
    }
    assert!(!feat.contains(" CCC"), "CCC is off by default");
    let mut control = TlsControl::explicit(s.server.addr, &s.client);
    control.login();
    assert_eq!(control.code("PBSZ 0"), 200);
    assert_eq!(control.code("PROT C"), 200);
    write_file(&s.server.path("clear.txt"), b"sent in the clear");
    let addr = control.epsv(s.server.addr);
    let mut data = TcpStream::connect(addr).unwrap();
    assert_eq!(control.code("RETR clear.txt"), 150);
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes, b"sent in the clear");
    assert_eq!(control.reply().0, 226);
}

#[test]
fn implicit_ftps_protects_data_by_default() {
    let s = start(|_| {});
    let implicit = s.server.implicit_addrs[0];
    let mut control = TlsControl::implicit(implicit, &s.client);
    control.login();
    write_file(&s.server.path("secret.bin"), b"implicit bytes");
    let addr = control.epsv(implicit);
    let tcp = TcpStream::connect(addr).unwrap();
    assert_eq!(control.code("RETR secret.bin"), 150);
    let mut data = wrap(&s.client, tcp);
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes, b"implicit bytes");
    assert_eq!(control.reply().0, 226);
    // The implicit listener never speaks clear text.
    let mut plain = TcpStream::connect(implicit).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain.write_all(b"USER alice\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("331"));
}

#[test]
fn tls_required_refuses_clear_login_and_clear_transfers() {
    let s = start(|tls| {
        tls.required_for_login = true;
        tls.required_for_data = true;
    });
    let mut raw = s.server.raw();
    assert_eq!(raw.code(&format!("USER {USER}")), 530);
    let mut control = TlsControl::explicit(s.server.addr, &s.client);
    control.login();
    control.epsv(s.server.addr);
    assert_eq!(control.code("NLST"), 521, "no PROT P yet");
    assert_eq!(control.code("PBSZ 0"), 200);
    assert_eq!(control.code("PROT C"), 534);
    assert_eq!(control.code("PROT P"), 200);
    let addr = control.epsv(s.server.addr);
    let tcp = TcpStream::connect(addr).unwrap();
    assert_eq!(control.code("NLST"), 150);
    let mut data = wrap(&s.client, tcp);
    let mut listing = String::new();
    data.read_to_string(&mut listing).unwrap();
    assert!(listing.contains("pub"));
    assert_eq!(control.reply().0, 226);
}

/// A data connection for a transfer command under PROT P, made with `config`.
fn protected_transfer(
    control: &mut TlsControl,
    host: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    cmd: &str,
) -> (u16, Vec<u8>) {
    let addr = control.epsv(host);
    let tcp = TcpStream::connect(addr).unwrap();
    assert_eq!(control.code(cmd), 150);
    let mut data = wrap(config, tcp);
    let mut bytes = Vec::new();
    let _ = data.read_to_end(&mut bytes);
    (control.reply().0, bytes)
}

#[test]
fn data_connection_must_resume_the_control_session() {
    let s = start(|_| {});
    write_file(&s.server.path("f"), b"only for the session owner");
    let mut control = TlsControl::explicit(s.server.addr, &s.client);
    control.login();
    control.code("PBSZ 0");
    control.code("PROT P");
    // Another client configuration has no session to resume: refused.
    let (_, foreign_cert) = tls_server_config();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(s.cert.clone()).unwrap();
    roots.add(foreign_cert).unwrap();
    let stranger = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let (code, bytes) = protected_transfer(&mut control, s.server.addr, &stranger, "RETR f");
    assert_eq!(code, 522);
    assert!(bytes.is_empty());
    // The session owner resumes and gets the file.
    let (code, bytes) = protected_transfer(&mut control, s.server.addr, &s.client, "RETR f");
    assert_eq!(
        (code, bytes.as_slice()),
        (226, &b"only for the session owner"[..])
    );
    // TLS 1.2 clients are held to the same rule.
    let tls12 = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates({
            let mut r = rustls::RootCertStore::empty();
            r.add(s.cert.clone()).unwrap();
            r
        })
        .with_no_client_auth(),
    );
    let mut control12 = TlsControl::explicit(s.server.addr, &tls12);
    control12.login();
    control12.code("PBSZ 0");
    control12.code("PROT P");
    assert_eq!(
        protected_transfer(&mut control12, s.server.addr, &tls12, "RETR f").0,
        226
    );
    assert_eq!(
        protected_transfer(&mut control12, s.server.addr, &stranger, "RETR f").0,
        522
    );
}

#[test]
fn session_reuse_can_be_relaxed() {
    let s = start(|tls| tls.session_reuse = SessionReuse::Off);
    write_file(&s.server.path("f"), b"relaxed");
    let mut control = TlsControl::explicit(s.server.addr, &s.client);
    control.login();
    control.code("PBSZ 0");
    control.code("PROT P");
    let fresh = tls_client_config(&s.cert);
    let (code, bytes) = protected_transfer(&mut control, s.server.addr, &fresh, "RETR f");
    assert_eq!((code, bytes.as_slice()), (226, &b"relaxed"[..]));
}

#[test]
fn commands_pipelined_after_auth_tls_are_discarded() {
    let s = start(|_| {});
    let mut raw = s.server.raw();
    raw.send_bytes(format!("AUTH TLS\r\nUSER {USER}\r\nPASS {PASS}\r\n").as_bytes());
    assert_eq!(raw.reply().0, 234);
    let tcp = raw.stream.try_clone().unwrap();
    let mut control = TlsControl {
        reader: BufReader::new(wrap(&s.client, tcp)),
    };
    assert_eq!(
        control.code("PWD"),
        530,
        "the pipelined USER/PASS never ran"
    );
    control.login();
    assert_eq!(control.code("PWD"), 257);
}

#[test]
fn tls_upload_cut_without_close_notify_is_not_committed() {
    let s = start(|_| {});
    write_file(&s.server.path("keep"), b"previous version");
    let mut control = TlsControl::explicit(s.server.addr, &s.client);
    control.login();
    control.code("TYPE I");
    control.code("PBSZ 0");
    control.code("PROT P");
    let addr = control.epsv(s.server.addr);
    let tcp = TcpStream::connect(addr).unwrap();
    assert_eq!(control.code("STOR keep"), 150);
    let mut data = wrap(&s.client, tcp.try_clone().unwrap());
    data.write_all(&random_bytes(200_000, 12)).unwrap();
    data.flush().unwrap();
    // TCP FIN without a TLS close_notify: a truncation attack or a crash, not an end of file.
    tcp.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(control.reply().0, 426);
    assert_eq!(
        std::fs::read(s.server.path("keep")).unwrap(),
        b"previous version"
    );
    assert_eq!(s.server.names_in(""), ["keep", "pub"]);

    // The same upload closed properly is committed.
    let addr = control.epsv(s.server.addr);
    let tcp = TcpStream::connect(addr).unwrap();
    assert_eq!(control.code("STOR keep"), 150);
    let mut data = wrap(&s.client, tcp);
    data.write_all(b"new version").unwrap();
    data.conn.send_close_notify();
    data.flush().unwrap();
    drop(data);
    assert_eq!(control.reply().0, 226);
    assert_eq!(
        std::fs::read(s.server.path("keep")).unwrap(),
        b"new version"
    );
}

#[test]
fn ccc_is_refused_by_default() {
    let s = start(|_| {});
    let mut control = TlsControl::explicit(s.server.addr, &s.client);
    control.login();
    assert_eq!(control.code("CCC"), 534);
    assert_eq!(control.code("NOOP"), 200);
}

#[test]
fn auth_without_tls_configured_is_refused() {
    let server = TestServer::start();
    let mut raw = server.raw();
    assert_eq!(raw.code("AUTH TLS"), 502);
    assert_eq!(raw.code("PBSZ 0"), 503);
    let (_, feat) = raw.cmd("FEAT");
    assert!(!feat.contains("AUTH TLS"));
}

#[test]
fn handshake_garbage_closes_only_that_connection() {
    let s = start(|_| {});
    let mut raw = s.server.raw();
    assert_eq!(raw.code("AUTH TLS"), 234);
    raw.send_bytes(b"this is not a TLS ClientHello\r\n");
    // The server answers with a TLS alert at most, then closes.
    let mut rest = Vec::new();
    raw.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    raw.stream.read_to_end(&mut rest).unwrap();
    assert!(
        rest.len() < 16 && !String::from_utf8_lossy(&rest).contains("50"),
        "{rest:?}"
    );
    let mut control = TlsControl::explicit(s.server.addr, &s.client);
    control.login();
}

#[test]
fn client_offering_another_alpn_protocol_is_refused() {
    let s = start(|_| {});
    let mut config = (*tls_client_config(&s.cert)).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    let mut raw = Raw::connect(s.server.addr);
    assert_eq!(raw.code("AUTH TLS"), 234);
    let mut tls = wrap(&config, raw.stream.try_clone().unwrap());
    assert!(
        tls.write_all(b"NOOP\r\n")
            .and_then(|_| tls.flush())
            .and_then(|_| tls.read(&mut [0u8; 16]))
            .is_err()
    );
    let mut ftp_alpn = (*tls_client_config(&s.cert)).clone();
    ftp_alpn.alpn_protocols = vec![b"ftp".to_vec()];
    let mut control = TlsControl::explicit(s.server.addr, &Arc::new(ftp_alpn));
    control.login();
}

#[test]
fn ccc_when_allowed_returns_the_control_connection_to_clear_text() {
    let s = start(|tls| tls.allow_ccc = true);
    let mut control = TlsControl::explicit(s.server.addr, &s.client);
    control.login();
    let (_, feat) = control.cmd("FEAT");
    assert!(feat.contains(" CCC\r\n"), "{feat}");
    assert_eq!(control.code("CCC"), 200);
    let mut tls = control.reader.into_inner();
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    let mut rest = Vec::new();
    assert_eq!(
        tls.read_to_end(&mut rest).unwrap(),
        0,
        "the server closed TLS cleanly"
    );
    let mut plain = Raw::from_stream(tls.sock);
    assert_eq!(plain.code("NOOP"), 200);
    assert!(plain.cmd("PWD").1.contains("\"/\""), "still logged in");
}

/// A client whose TLS session cache is shared by all its connections (as rclone's is) offers a
/// sibling control connection's session on a data connection.
fn sibling_session_transfer(s: &TlsServer, sibling_user: &str) -> u16 {
    write_file(&s.server.path("f"), b"shared cache");
    // The sibling control connection fills `shared` with its tickets.
    let shared = tls_client_config(&s.cert);
    let mut sibling = TlsControl::explicit(s.server.addr, &shared);
    sibling.cmd(&format!("USER {sibling_user}"));
    assert_eq!(sibling.code(&format!("PASS {PASS}")), 230);
    // This control connection uses its own configuration, but makes its data connection with
    // the shared one, which can only resume the sibling's session.
    let own = tls_client_config(&s.cert);
    let mut control = TlsControl::explicit(s.server.addr, &own);
    control.login();
    control.code("PBSZ 0");
    control.code("PROT P");
    let (code, _) = protected_transfer(&mut control, s.server.addr, &shared, "RETR f");
    code
}

#[test]
fn by_default_a_sibling_session_of_the_same_user_is_accepted() {
    let s = start(|_| {});
    assert_eq!(sibling_session_transfer(&s, USER), 226);
}

#[test]
fn a_sibling_session_of_another_user_is_refused() {
    let s = start(|_| {});
    assert_eq!(sibling_session_transfer(&s, READER), 522);
}

#[test]
fn same_connection_mode_refuses_even_sibling_sessions() {
    let s = start(|tls| tls.session_reuse = SessionReuse::SameConnection);
    assert_eq!(sibling_session_transfer(&s, USER), 522);
}

#[test]
fn a_stalled_tls_handshake_is_dropped() {
    let s = start(|tls| tls.handshake_timeout = Duration::from_millis(500));
    let mut raw = s.server.raw();
    assert_eq!(raw.code("AUTH TLS"), 234);
    let started = std::time::Instant::now();
    assert!(
        raw.is_closed(),
        "the connection is closed after the handshake timeout"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut implicit = TcpStream::connect(s.server.implicit_addrs[0]).unwrap();
    implicit
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = Vec::new();
    assert!(
        implicit.read_to_end(&mut buf).is_ok(),
        "the implicit listener drops a silent client"
    );
}

#[test]
fn implicit_tls_behind_a_load_balancer_reads_the_proxy_header_first() {
    let (server_config, cert) = tls_server_config();
    let mut options = Options::default();
    options.config.tls = Some(TlsConfig::new(server_config));
    options.config.implicit_tls_listen = vec!["127.0.0.1:0".parse().unwrap()];
    options.config.proxy_protocol = Some(ftpgate::ProxyProtocol::new(vec![
        "127.0.0.4/32".parse().unwrap(),
    ]));
    let server = TestServer::start_with(options);
    let client = tls_client_config(&cert);
    let mut tcp = connect_from("127.0.0.4", server.implicit_addrs[0]);
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The header, then at once the ClientHello: the header's bytes alone are consumed.
    tcp.write_all(b"PROXY TCP4 127.0.0.9 127.0.0.1 40000 990\r\n")
        .unwrap();
    let mut control = TlsControl {
        reader: BufReader::new(wrap(&client, tcp)),
    };
    assert_eq!(control.reply().0, 220);
    control.login();
    let clients: Vec<SocketAddr> = server
        .sessions
        .snapshot()
        .iter()
        .map(|s| s.client)
        .collect();
    assert_eq!(clients, vec!["127.0.0.9:40000".parse().unwrap()]);
}
