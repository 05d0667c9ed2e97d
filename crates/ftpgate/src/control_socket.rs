//! The control connection's TCP socket, with TCP urgent data kept in line.
//!
//! Clients send ABOR as urgent data: Python's `ftplib` sends `ABOR\r\n` with `MSG_OOB` (its
//! line feed is the urgent byte), and BSD ftp and tnftp send Telnet IP and DM around an urgent
//! IAC (RFC 959 4.1.3). With `SO_OOBINLINE` the urgent byte stays in the stream, in order, so
//! the line decoder sees every byte and drops the Telnet signals (and a TLS record sent as
//! urgent data stays whole). One more thing is needed: Linux ends a read at the urgent mark even
//! when more bytes are waiting, and tokio takes such a short read to mean the socket is drained,
//! so it would wait for the next packet, which never comes while the client waits for the ABOR
//! reply. When a read ends inside a line (clear) or inside a TLS record, the next read therefore
//! asks the socket directly first. Well-formed clients send whole lines and whole records, so
//! this costs nothing in ordinary traffic.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustix::net::RecvFlags;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Where the bytes read so far end, in the framing the socket carries.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Clear command lines: a read that does not end with a line feed ends inside a line.
    #[default]
    Lines,
    /// TLS records: `header` bytes of the next record's 5-byte header seen so far, or
    /// `remaining` bytes of the current record's body still to come.
    Tls {
        header: [u8; 5],
        have: u8,
        remaining: usize,
    },
}

impl Framing {
    fn tls() -> Self {
        Framing::Tls {
            header: [0; 5],
            have: 0,
            remaining: 0,
        }
    }

    /// Takes in bytes just read; whether they end inside a line or record.
    fn ends_inside(&mut self, bytes: &[u8]) -> bool {
        match self {
            Framing::Lines => bytes.last().is_some_and(|&b| b != b'\n'),
            Framing::Tls {
                header,
                have,
                remaining,
            } => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    if *remaining > 0 {
                        let take = (*remaining).min(rest.len());
                        *remaining -= take;
                        rest = &rest[take..];
                    } else {
                        header[usize::from(*have)] = rest[0];
                        *have += 1;
                        rest = &rest[1..];
                        if *have == 5 {
                            *have = 0;
                            *remaining = usize::from(u16::from_be_bytes([header[3], header[4]]));
                        }
                    }
                }
                *have > 0 || *remaining > 0
            }
        }
    }
}

/// A control connection's socket (see the module documentation).
pub(crate) struct ControlSocket {
    tcp: TcpStream,
    framing: Framing,
    /// The last read ended inside a line or record: more may be waiting behind an urgent mark.
    inside: bool,
}

impl ControlSocket {
    /// Wraps an accepted control connection, keeping urgent data in line.
    pub(crate) fn new(tcp: TcpStream) -> io::Result<Self> {
        rustix::net::sockopt::set_socket_oobinline(&tcp, true)?;
        Ok(ControlSocket {
            tcp,
            framing: Framing::Lines,
            inside: false,
        })
    }

    /// The socket now carries TLS records (`true`, before the handshake) or clear lines again
    /// (`false`, after CCC).
    pub(crate) fn set_tls(&mut self, tls: bool) {
        self.framing = if tls { Framing::tls() } else { Framing::Lines };
        self.inside = false;
    }
}

impl AsyncRead for ControlSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let start = buf.filled().len();
        let mut direct = false;
        if this.inside && buf.remaining() > 0 {
            // The socket is non-blocking: this returns what is waiting, or EAGAIN.
            match rustix::net::recv(&this.tcp, buf.initialize_unfilled(), RecvFlags::empty()) {
                Ok((n, _)) => {
                    buf.advance(n);
                    direct = true;
                }
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
        if !direct {
            std::task::ready!(Pin::new(&mut this.tcp).poll_read(cx, buf))?;
        }
        this.inside = this.framing.ends_inside(&buf.filled()[start..]);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ControlSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_inside_a_line_is_noticed() {
        let mut lines = Framing::Lines;
        assert!(lines.ends_inside(b"ABOR\r"));
        assert!(lines.ends_inside(b"\xff\xf4"));
        assert!(!lines.ends_inside(b"NOOP\r\nPWD\r\n"));
        assert!(!lines.ends_inside(b""));
    }

    #[test]
    fn tls_records_are_followed_across_reads() {
        let mut tls = Framing::tls();
        // A 3-byte record, whole.
        assert!(!tls.ends_inside(&[23, 3, 3, 0, 3, 1, 2, 3]));
        // A header split in two, then a body split in two.
        assert!(tls.ends_inside(&[23, 3]));
        assert!(tls.ends_inside(&[3, 0, 4, 9]));
        assert!(tls.ends_inside(&[9, 9]));
        assert!(!tls.ends_inside(&[9]));
        // Two records in one read, the second cut short by its last byte.
        assert!(tls.ends_inside(&[23, 3, 3, 0, 1, 7, 23, 3, 3, 0, 2, 5]));
        assert!(!tls.ends_inside(&[6]));
        // An empty record ends at its header.
        assert!(!tls.ends_inside(&[21, 3, 3, 0, 0]));
    }
}
