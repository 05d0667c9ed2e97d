//! Performing a [`StorageOp`]: the call, the quota's bookkeeping, the event.

use ftpgate_core::StorageErrorKind;
use ftpgate_proto::session::{StorageOp, StorageOutcome};

use super::Control;
use crate::events::Event;

impl Control {
    pub(super) async fn storage_call(
        &mut self,
        op: StorageOp,
    ) -> Result<StorageOutcome, StorageErrorKind> {
        let Some(storage) = &self.storage else {
            return Err(StorageErrorKind::Local);
        };
        let user = self.session.user_name().unwrap_or("");
        let result = match &op {
            StorageOp::Metadata(path) => storage.metadata(path).await.map(StorageOutcome::Metadata),
            StorageOp::MakeDir(path) => storage.make_dir(path).await.map(|()| StorageOutcome::Done),
            StorageOp::RemoveDir(path) => storage
                .remove_dir(path)
                .await
                .map(|()| StorageOutcome::Done),
            StorageOp::Delete(path) => {
                // With a quota, the freed bytes (and the file's place) are counted back.
                let size = match &self.quota {
                    Some(_) => storage.metadata(path).await.map(|m| m.size).unwrap_or(0),
                    None => 0,
                };
                let result = storage
                    .remove_file(path)
                    .await
                    .map(|()| StorageOutcome::Done);
                if let (Ok(_), Some(quota)) = (&result, &self.quota) {
                    quota.removed(size).await;
                }
                result
            }
            StorageOp::Rename { from, to } => {
                // A file renamed over another replaces it: with a quota, the replaced file's
                // bytes and place are counted back.
                let replaced = match &self.quota {
                    Some(_) => storage.metadata(to).await.ok().filter(|m| m.is_file()),
                    None => None,
                };
                let result = storage
                    .rename(from, to)
                    .await
                    .map(|()| StorageOutcome::Done);
                if let (Ok(_), Some(quota), Some(replaced)) = (&result, &self.quota, replaced) {
                    if from != to {
                        quota.removed(replaced.size).await;
                    }
                }
                result
            }
            StorageOp::SetModified { path, time } => storage
                .set_modified(path, *time)
                .await
                .map(|()| StorageOutcome::Done),
            StorageOp::SetMode { path, mode } => storage
                .set_mode(path, *mode)
                .await
                .map(|()| StorageOutcome::Done),
            StorageOp::Symlink { target, link } => storage
                .symlink(target, link)
                .await
                .map(|()| StorageOutcome::Done),
            StorageOp::Available(dir) => {
                let free = storage.available_bytes(dir).await;
                match &self.quota {
                    Some(quota) => {
                        quota.sync(storage.as_ref()).await;
                        quota.available_of(free)
                    }
                    None => free,
                }
                .map(StorageOutcome::Available)
            }
        };
        if result.is_ok() {
            let (user, session) = (user.to_string(), self.entry.id);
            match &op {
                StorageOp::Delete(path) => self.ctx.events.emit(|| Event::Deleted {
                    session,
                    user,
                    path: path.clone(),
                }),
                StorageOp::Rename { from, to } => self.ctx.events.emit(|| Event::Renamed {
                    session,
                    user,
                    from: from.clone(),
                    to: to.clone(),
                }),
                StorageOp::MakeDir(path) => self.ctx.events.emit(|| Event::MadeDir {
                    session,
                    user,
                    path: path.clone(),
                }),
                StorageOp::RemoveDir(path) => self.ctx.events.emit(|| Event::RemovedDir {
                    session,
                    user,
                    path: path.clone(),
                }),
                _ => {}
            }
        }
        // The command's log line (`log_file_op`) tells what became of it, with this error.
        result.map_err(|e| {
            let kind = e.kind;
            self.op_error = Some(e);
            kind
        })
    }
}
