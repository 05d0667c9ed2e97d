//! Data transfers as the control connection sees them: the passive endpoint, starting a
//! transfer, its 150 and its end, and the STAT listing sent over the control connection.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ftpgate_core::{DirEntry, StorageErrorKind};
use ftpgate_proto::listing::format_list_line;
use ftpgate_proto::reply_map::reply_for;
use ftpgate_proto::session::{StartInfo, TransferKind, TransferOutcome, TransferPlan};
use ftpgate_proto::{Reply, Step, VirtualPath};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{Instrument, info_span, warn};

use super::log::Moved;
use super::{Control, RunningTransfer};
use crate::limits::UploadLimits;
use crate::passive::Passive;
use crate::sessions::LiveTransfer;
use crate::transfer::{StallTimer, TransferContext};

impl Control {
    /// PASV/EPSV: a passive endpoint for the next transfer.
    pub(super) fn open_passive(&mut self, extended: bool) -> Step {
        // A second PASV replaces the first: its listener (or place in a queue) goes
        // before the new one is made.
        self.passive = None;
        let result = match Passive::open(
            &self.ctx.config,
            &self.ctx.port_sharing,
            self.local.ip(),
            self.client.ip(),
            self.ctx.proxy.as_ref(),
            self.ctx.metrics.as_deref(),
        ) {
            Ok((passive, port)) => {
                self.passive = Some(passive);
                let ip = self
                    .ctx
                    .advertised_ipv4(self.client.ip(), self.dialled.ip());
                Ok((ip, port))
            }
            Err(e) => {
                warn!(error = %e, "cannot open a passive port");
                Err(())
            }
        };
        self.session.handle_passive_opened(extended, result)
    }

    pub(super) async fn start_transfer(&mut self, plan: TransferPlan) -> io::Result<()> {
        let Some(storage) = self.storage.clone() else {
            // Not reachable while logged in; answer rather than leave the session waiting.
            let replies = self
                .session
                .handle_transfer_done(TransferOutcome::Failed(StorageErrorKind::Local));
            return self.send(&replies).await;
        };
        let cancel = self.ctx.hard.child_token();
        let progress = Arc::new(AtomicU64::new(0));
        let size = Arc::new(AtomicU64::new(u64::MAX));
        let tls = if plan.protected {
            self.session_tls().ok()
        } else {
            None
        };
        if let (Some(quota), true) = (
            &self.quota,
            matches!(
                plan.kind,
                TransferKind::Store { .. } | TransferKind::StoreUnique { .. }
            ),
        ) {
            // Other nodes may have written since: take the fleet's usage.
            quota.sync(storage.as_ref()).await;
        }
        let limits = UploadLimits {
            max_file_size: self.live.config.max_file_size,
            quota: self.quota.clone(),
            mode_z_max_inflated: self.live.config.mode_z_max_inflated,
            mode_z_max_ratio: self.live.config.mode_z_max_ratio,
        };
        let (started, started_rx) = oneshot::channel();
        let ctx = TransferContext {
            storage,
            limits,
            tls,
            passive: self.passive.take(),
            peer_ip: self.client.ip(),
            local_ip: self.local.ip(),
            active_source_port: self.ctx.active_source_port(self.local.port()),
            data_timeout: self.live.config.data_timeout,
            stall: self.stall.get_or_insert_with(StallTimer::new).clone(),
            user: self.session.user_name().unwrap_or("").to_string(),
            cancel: cancel.clone(),
            progress: progress.clone(),
            throttle: match &plan.kind {
                TransferKind::Retrieve { .. } => self.throttles.download.clone(),
                TransferKind::Store { .. } | TransferKind::StoreUnique { .. } => {
                    self.throttles.upload.clone()
                }
                _ => None,
            },
            size: size.clone(),
            session: self.entry.id,
            started: Some(started),
            server: self.ctx.transfers.clone(),
        };
        // The transfer's own lines (storage errors, a refused upload) name its command and path.
        let span = info_span!(
            "transfer",
            command = plan.verb,
            path = plan.kind.path().as_str()
        );
        self.entry.set_transfer(Some(LiveTransfer {
            command: plan.verb,
            path: plan.kind.path().as_str().to_string(),
            started: std::time::SystemTime::now(),
            began: std::time::Instant::now(),
            progress: progress.clone(),
            size,
        }));
        self.transfer = Some(RunningTransfer {
            cancel,
            progress,
            began: Instant::now(),
            unique_name: None,
            started: Some(started_rx),
            work: Box::pin(crate::transfer::run(plan, ctx).instrument(span)),
        });
        Ok(())
    }

