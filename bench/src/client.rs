//! A lean asynchronous FTP client for load generation: one control connection with TCP_NODELAY,
//! EPSV (PASV as fallback), TYPE I, RETR/STOR/LIST/MLSD, and FTPS (AUTH TLS, PROT P) with TLS
//! session resumption on data connections, as servers that require it expect.
//!
//! Data is read into and written from caller-provided buffers, never inspected or copied, so the
//! client costs as little CPU as a real client can.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A byte stream: a TCP connection, in the clear or inside TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// TLS client settings shared by every session of a run, so data connections can resume the
/// control connection's TLS session.
pub(crate) struct Tls {
    connector: TlsConnector,
}

impl Tls {
    /// A TLS client that accepts any certificate: the servers under test are on loopback and
    /// use a self-signed certificate.
    pub(crate) fn new() -> Result<Arc<Tls>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        Ok(Arc::new(Tls {
            connector: TlsConnector::from(Arc::new(config)),
        }))
    }

    async fn wrap(&self, stream: TcpStream) -> Result<TlsStream<TcpStream>> {
        let name = ServerName::IpAddress(stream.peer_addr()?.ip().into());
        self.connector
            .connect(name, stream)
            .await
            .context("TLS handshake")
    }
}

/// Accepts every server certificate, still checking handshake signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One server reply: its code and the text of its last line.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) code: u16,
    pub(crate) text: String,
}

/// One FTP session.
pub(crate) struct Ftp {
    control: BufReader<Box<dyn Io>>,
    host: IpAddr,
    tls: Option<Arc<Tls>>,
    line: String,
}

impl Ftp {
    /// Connects and reads the greeting; with `tls`, upgrades the control connection (AUTH TLS)
    /// and later protects data connections (PROT P).
    pub(crate) async fn connect(addr: SocketAddr, tls: Option<Arc<Tls>>) -> Result<Ftp> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut plain = BufReader::new(stream);
        let mut line = String::new();
        expect(read_reply(&mut plain, &mut line).await?, 220, "greeting")?;
        let control: BufReader<Box<dyn Io>> = match &tls {
            None => BufReader::new(Box::new(plain.into_inner())),
            Some(tls) => {
                plain.get_mut().write_all(b"AUTH TLS\r\n").await?;
                expect(read_reply(&mut plain, &mut line).await?, 234, "AUTH TLS")?;
                BufReader::new(Box::new(tls.wrap(plain.into_inner()).await?))
            }
        };
        Ok(Ftp {
            control,
            host: addr.ip(),
            tls,
            line,
        })
    }

    /// Logs in and selects binary mode (and PROT P on a TLS session).
    pub(crate) async fn login(&mut self, user: &str, password: &str) -> Result<()> {
        let reply = self.command(&format!("USER {user}")).await?;
        if reply.code == 331 {
            let reply = self.command(&format!("PASS {password}")).await?;
            expect(reply, 230, "PASS")?;
        } else {
            expect(reply, 230, "USER")?;
        }
        if self.tls.is_some() {
            expect(self.command("PBSZ 0").await?, 200, "PBSZ")?;
            expect(self.command("PROT P").await?, 200, "PROT P")?;
        }
        expect(self.command("TYPE I").await?, 200, "TYPE I")?;
        Ok(())
    }

    /// Connects and logs in.
    pub(crate) async fn open(
        addr: SocketAddr,
        tls: Option<Arc<Tls>>,
        user: &str,
        password: &str,
    ) -> Result<Ftp> {
        let mut ftp = Ftp::connect(addr, tls).await?;
        ftp.login(user, password).await?;
        Ok(ftp)
    }

    /// Sends one command line and reads its reply.
    pub(crate) async fn command(&mut self, line: &str) -> Result<Reply> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        let control = self.control.get_mut();
        control.write_all(&bytes).await?;
        // tokio-rustls keeps an encrypted record when the socket write returns Pending (tokio's
        // cooperative budget running out counts); only a flush sends it. Without it a command
        // after a long TLS download could stay in the buffer while the client waits for its
        // reply (seen once: a QUIT after 226, the case timing out after 600 s).
        control.flush().await?;
        self.reply().await
    }

    async fn reply(&mut self) -> Result<Reply> {
        read_reply(&mut self.control, &mut self.line).await
    }

    /// Opens a passive data connection (EPSV, or PASV if the server refuses EPSV).
    async fn data(&mut self) -> Result<TcpStream> {
        let reply = self.command("EPSV").await?;
        let port = if reply.code == 229 {
            reply
                .text
                .split("|||")
                .nth(1)
                .and_then(|r| r.split('|').next())
                .and_then(|p| p.parse::<u16>().ok())
                .with_context(|| format!("bad EPSV reply {:?}", reply.text))?
        } else {
            let reply = self.command("PASV").await?;
            if reply.code != 227 {
                bail!("PASV: {}", reply.text);
            }
            pasv_port(&reply.text).with_context(|| format!("bad PASV reply {:?}", reply.text))?
        };
        Ok(TcpStream::connect((self.host, port)).await?)
    }

    /// Sends a transfer command on an open data connection and, after the preliminary reply,
    /// starts TLS on the data connection if PROT P is on.
    async fn start_transfer(&mut self, command: &str, data: TcpStream) -> Result<Data> {
        let reply = self.command(command).await?;
        if reply.code != 150 && reply.code != 125 {
            bail!("{command}: {}", reply.text);
        }
        match self.tls.clone() {
            Some(tls) => Ok(Data::Tls(Box::new(tls.wrap(data).await?))),
            None => Ok(Data::Plain(data)),
        }
    }

    async fn finish_transfer(&mut self, command: &str) -> Result<()> {
        let reply = self.reply().await?;
        if reply.code != 226 && reply.code != 250 {
            bail!("{command}: {}", reply.text);
        }
        Ok(())
    }

    /// Downloads `path`, reading into `buf`; returns the bytes received.
    pub(crate) async fn retr(&mut self, path: &str, buf: &mut [u8]) -> Result<u64> {
        let command = format!("RETR {path}");
        let data = self.data().await?;
        let mut data = self.start_transfer(&command, data).await?;
        let total = drain(&mut data, buf).await?;
        drop(data);
        self.finish_transfer(&command).await?;
        Ok(total)
    }

    /// Uploads `bytes` bytes to `path`, writing `chunk` repeatedly (the last write shortened).
    pub(crate) async fn stor(&mut self, path: &str, bytes: u64, chunk: &[u8]) -> Result<()> {
        let command = format!("STOR {path}");
        let data = self.data().await?;
        let mut data = self.start_transfer(&command, data).await?;
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            data.write_all(&chunk[..n]).await?;
            left -= n as u64;
        }
        data.finish_upload().await?;
        self.finish_transfer(&command).await
    }

    /// Runs a listing command (LIST or MLSD) on `path`; returns bytes and lines received.
    pub(crate) async fn listing(
        &mut self,
        verb: &str,
        path: &str,
        buf: &mut [u8],
    ) -> Result<(u64, u64)> {
        let command = format!("{verb} {path}");
        let data = self.data().await?;
        let mut data = self.start_transfer(&command, data).await?;
        let mut bytes = 0u64;
        let mut lines = 0u64;
        loop {
            let n = match data.read(buf).await {
                Ok(n) => n,
                // A server that closes without TLS close_notify: the reply says if it finished.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                break;
            }
            bytes += n as u64;
            lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        }
        drop(data);
        self.finish_transfer(&command).await?;
        Ok((bytes, lines))
    }

    /// Says goodbye (QUIT) and closes the connection.
    pub(crate) async fn quit(mut self) -> Result<()> {
        let reply = self.command("QUIT").await?;
        expect(reply, 221, "QUIT")?;
        let _ = self.control.get_mut().shutdown().await;
        Ok(())
    }
}

