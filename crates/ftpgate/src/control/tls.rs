//! TLS on the control connection: AUTH TLS and implicit TLS listeners, and CCC.

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{info, warn};

use super::Control;
use crate::tls::{self, SessionTls, Stream};

impl Control {
    /// This connection's TLS context, made on first use.
    pub(super) fn session_tls(&mut self) -> io::Result<Arc<SessionTls>> {
        if let Some(tls) = &self.tls {
            return Ok(tls.clone());
        }
        let server_tls = self
            .ctx
            .tls
            .as_ref()
            .ok_or_else(|| io::Error::other("TLS is not configured"))?;
        let tls = Arc::new(
            server_tls
                .session(self.client.ip())
                .map_err(io::Error::other)?,
        );
        self.tls = Some(tls.clone());
        Ok(tls)
    }

    /// AUTH TLS (after its 234 reply) or an implicit TLS listener: anything the client sent
    /// beyond the AUTH line is dropped unread, then the handshake runs.
    pub(super) async fn upgrade_tls(&mut self, implicit: bool) -> io::Result<()> {
        if self.decoder.has_buffered() {
            warn!("discarding commands sent after AUTH TLS before the handshake");
            self.decoder.clear();
        }
        let tls = self.session_tls()?;
        let Stream::Plain(mut tcp) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Err(io::Error::other("the control connection is not clear"));
        };
        tcp.set_tls(true);
        let handshake = tls
            .accept(tcp)
            .await
            .inspect_err(|e| warn!(error = %e, "TLS handshake failed"));
        if let Some(metrics) = &self.ctx.metrics {
            metrics.tls_handshake(
                handshake
                    .as_ref()
                    .ok()
                    .and_then(|s| s.get_ref().1.protocol_version()),
            );
        }
        let stream = handshake?;
        info!(tls = %tls::describe(&stream), "control connection secured");
        self.client_certificates = stream
            .get_ref()
            .1
            .peer_certificates()
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        if let Some(user) = self.session.user_name() {
            tls.logged_in(user);
        }
        self.stream = Stream::Tls(Box::new(stream));
        self.session.handle_tls_established(implicit);
        Ok(())
    }

    /// CCC (after its 200 reply): both sides close TLS with close_notify, and the same TCP
    /// connection goes on in the clear. The client's close_notify is read one TLS record at a
    /// time, so no clear-text command sent right after it is swallowed by the TLS layer.
    pub(super) async fn clear_control(&mut self) -> io::Result<()> {
        let Stream::Tls(stream) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Err(io::Error::other("the control connection is not TLS"));
        };
        let (mut tcp, mut conn) = (*stream).into_inner();
        conn.send_close_notify();
        while conn.wants_write() {
            let mut out = Vec::new();
            conn.write_tls(&mut out)?;
            tcp.write_all(&out).await?;
        }
        let read_close = async {
            loop {
                let mut header = [0u8; 5];
                tcp.read_exact(&mut header).await?;
                let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
                if len > 18_432 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "oversized TLS record",
                    ));
                }
                let mut record = vec![0u8; 5 + len];
                record[..5].copy_from_slice(&header);
                tcp.read_exact(&mut record[5..]).await?;
                conn.read_tls(&mut &record[..])?;
                let state = conn.process_new_packets().map_err(io::Error::other)?;
                if state.peer_has_closed() {
                    return Ok(());
                }
            }
        };
        match tokio::time::timeout(self.live.config.data_timeout, read_close).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no close_notify after CCC",
                ));
            }
        }
        tcp.set_tls(false);
        self.stream = Stream::Plain(tcp);
        self.decoder.clear();
        self.session.handle_control_cleared();
        info!("control connection back in the clear (CCC)");
        Ok(())
    }
}
