//! Queues and pipes over shared memory.

mod pipe;

pub use pipe::{Connection, End, Pipe};