    /// The transfer's data connection is open: 150 (STOU's name is kept for the log line).
    pub(super) fn transfer_started(&mut self, info: StartInfo) -> Reply {
        if let Some(transfer) = &mut self.transfer {
            transfer.unique_name = info.unique_name.clone();
        }
        self.session.handle_transfer_started(&info)
    }

    /// The transfer's future ended with `outcome`: its final reply, after the 150 of a
    /// transfer that is over before that was sent (a small file sent whole), so both go out in
    /// one write, one segment and one wake-up for the client.
    pub(super) fn transfer_ended(&mut self, outcome: TransferOutcome) -> Vec<Reply> {
        let unsent_start = self
            .transfer
            .as_mut()
            .and_then(|t| t.started.take())
            .and_then(|mut started| started.try_recv().ok());
        let start = unsent_start.map(|info| self.transfer_started(info));
        let mut replies = self.transfer_done(outcome);
        if let Some(start) = start {
            replies.insert(0, start);
        }
        replies
    }

    fn transfer_done(&mut self, outcome: TransferOutcome) -> Vec<Reply> {
        let transfer = self.transfer.take();
        self.entry.set_transfer(None);
        self.last_activity = Instant::now();
        let replies = self.session.handle_transfer_done(outcome);
        if let (Some(transfer), Some(reply)) = (transfer, replies.first()) {
            let moved = Moved {
                bytes: transfer.progress.load(Ordering::Relaxed),
                took: transfer.began.elapsed(),
                unique_name: transfer.unique_name,
            };
            self.log_file_op(reply, Some(moved));
        }
        replies
    }

    /// STAT with a path: the listing goes over the control connection as one 213 reply,
    /// streamed entry by entry.
    pub(super) async fn stat_listing(&mut self, path: &VirtualPath) -> io::Result<()> {
        let Some(storage) = self.storage.clone() else {
            return Ok(());
        };
        let meta = match storage.metadata(path).await {
            Ok(meta) => meta,
            Err(e) => return self.send(&[reply_for(e.kind, path.as_str())]).await,
        };
        let now = std::time::SystemTime::now();
        let zone = &self.ctx.config.listing_time_zone;
        let mut out = format!(
            "213-Status of {}:\r\n",
            ftpgate_proto::listing::display_name(path.as_str())
        )
        .into_bytes();
        if meta.is_dir() {
            let mut entries = match storage.list(path).await {
                Ok(entries) => entries,
                Err(e) => return self.send(&[reply_for(e.kind, path.as_str())]).await,
            };
            while let Some(entry) = entries.next().await {
                match entry {
                    Ok(entry) => {
                        out.push(b' ');
                        let offset = zone.offset_seconds(entry.metadata.modified);
                        format_list_line(&entry, now, offset, &mut out);
                    }
                    Err(e) => {
                        warn!(error = %e, "listing failed");
                        break;
                    }
                }
                if out.len() >= 64 * 1024 {
                    self.stream.write_all(&out).await?;
                    out.clear();
                }
            }
        } else {
            let name = path.file_name().unwrap_or("").to_string();
            out.push(b' ');
            let offset = zone.offset_seconds(meta.modified);
            format_list_line(
                &DirEntry {
                    name,
                    metadata: meta,
                },
                now,
                offset,
                &mut out,
            );
        }
        out.extend_from_slice(b"213 End of status\r\n");
        self.stream.write_all(&out).await?;
        self.stream.flush().await
    }
}
