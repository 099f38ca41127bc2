//! Segments: raw shared memory, the typed-object header, validation.

pub(crate) mod access;
pub(crate) mod header;
pub(crate) mod object;
pub(crate) mod segment;
