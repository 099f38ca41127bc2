//! Element types: what a [`Value`](crate::Value) or [`Array`](crate::Array)
//! can hold, and the type codes recorded in the header.

use bytemuck::{Pod, Zeroable};

/// A type that can live in shared memory: plain old data (any bit pattern
/// is a valid value, no pointers, no padding), with a type code recorded in
/// the segment and checked by `open`.
///
/// Implemented for Python's 14 `array`/`ctypes` type codes:
///
/// | code | Rust      | code | Rust      | code | Rust   |
/// |------|-----------|------|-----------|------|--------|
/// | `c`  | [`CChar`] | `h`  | `i16`     | `l`  | [`CLong`]  |
/// | `u`  | [`WChar`] | `H`  | `u16`     | `L`  | [`CULong`] |
/// | `b`  | `i8`      | `i`  | `i32`     | `q`  | `i64`  |
/// | `B`  | `u8`      | `I`  | `u32`     | `Q`  | `u64`  |
/// | `f`  | `f32`     | `d`  | `f64`     |      |        |
///
/// and implementable for your own `#[repr(C)]` structs through
/// [`bytemuck::Pod`] (code `S`; `open` then checks its size and
/// alignment):
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmsync::{bytemuck, Element, Value};
///
/// #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
/// #[repr(C)]
/// struct Point { x: f64, y: f64 }
/// impl Element for Point {}
///
/// let p = Value::new(Point { x: 1.0, y: 2.0 })?;
/// p.update(|p| Point { x: p.x + 1.0, ..p }).unwrap();
/// assert_eq!(p.get().unwrap(), Point { x: 2.0, y: 2.0 });
/// # Ok(()) }
/// ```
pub trait Element: Pod + Send + Sync + 'static {
    /// The type code recorded in the header: Python's code for the
    /// built-in types, `b'S'` for structs.
    const CODE: u8 = b'S';
}

macro_rules! element {
    ($($t:ty => $c:literal),* $(,)?) => {
        $(impl Element for $t { const CODE: u8 = $c; })*
    };
}

element! {
    i8 => b'b', u8 => b'B', i16 => b'h', u16 => b'H', i32 => b'i', u32 => b'I',
    i64 => b'q', u64 => b'Q', f32 => b'f', f64 => b'd',
}

macro_rules! newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty) => $code:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Pod, Zeroable)]
        #[repr(transparent)]
        pub struct $name(pub $inner);

        impl Element for $name {
            const CODE: u8 = $code;
        }

        impl From<$inner> for $name {
            fn from(v: $inner) -> Self {
                $name(v)
            }
        }

        impl From<$name> for $inner {
            fn from(v: $name) -> Self {
                v.0
            }
        }
    };
}

newtype! {
    /// A C `char` (type code `c`): one byte, as Python's `ctypes.c_char`.
    /// Arrays of it have [`Array::value`](crate::Array::value) and
    /// [`Array::raw`](crate::Array::raw).
    CChar(u8) => b'c'
}
newtype! {
    /// A C `wchar_t` (type code `u`): 32 bits on Linux. Not a Rust `char`,
    /// because a peer can store any 32-bit value; see [`WChar::to_char`].
    WChar(u32) => b'u'
}
newtype! {
    /// A C `long` (type code `l`): 64 bits on 64-bit Linux. A separate type
    /// from `i64` (code `q`) so that both codes can be created and checked.
    CLong(i64) => b'l'
}
newtype! {
    /// A C `unsigned long` (type code `L`); see [`CLong`].
    CULong(u64) => b'L'
}

impl WChar {
    /// The character, if the stored value is a Unicode scalar value.
    pub fn to_char(self) -> Option<char> {
        char::from_u32(self.0)
    }
}

impl From<char> for WChar {
    fn from(c: char) -> Self {
        WChar(c as u32)
    }
}

pub(crate) const fn elem_desc<T: Element>() -> crate::shm::object::ElemDesc {
    crate::shm::object::ElemDesc {
        code: T::CODE,
        size: core::mem::size_of::<T>(),
        align: core::mem::align_of::<T>(),
    }
}
