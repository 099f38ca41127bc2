#![allow(unsafe_code)] // pointers into the validated mapping: header, lock slot, elements
//! Typed objects: create a segment with a header, or attach to one and
//! validate it.

use core::fmt;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::time::Duration;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::shm::access;
use crate::shm::header::{
    data_offset_for, Header, HeaderFields, LockSlot, HEADER_SIZE, LOCK_NAME_MAX, LOCK_NAME_OFFSET,
    LOCK_OFFSET, MAGIC, MAX_ALIGN, READY, VERSION,
};
use crate::shm::segment::Segment;
use crate::sys;

/// How long `open` waits for a creator that has not published its header.
pub(crate) const OPEN_TIMEOUT: Duration = Duration::from_secs(1);

/// What a segment holds: the kind number recorded in the header, which
/// `open` checks ([`crate::inspect`] reports it). A new kind is one more
/// variant here and in `Kind::ALL` (its number is forever: files carry it);
/// what its segments look like is its `Shape`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
pub enum Kind {
    /// [`Value`](crate::Value) (1).
    Value = 1,
    /// [`RawValue`](crate::RawValue) (2).
    RawValue = 2,
    /// [`Array`](crate::Array) (3).
    Array = 3,
    /// [`RawArray`](crate::RawArray) (4).
    RawArray = 4,
    /// [`Lock`](crate::Lock) (5).
    Lock = 5,
    /// [`RLock`](crate::RLock) (6).
    RLock = 6,
    /// [`AtomicValue`](crate::AtomicValue) (7).
    AtomicValue = 7,
    /// [`AtomicArray`](crate::AtomicArray) (8).
    AtomicArray = 8,
    /// [`Event`](crate::Event) (9).
    Event = 9,
    /// [`Semaphore`](crate::Semaphore) (10).
    Semaphore = 10,
    /// [`BoundedSemaphore`](crate::BoundedSemaphore) (11).
    BoundedSemaphore = 11,
    /// [`Condition`](crate::Condition) (12).
    Condition = 12,
    /// [`Barrier`](crate::Barrier) (13).
    Barrier = 13,
    /// [`Pipe`](crate::Pipe)'s two [`Connection`](crate::Connection)s (16).
    Pipe = 16,
    /// [`Queue`](crate::Queue) (14).
    Queue = 14,
    /// [`MessageQueue`](crate::MessageQueue) (15).
    MessageQueue = 15,
}

impl Kind {
    /// Every kind, to read the header's number back.
    const ALL: [Kind; 16] = [
        Kind::Value,
        Kind::RawValue,
        Kind::Array,
        Kind::RawArray,
        Kind::Lock,
        Kind::RLock,
        Kind::AtomicValue,
        Kind::AtomicArray,
        Kind::Event,
        Kind::Semaphore,
        Kind::BoundedSemaphore,
        Kind::Condition,
        Kind::Barrier,
        Kind::Queue,
        Kind::MessageQueue,
        Kind::Pipe,
    ];

    /// The kind with header number `v`, if this build knows it.
    ///
    /// ```
    /// use shmsync::inspect::Kind;
    /// assert_eq!(Kind::from_u32(9), Some(Kind::Event));
    /// assert_eq!(Kind::Event.number(), 9);
    /// assert_eq!(Kind::from_u32(0), None);
    /// ```
    pub fn from_u32(v: u32) -> Option<Kind> {
        Self::ALL.into_iter().find(|k| *k as u32 == v)
    }

    /// The number the header records.
    pub fn number(self) -> u32 {
        self as u32
    }

    /// The type's name (`"Value"`, `"AtomicArray"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Value => "Value",
            Kind::RawValue => "RawValue",
            Kind::Array => "Array",
            Kind::RawArray => "RawArray",
            Kind::Lock => "Lock",
            Kind::RLock => "RLock",
            Kind::AtomicValue => "AtomicValue",
            Kind::AtomicArray => "AtomicArray",
            Kind::Event => "Event",
            Kind::Condition => "Condition",
            Kind::Barrier => "Barrier",
            Kind::Pipe => "Pipe",
            Kind::Queue => "Queue",
            Kind::MessageQueue => "MessageQueue",
            Kind::Semaphore => "Semaphore",
            Kind::BoundedSemaphore => "BoundedSemaphore",
        }
    }
}

