//! Typed objects with a lock: [`Value`], [`Array`], and their lock-free
//! raw variants [`RawValue`], [`RawArray`] (Python's `multiprocessing`
//! `Value`, `Array`, `RawValue`, `RawArray`).

mod array;
mod element;
mod elements;
mod value;

pub use array::{Array, ArrayGuard, RawArray};
pub(crate) use element::elem_desc;
pub use element::{CChar, CLong, CULong, Element, WChar};
pub(crate) use elements::Elements;
pub use value::{RawValue, Value, ValueGuard};
