//! [`MessageQueue`]: variable-length byte messages (to come).

/// Placeholder.
#[derive(Debug)]
pub struct MessageQueue;