/// Where an object's lock lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum LockMode {
    /// No lock (raw and atomic kinds).
    None = 0,
    /// The lock slot of this segment.
    Own = 1,
    /// The lock slot of another segment (Python's `lock=obj`).
    External = 2,
}

/// An element type as the header records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ElemDesc {
    pub(crate) code: u8,
    pub(crate) size: usize,
    pub(crate) align: usize,
}

impl ElemDesc {
    pub(crate) const NONE: ElemDesc = ElemDesc {
        code: 0,
        size: 0,
        align: 1,
    };
}

/// The external lock an object records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LockRef {
    pub(crate) id: u64,
    /// The name of the lock's segment, when it has one.
    pub(crate) name: Option<String>,
}

/// What every segment of one kind looks like: the layout `create` writes
/// and `open` requires, besides the element count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) kind: Kind,
    /// The element type ([`ElemDesc::NONE`] for kinds without elements).
    pub(crate) elem: ElemDesc,
    /// The strides `open` accepts; `create` uses the first unless the
    /// object asks for the second (a padded atomic array).
    pub(crate) strides: [usize; 2],
    /// The lock a new object has by itself: `None` or `Own`.
    pub(crate) lock: LockMode,
    /// Whether it may use another object's lock instead (`External`).
    pub(crate) shares_lock: bool,
    /// Exactly one element (a single value).
    pub(crate) single: bool,
    /// Whether the object judges peers by their liveness bytes
    /// (`sys::liveness`) although it has no lock slot of its own (a
    /// semaphore's holders, a barrier's parties): its handles attach this
    /// process's liveness description as a locking object's do.
    pub(crate) liveness: bool,
}

impl Shape {
    /// Whether handles of an object with this shape and lock mode attach
    /// this process's liveness description.
    fn needs_liveness(&self, mode: LockMode) -> bool {
        mode == LockMode::Own || self.liveness
    }

    /// The lock modes a segment of this shape may record.
    fn allows(&self, mode: LockMode) -> bool {
        mode == self.lock || (self.shares_lock && mode == LockMode::External)
    }
}

/// What to create: a shape, the element count and stride, and the lock.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) shape: Shape,
    pub(crate) count: usize,
    pub(crate) stride: usize,
    pub(crate) lock: LockMode,
    pub(crate) lock_ref: Option<LockRef>,
}

/// An object's layout, validated once and kept: the only source of bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) kind: Kind,
    pub(crate) elem: ElemDesc,
    pub(crate) count: usize,
    pub(crate) stride: usize,
    pub(crate) data_offset: usize,
    pub(crate) lock: LockMode,
    pub(crate) lock_ref: Option<LockRef>,
    pub(crate) id: u64,
}

impl Layout {
    /// Total file size this layout needs, if it is representable.
    fn total(&self) -> Option<usize> {
        self.count
            .checked_mul(self.stride)?
            .checked_add(self.data_offset)
    }
}

struct Desc(Kind, ElemDesc);

impl fmt::Display for Desc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Desc(kind, e) = self;
        if e.code == 0 {
            return write!(f, "{kind:?}");
        }
        let code = if e.code.is_ascii_graphic() {
            format!("'{}'", e.code as char)
        } else {
            format!("code {}", e.code)
        };
        write!(f, "{kind:?}<{code}, {} bytes, align {}>", e.size, e.align)
    }
}

impl HeaderFields {
    /// The magic and version, then the kind and element type, as
    /// recorded (not yet compared with anything requested).
    fn kind_elem(&self) -> Result<(Kind, ElemDesc)> {
        if self.magic != MAGIC {
            return Err(Error::BadMagic);
        }
        if self.version != VERSION {
            return Err(Error::VersionMismatch {
                expected: VERSION,
                found: self.version,
            });
        }
        let kind = Kind::from_u32(self.kind).ok_or(Error::Corrupt("unknown object kind"))?;
        let elem = ElemDesc {
            code: u8::try_from(self.type_code)
                .map_err(|_| Error::Corrupt("type code out of range"))?,
            size: self.elem_size as usize,
            align: self.elem_align as usize,
        };
        Ok((kind, elem))
    }

    fn lock_mode(&self) -> Result<LockMode> {
        match self.lock_mode {
            0 => Ok(LockMode::None),
            1 => Ok(LockMode::Own),
            2 => Ok(LockMode::External),
            _ => Err(Error::Corrupt("unknown lock mode")),
        }
    }