/// A data connection, in the clear or inside TLS.
enum Data {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Data {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Data::Plain(s) => s.read(buf).await,
            Data::Tls(s) => s.read(buf).await,
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Data::Plain(s) => s.write_all(buf).await,
            Data::Tls(s) => s.write_all(buf).await,
        }
    }

    /// Ends an upload. In TLS, as Python's ftplib does: close_notify, then wait (at most 10 s)
    /// for the server to end its side before closing the connection; some servers drop the
    /// last bytes of an upload when the TCP connection is half-closed right after close_notify.
    async fn finish_upload(self) -> Result<()> {
        match self {
            Data::Plain(mut s) => s.shutdown().await?,
            Data::Tls(mut s) => {
                s.get_mut().1.send_close_notify();
                s.flush().await?;
                let mut buf = [0u8; 4096];
                let until_closed = async {
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(10), until_closed).await;
                let _ = s.get_mut().0.shutdown().await;
            }
        }
        Ok(())
    }
}

/// Reads a data connection to its end into `buf`; returns the byte count.
async fn drain(data: &mut Data, buf: &mut [u8]) -> Result<u64> {
    let mut total = 0u64;
    loop {
        let n = match data.read(buf).await {
            Ok(n) => n,
            // A server that closes without TLS close_notify: the reply says if it finished.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

/// Reads one reply, single- or multi-line ("123-" ... "123 ").
async fn read_reply<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    line: &mut String,
) -> Result<Reply> {
    let mut first: Option<u16> = None;
    loop {
        line.clear();
        if reader.read_line(line).await? == 0 {
            bail!("connection closed while waiting for a reply");
        }
        let text = line.trim_end();
        let code = text.get(..3).and_then(|c| c.parse::<u16>().ok());
        let done = match (first, code) {
            (None, Some(code)) => {
                first = Some(code);
                text.as_bytes().get(3) != Some(&b'-')
            }
            (Some(f), Some(code)) => code == f && text.as_bytes().get(3) == Some(&b' '),
            (None, None) => bail!("not an FTP reply: {text:?}"),
            (Some(_), None) => false,
        };
        if done {
            return Ok(Reply {
                code: first.unwrap_or_default(),
                text: text.to_string(),
            });
        }
    }
}

fn expect(reply: Reply, code: u16, what: &str) -> Result<()> {
    if reply.code != code {
        bail!("{what}: expected {code}, got {:?}", reply.text);
    }
    Ok(())
}

/// The port of a PASV reply "227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)".
fn pasv_port(text: &str) -> Option<u16> {
    let inner = text.split('(').nth(1)?.split(')').next()?;
    let numbers: Vec<u16> = inner
        .split(',')
        .map(|n| n.trim().parse().ok())
        .collect::<Option<_>>()?;
    match numbers.as_slice() {
        [_, _, _, _, p1, p2] => Some(p1 * 256 + p2),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasv_reply() {
        assert_eq!(
            pasv_port("227 Entering Passive Mode (127,0,0,1,39,16)."),
            Some(10000)
        );
        assert_eq!(pasv_port("227 nothing"), None);
    }

    #[tokio::test]
    async fn multi_line_replies() -> Result<()> {
        let input: &[u8] =
            b"230-Welcome\r\n230-more\r\n 230 not the end\r\n230 done\r\n200 next\r\n";
        let mut reader = BufReader::new(input);
        let mut line = String::new();
        let reply = read_reply(&mut reader, &mut line).await?;
        assert_eq!((reply.code, reply.text.as_str()), (230, "230 done"));
        let reply = read_reply(&mut reader, &mut line).await?;
        assert_eq!(reply.code, 200);
        Ok(())
    }
}
