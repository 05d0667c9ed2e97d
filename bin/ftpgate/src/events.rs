//! What the daemon does with the engine's events: the transfer log and the hooks. Both only
//! queue work here ([`ftpgate::EventHandler`] runs on the session's task).

use std::sync::Arc;

use ftpgate::{Event, EventHandler};

use crate::hooks::Hooks;
use crate::transfer_log::TransferLog;

/// The daemon's [`EventHandler`].
pub(crate) struct DaemonEvents {
    pub(crate) transfer_log: Option<Arc<TransferLog>>,
    pub(crate) hooks: Hooks,
}

impl EventHandler for DaemonEvents {
    fn on_event(&self, event: &Event) {
        if let (Some(log), Event::Transfer(record)) = (&self.transfer_log, event) {
            log.record(record);
        }
        self.hooks.dispatch(event);
    }
}