    /// The data offset (the one the lock mode and element alignment
    /// imply) and the element count.
    fn extent(&self, lock: LockMode, elem: ElemDesc) -> Result<(usize, usize)> {
        let data_offset = data_offset_for(lock == LockMode::External, elem.align);
        if self.data_offset != data_offset as u64 {
            return Err(Error::Corrupt("data offset"));
        }
        let count = usize::try_from(self.count)
            .map_err(|_| Error::Corrupt("element count out of range"))?;
        Ok((data_offset, count))
    }

    /// Every check of `Object::validate` that does not need the requested
    /// type (for [`crate::inspect`]): magic, version, a known kind and
    /// lock mode, the data offset, and a file of exactly the recorded
    /// size. The kind, the element description and the lock mode.
    pub(crate) fn check(&self, file_len: u64) -> Result<(Kind, ElemDesc, LockMode)> {
        let (kind, elem) = self.kind_elem()?;
        let lock = self.lock_mode()?;
        let (data_offset, count) = self.extent(lock, elem)?;
        let total = count
            .checked_mul(self.stride as usize)
            .and_then(|n| n.checked_add(data_offset));
        check_len(total, file_len)?;
        Ok((kind, elem, lock))
    }
}

/// A file of exactly `needed` bytes (`None`: not representable).
fn check_len(needed: Option<usize>, file_len: u64) -> Result<()> {
    let needed = needed.ok_or(Error::Corrupt("element count out of range"))? as u64;
    if file_len < needed {
        return Err(Error::Truncated {
            needed,
            len: file_len,
        });
    }
    if file_len > needed {
        return Err(Error::SizeMismatch {
            expected: needed,
            found: file_len,
        });
    }
    Ok(())
}

/// An attached typed segment with its validated layout.
#[derive(Debug)]
pub(crate) struct Object {
    pub(crate) seg: Arc<Segment>,
    pub(crate) layout: Layout,
}

