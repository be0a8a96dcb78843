//! Where audit entries wait for the writer.

use baton_store::NewAuditEntry;
use tokio::sync::mpsc;

/// Where entries wait to be written.
pub(crate) struct AuditQueue {
    pub(super) tx: mpsc::UnboundedSender<NewAuditEntry>,
    pub(super) rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<NewAuditEntry>>>,
}

impl Default for AuditQueue {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        AuditQueue {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
        }
    }
}
