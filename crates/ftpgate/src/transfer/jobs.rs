//! HASH and COMB: transfers with no data connection (`DataEndpoint::None`). They reuse the
//! transfer machinery, so they are one per session, abortable, visible to STAT, and end the
//! same way.

use std::sync::atomic::Ordering;

use ftpgate_core::{HashAlgorithm, StorageErrorKind, Upload, VirtualPath, WriteStart};
use ftpgate_proto::session::TransferOutcome;
use tokio::io::AsyncReadExt;
use tracing::warn;

use super::outcome::{Side, cancellable, guarded, storage_failed};
use super::{TRANSFER_BUFFER, TransferContext, read_into};
use crate::digest::Digester;
use crate::limits::UploadLimit;

/// HASH: the digest of bytes `start..end` of a file, from the store's own checksum when it
/// has one for the whole file, otherwise read and hashed under a server-wide permit.
pub(super) async fn hash_file(
    ctx: &mut TransferContext,
    path: &VirtualPath,
    algorithm: HashAlgorithm,
    start: u64,
    end: Option<u64>,
) -> Result<TransferOutcome, TransferOutcome> {
    let meta = ctx.storage.metadata(path).await.map_err(storage_failed)?;
    if meta.is_dir() {
        return Err(TransferOutcome::Failed(StorageErrorKind::IsADirectory));
    }
    let end = end.map_or(meta.size, |e| e.min(meta.size));
    if start > end {
        return Err(TransferOutcome::Failed(StorageErrorKind::InvalidOffset));
    }
    if start == 0 && end == meta.size {
        if let Ok(Some(stored)) = ctx.storage.stored_digest(path, algorithm).await {
            return Ok(TransferOutcome::Hashed {
                digest: crate::digest::hex(&stored),
                start,
                end,
            });
        }
    }
    let server = ctx.server.clone();
    let _permit = cancellable(ctx, server.hash_slots.acquire())
        .await?
        .map_err(|_| TransferOutcome::Failed(StorageErrorKind::Local))?;
    let reader = ctx
        .storage
        .read(path, start)
        .await
        .map_err(storage_failed)?;
    let mut reader = reader.take(end - start);
    let mut digester = Digester::new(algorithm);
    let mut buffer = Vec::with_capacity(TRANSFER_BUFFER);
    let mut hashed = 0u64;
    loop {
        let n = guarded(ctx, Side::Storage, read_into(&mut reader, &mut buffer)).await?;
        if n == 0 {
            break;
        }
        digester.update(&buffer);
        hashed += n as u64;
        ctx.progress.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok(TransferOutcome::Hashed {
        digest: digester.finish_hex(),
        start,
        end: start + hashed,
    })
}

/// COMB: `target` becomes the parts in order (in the store where it can, otherwise streamed
/// through an upload that commits only when every part was copied), then the parts go.
pub(super) async fn combine(
    ctx: &mut TransferContext,
    target: &VirtualPath,
    parts: &[VirtualPath],
) -> Result<TransferOutcome, TransferOutcome> {
    let mut total = 0u64;
    let mut freed = 0u64;
    for part in parts {
        let meta = ctx.storage.metadata(part).await.map_err(storage_failed)?;
        if !meta.is_file() {
            return Err(TransferOutcome::Failed(StorageErrorKind::IsADirectory));
        }
        total += meta.size;
        if part != target {
            freed += meta.size;
        }
    }
    let (old_target, target_is_new) = match ctx.storage.metadata(target).await {
        Ok(meta) if meta.is_file() => (meta.size, false),
        Ok(_) => return Err(TransferOutcome::Failed(StorageErrorKind::IsADirectory)),
        Err(_) => (0, true),
    };
    if let Some(max) = ctx.limits.max_file_size.filter(|max| total > *max) {
        return Err(TransferOutcome::OverLimit(UploadLimit::MaxFileSize(max)));
    }
    match ctx.storage.combine(target, parts).await {
        Ok(()) => ctx.progress.store(total, Ordering::Relaxed),
        Err(e) if e.kind == StorageErrorKind::Unsupported => {
            let mut upload = ctx
                .storage
                .write(target, WriteStart::Truncate)
                .await
                .map_err(storage_failed)?;
            if let Err(outcome) = copy_parts(ctx, parts, upload.as_mut()).await {
                upload.abort().await;
                return Err(outcome);
            }
            upload.commit().await.map_err(storage_failed)?;
        }
        Err(e) => return Err(storage_failed(e)),
    }
    let mut removed = 0;
    for part in parts.iter().filter(|p| *p != target) {
        match ctx.storage.remove_file(part).await {
            Ok(()) => removed += 1,
            Err(e) => warn!(part = %part, error = %e, "cannot remove a combined part"),
        }
    }
    ctx.limits.committed(old_target + freed, total).await;
    if let Some(quota) = &ctx.limits.quota {
        quota.files_changed(u64::from(target_is_new), removed).await;
    }
    Ok(TransferOutcome::Complete { bytes: total })
}

async fn copy_parts(
    ctx: &TransferContext,
    parts: &[VirtualPath],
    upload: &mut dyn Upload,
) -> Result<(), TransferOutcome> {
    let mut buffer = Vec::with_capacity(TRANSFER_BUFFER);
    for part in parts {
        let mut reader = ctx.storage.read(part, 0).await.map_err(storage_failed)?;
        loop {
            let n = guarded(ctx, Side::Storage, read_into(&mut reader, &mut buffer)).await?;
            if n == 0 {
                break;
            }
            guarded(ctx, Side::Storage, upload.write(&buffer)).await?;
            ctx.progress.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    Ok(())
}
