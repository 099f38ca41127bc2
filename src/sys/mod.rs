//! Every system call of the crate. Nothing outside this module talks to the
//! kernel.

pub(crate) mod file;
pub(crate) mod futex;
pub(crate) mod liveness;
pub(crate) mod robust;
pub(crate) mod thread;