impl Object {
    /// Creates and publishes a new object; `init` fills the data before the
    /// header is marked ready.
    pub(crate) fn create(
        name: Option<&str>,
        spec: &Spec,
        init: impl FnOnce(&Object),
    ) -> Result<Object> {
        let elem = spec.shape.elem;
        if elem.align == 0
            || !elem.align.is_power_of_two()
            || elem.align > MAX_ALIGN
            || spec.stride < elem.size
            || spec.stride % elem.align != 0
        {
            return Err(Error::InvalidArgument("unsupported element layout"));
        }
        if let Some(LockRef { name: Some(n), .. }) = &spec.lock_ref {
            if n.len() > LOCK_NAME_MAX {
                return Err(Error::InvalidArgument("lock name too long"));
            }
        }
        let layout = Layout {
            kind: spec.shape.kind,
            elem,
            count: spec.count,
            stride: spec.stride,
            data_offset: data_offset_for(spec.lock == LockMode::External, elem.align),
            lock: spec.lock,
            lock_ref: spec.lock_ref.clone(),
            id: sys::file::random_u64()?,
        };
        let total = layout
            .total()
            .ok_or(Error::InvalidArgument("object too large"))?;
        let seg = match name {
            Some(n) => Segment::create_named(n, total as u64).map_err(|e| match e {
                Error::AlreadyExists { name } => Self::judge_taken(name),
                e => e,
            })?,
            None => Segment::create_anonymous(total as u64)?,
        };
        if spec.shape.needs_liveness(spec.lock) {
            // This process's owner-liveness description (`sys::liveness`),
            // now: a failure is an error here, not a lock that no waiter
            // can judge. (A named segment's drop unlinks the name.)
            seg.liveness.attach(seg.fd())?;
        }
        let obj = Object {
            seg: Arc::new(seg),
            layout,
        };
        obj.write_header();
        init(&obj);
        // Release: pairs with the Acquire load of `init` in `attach`; every
        // header field and the initial data are published by this store.
        obj.header().init.store(READY, Release);
        Ok(obj)
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping is at least HEADER_SIZE bytes (checked at
        // create/attach), page aligned, and lives as long as `self.seg`;
        // `Header` consists of atomics only, so a shared reference to bytes
        // that other processes write is sound.
        unsafe { &*self.seg.as_ptr().cast::<Header>() }
    }

    fn write_header(&self) {
        let h = self.header();
        let l = &self.layout;
        // Relaxed: published by the Release store of `init`.
        h.magic.store(MAGIC, Relaxed);
        h.version.store(VERSION, Relaxed);
        h.kind.store(l.kind as u32, Relaxed);
        h.type_code.store(u32::from(l.elem.code), Relaxed);
        h.elem_size.store(l.elem.size as u32, Relaxed);
        h.elem_align.store(l.elem.align as u32, Relaxed);
        h.stride.store(l.stride as u32, Relaxed);
        h.count.store(l.count as u64, Relaxed);
        h.data_offset.store(l.data_offset as u64, Relaxed);
        h.lock_mode.store(l.lock as u32, Relaxed);
        h.id.store(l.id, Relaxed);
        let pid = sys::thread::pid();
        h.creator_pid.store(pid, Relaxed);
        h.creator_start
            .store(sys::thread::own_start_time(), Relaxed);
        if let Some(r) = &l.lock_ref {
            h.lock_id.store(r.id, Relaxed);
            if let Some(n) = &r.name {
                h.lock_name_len.store(n.len() as u32, Relaxed);
                // SAFETY: LOCK_NAME_OFFSET + 255 < data_offset ≤ mapping
                // length in External mode (`data_offset_for`), and the name
                // is at most 255 bytes (checked in `create`).
                unsafe { access::copy_in(self.seg.as_ptr().add(LOCK_NAME_OFFSET), n.as_bytes()) };
            }
        }
    }

    /// The error for a name that `create` found taken: [`Error::Stale`] if
    /// the object there does not become ready within the bounded wait of
    /// `open` (an empty file, or a header never published: a creator that
    /// died half-way), else [`Error::AlreadyExists`] (a live object, one
    /// published meanwhile, or a file that is no shmsync object: a foreign
    /// magic or a size no creator ever gives it).
    ///
    /// The file is opened as `open` opens it (no symbolic link, no
    /// non-regular file, no blocking open) and mapped no further than its
    /// size.
    fn judge_taken(bare: String) -> Error {
        let stale = match sys::file::open(&bare) {
            Ok(fd) => matches!(Self::await_published(fd, None), Err(Error::NotReady)),
            // Gone meanwhile, or not a file `open` would accept.
            Err(_) => false,
        };
        if stale {
            Error::Stale { name: bare }
        } else {
            Error::AlreadyExists { name: bare }
        }
    }

    /// Opens a named object and validates it against `shape`.
    pub(crate) fn open(name: &str, shape: &Shape) -> Result<Object> {
        let (fd, bare) = Segment::open_named(name)?;
        Self::attach(fd, Some(bare), shape)
    }

    /// Attaches to the object behind `fd` and validates it against `shape`.
    /// The descriptor must pass [`sys::file::check_passed_fd`].
    pub(crate) fn from_fd(fd: OwnedFd, shape: &Shape) -> Result<Object> {
        sys::file::check_passed_fd(fd.as_fd())?;
        Self::attach(fd, None, shape)
    }

    fn attach(fd: OwnedFd, name: Option<String>, shape: &Shape) -> Result<Object> {
        let (mut obj, len) = Self::await_published(fd, name)?;
        obj.layout = obj.validate(len, shape)?;
        if shape.needs_liveness(obj.layout.lock) {
            // As in `create`.
            obj.seg.liveness.attach(obj.seg.fd())?;
        }
        Ok(obj)
    }

    /// Maps the file behind `fd` once its creator has published the header
    /// (waiting at most [`OPEN_TIMEOUT`], else [`Error::NotReady`]), and
    /// returns it with a placeholder layout and the file's length.
    fn await_published(fd: OwnedFd, name: Option<String>) -> Result<(Object, u64)> {
        let start = Instant::now();
        let timed_out = || start.elapsed() >= OPEN_TIMEOUT;
        // A creator first sizes the file (once, to its final size), then
        // fills the header, then publishes READY. An empty file is a
        // creator before `ftruncate`: wait for it, boundedly.
        let len = loop {
            let len = sys::file::len(&fd)?;
            if len > 0 {
                break len;
            }
            if timed_out() {
                return Err(Error::NotReady);
            }
            sys::thread::nap(Duration::from_millis(1));
        };
        if len < HEADER_SIZE as u64 {
            return Err(Error::Truncated {
                needed: HEADER_SIZE as u64,
                len,
            });
        }
        let seg = Arc::new(Segment::attach(fd, name, len)?);
        let obj = Object {
            seg,
            layout: Layout {
                kind: Kind::Value,
                elem: ElemDesc::NONE,
                count: 0,
                stride: 0,
                data_offset: 0,
                lock: LockMode::None,
                lock_ref: None,
                id: 0,
            },
        };
        loop {
            let h = obj.header();
            // Acquire: pairs with the creator's Release store of READY.
            if h.init.load(Acquire) == READY {
                break;
            }
            let magic = h.magic.load(Relaxed);
            if magic != 0 && magic != MAGIC {
                return Err(Error::BadMagic);
            }
            if timed_out() {
                return Err(Error::NotReady);
            }
            sys::thread::nap(Duration::from_millis(1));
        }
        Ok((obj, len))
    }

    /// Reads the header once and checks every field.
    fn validate(&self, file_len: u64, shape: &Shape) -> Result<Layout> {
        let f = HeaderFields::read(self.header());
        let (kind, elem) = f.kind_elem()?;
        if kind != shape.kind || elem != shape.elem {
            return Err(Error::TypeMismatch {
                expected: Desc(shape.kind, shape.elem).to_string(),
                found: Desc(kind, elem).to_string(),
            });
        }
        let stride = f.stride as usize;
        if !shape.strides.contains(&stride) {
            let [a, b] = shape.strides;
            let strides = if a == b {
                format!("{a}")
            } else {
                format!("{a} or {b}")
            };
            return Err(Error::TypeMismatch {
                expected: format!("{} with stride {strides}", Desc(shape.kind, shape.elem)),
                found: format!("stride {stride}"),
            });
        }
        let lock = f.lock_mode()?;
        // The kind is the shape's (checked above).
        if !shape.allows(lock) {
            return Err(Error::Corrupt("lock mode not valid for this kind"));
        }
        let (data_offset, count) = f.extent(lock, elem)?;
        if shape.single && count != 1 {
            return Err(Error::Corrupt("a single value with a count other than 1"));
        }
        let lock_ref = if lock == LockMode::External {
            Some(self.read_lock_ref(self.header(), file_len)?)
        } else {
            None
        };
        let layout = Layout {
            kind,
            elem,
            count,
            stride,
            data_offset,
            lock,
            lock_ref,
            id: f.id,
        };
        check_len(layout.total(), file_len)?;
        Ok(layout)
    }

    fn read_lock_ref(&self, h: &Header, file_len: u64) -> Result<LockRef> {
        let id = h.lock_id.load(Relaxed);
        let n = h.lock_name_len.load(Relaxed) as usize;
        if n == 0 {
            return Ok(LockRef { id, name: None });
        }
        if n > LOCK_NAME_MAX {
            return Err(Error::Corrupt("lock name length"));
        }
        if ((LOCK_NAME_OFFSET + n) as u64) > file_len {
            return Err(Error::Truncated {
                needed: (LOCK_NAME_OFFSET + n) as u64,
                len: file_len,
            });
        }
        let mut buf = vec![0u8; n];
        self.seg.read_at(LOCK_NAME_OFFSET, &mut buf)?;
        let name = String::from_utf8(buf).map_err(|_| Error::Corrupt("lock name not UTF-8"))?;
        sys::file::check_name(&name).map_err(|_| Error::Corrupt("lock name invalid"))?;
        Ok(LockRef {
            id,
            name: Some(name),
        })
    }

    /// The in-page lock slot.
    ///
    /// Only for layouts whose lock mode is `Own`; the slot lies inside every
    /// validated mapping (data_offset ≥ LOCK_NAME_OFFSET).
    pub(crate) fn lock_slot(&self) -> *const LockSlot {
        debug_assert_eq!(self.layout.lock, LockMode::Own);
        // SAFETY: LOCK_OFFSET + 40 ≤ LOCK_NAME_OFFSET ≤ data_offset ≤ len,
        // checked by `validate` (or established by `create`).
        unsafe { self.seg.as_ptr().add(LOCK_OFFSET).cast::<LockSlot>() }
    }

    /// Pointer to element `i` (unchecked: callers check `i < count`).
    ///
    /// # Safety
    /// - `i < self.layout.count`.
    pub(crate) unsafe fn elem_ptr(&self, i: usize) -> *mut u8 {
        // SAFETY: data_offset + count * stride == mapping length
        // (validated), and i < count by the caller's contract.
        unsafe {
            self.seg
                .as_ptr()
                .add(self.layout.data_offset + i * self.layout.stride)
        }
    }
}
