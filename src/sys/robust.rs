#![allow(unsafe_code)] // the robust list: glibc's head and list links in place, libc calls
//! The kernel's robust-futex list, shared with glibc.
//!
//! When a thread dies (or its process is killed, or it execs), the kernel
//! walks the thread's registered robust list and, for every entry whose
//! futex word holds the thread's TID, sets `FUTEX_OWNER_DIED` and wakes a
//! waiter (`Documentation/locking/robust-futex-ABI.rst`). glibc registers
//! one list head per thread for its own robust mutexes; calling
//! `set_robust_list` ourselves would silently disable those, so our lock
//! slots are linked into glibc's list, following glibc's own protocol
//! (nptl `ENQUEUE_MUTEX` / `DEQUEUE_MUTEX`; `docs/ROBUST.md`):
//!
//! - a slot is laid out like glibc's 64-bit `pthread_mutex_t`: the futex
//!   word at 0, `prev` at 24, `next` at 32; the *node* is `&next`, and the
//!   head's `futex_offset` of -32 leads from a node to its word;
//! - acquire: `list_op_pending = node`; take the word; link the node at the
//!   front; `list_op_pending = 0`;
//! - release: `list_op_pending = node`; unlink; release the word;
//!   `list_op_pending = 0`.
//!
//! The kernel walks the list in the dying thread's own context, so compiler
//! fences order the steps; no hardware fence is needed.
//!
//! The list is used only where it is proven to fit ([`mode`]): a 64-bit
//! glibc target, a registered head of length 24 with `futex_offset == -32`,
//! and, once per process, glibc itself linking a throwaway robust mutex
//! where we expect. Everywhere else owners are detected by the liveness
//! liveness bytes of [`super::liveness`].
//!
//! # What a peer cannot do
//!
//! A slot's links and counts live in memory other processes can write, so
//! none of them decides anything on its own. Each thread keeps *records*
//! of the slots it holds, in process-private thread-local memory: the
//! node, the slot's file identity ([`SlotKey`]), the holds taken through
//! it and the entry that followed it when it was linked. The records
//! decide recursion and the last release, and which addresses may be
//! written:
//!
//! - a node alone on the list (the common case) is unlinked without
//!   reading its links at all;
//! - otherwise its successor is the recorded one when that is still ours
//!   or still a robust mutex of this thread (its `prev` pointing back at
//!   us and its futex word naming this thread, read with a fault-safe
//!   read), else the page's link if it passes the same checks and lies in
//!   private memory, else the list is cut there (the entries behind lose
//!   owner-death recovery; nothing is written through a forged link);
//! - its predecessor is the head, our own node recorded in front of it, or
//!   found by walking the list from the head through trusted links only;
//! - a mapping that still has a node linked (a forgotten guard) is not
//!   unmapped.

use core::cell::{Cell, RefCell};
use core::marker::PhantomData;
use core::num::NonZeroUsize;
use core::sync::atomic::{compiler_fence, AtomicU8, AtomicUsize, Ordering, Ordering::Relaxed};

/// Byte distance from a node (`&slot.next`) to its futex word.
pub(crate) const FUTEX_OFFSET: isize = -32;
/// Byte distance from a node to its `prev` link.
const PREV_FROM_NODE: usize = 8;

/// glibc's `struct robust_list_head` (64-bit).
#[repr(C)]
struct Head {
    list: usize,
    futex_offset: isize,
    list_op_pending: usize,
}

/// Which owner-death mechanism this process uses ([`crate::robustness`]).
///
/// Non-exhaustive: more mechanisms may come, so a `match` needs a
/// wildcard arm.
///
/// ```
/// match shmsync::robustness() {
///     shmsync::Robustness::KernelList => println!("the kernel's robust list"),
///     other => println!("{other:?}"),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Robustness {
    /// The kernel's robust list (glibc-compatible), with the liveness bytes
    /// as a backstop for peers on the fallback path.
    KernelList,
    /// Liveness bytes only: waiters probe the owner's byte while waiting.
    Fallback,
}

const UNKNOWN: u8 = 0;
const LIST: u8 = 1;
const FALLBACK: u8 = 2;
static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// The process-wide mode: decided once (environment variable
/// `SHMSYNC_ROBUST=fallback` forces the fallback).
pub(crate) fn mode() -> Robustness {
    // Relaxed: the value is derived from facts every thread computes alike.
    let m = match MODE.load(Relaxed) {
        UNKNOWN => {
            let m = if decide() { LIST } else { FALLBACK };
            MODE.store(m, Relaxed);
            m
        }
        m => m,
    };
    if m == LIST {
        Robustness::KernelList
    } else {
        Robustness::Fallback
    }
}

fn decide() -> bool {
    if std::env::var_os("SHMSYNC_ROBUST").is_some_and(|v| v == "fallback") {
        return false;
    }
    glibc_check()
}

#[cfg(all(target_env = "gnu", target_pointer_width = "64"))]
fn glibc_check() -> bool {
    let Some(head) = query_head() else {
        return false;
    };
    // A throwaway robust mutex: glibc must link it at `&m + 32` with its
    // `prev` (at +24) pointing at the head, exactly as we will.
    // SAFETY: plain pthread calls on a local, zero-initialised mutex and
    // attribute, destroyed before return; the head is only read.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = core::mem::zeroed();
        let mut m: libc::pthread_mutex_t = core::mem::zeroed();
        if libc::pthread_mutexattr_init(&mut attr) != 0 {
            return false;
        }
        const PTHREAD_MUTEX_ROBUST: libc::c_int = 1;
        let ok = libc::pthread_mutexattr_setrobust(&mut attr, PTHREAD_MUTEX_ROBUST) == 0
            && libc::pthread_mutex_init(&mut m, &attr) == 0;
        libc::pthread_mutexattr_destroy(&mut attr);
        if !ok || libc::pthread_mutex_lock(&mut m) != 0 {
            return false;
        }
        let base = (&raw mut m) as usize;
        let h = head as *const Head;
        let linked = core::ptr::read_volatile(&(*h).list) == base + 32
            && core::ptr::read_volatile((base + 24) as *const usize) == head;
        libc::pthread_mutex_unlock(&mut m);
        libc::pthread_mutex_destroy(&mut m);
        linked
    }
}

#[cfg(not(all(target_env = "gnu", target_pointer_width = "64")))]
fn glibc_check() -> bool {
    false
}

/// `get_robust_list(0)`: this thread's registered head, if it has the
/// expected shape.
fn query_head() -> Option<usize> {
    let mut head: usize = 0;
    let mut len: libc::size_t = 0;
    // SAFETY: get_robust_list(2) writes one pointer and one size_t to the
    // two valid out-pointers; pid 0 means the calling thread.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_get_robust_list,
            0 as libc::c_long,
            &raw mut head,
            &raw mut len,
        )
    };
    if rc != 0 || head == 0 || len != core::mem::size_of::<Head>() {
        return None;
    }
    // SAFETY: the kernel returned the thread's registered head, a live
    // glibc TLS structure of `len` (24) bytes.
    let off = unsafe { core::ptr::read_volatile(&(*(head as *const Head)).futex_offset) };
    (off == FUTEX_OFFSET).then_some(head)
}

/// Held records kept inline per thread; more spill into a heap vector.
const MAX_HELD: usize = 16;
/// The most entries a walk of the list visits (the kernel's own limit,
/// `ROBUST_LIST_LIMIT`).
const WALK_LIMIT: usize = 2048;

/// The identity of a lock slot that does not depend on where it is mapped:
/// the file (its entry in this process's liveness table, one per device
/// and inode, see `super::liveness`) and the slot's offset in it. Two
/// mappings of one file in one process hold the same lock word; their
/// slots have the same key and different nodes. Process-private: nothing
/// in it comes from a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SlotKey(u64);

impl SlotKey {
    /// The slot at `off` in the file of liveness table entry `file`.
    pub(crate) fn new(file: usize, off: u32) -> SlotKey {
        SlotKey((file as u64) << 32 | u64::from(off))
    }

    /// A key of one mapping's slot at address `slot` alone (bit 63 set:
    /// never equal to a file's key).
    pub(crate) fn unique(slot: usize) -> SlotKey {
        SlotKey(1 << 63 | slot as u64)
    }
}

/// Per-thread state, all process-private: the robust-list head (0 = not
/// looked up, 1 = none), and the records of the lock slots this thread
/// holds. The records decide everything the page must not: how many holds
/// a thread has, whether a release is the last one, and which nodes may
/// be written through.
///
/// Records `0..count` are kept field by field in the inline arrays (the
/// first [`MAX_HELD`]) and in `MORE` (the rest). Holding one lock at a
/// time, the common case, is record 0 and, in list mode, a node alone on
/// the list (`bottom`): acquire and release then cost a few thread-local
/// loads and stores.
#[repr(C, align(64))]
struct Local {
    /// Records held, inline and spilled.
    count: Cell<usize>,
    head: Cell<usize>,
    /// The held node that this thread linked onto an empty list (0: none).
    /// Nothing is ever linked behind it.
    bottom: Cell<usize>,
    /// The inline records; record 0 shares the first cache line with the
    /// fields above (the single hold touches nothing else).
    recs: [RecCells; MAX_HELD],
}

/// One inline record.
#[repr(C)]
struct RecCells {
    /// `&slot.next` in this process: the node linked into the list (list
    /// mode), and the record's identity.
    node: Cell<usize>,
    /// The entry that followed the node when it was linked (list mode; read
    /// from this thread's own list, so trusted), kept current by this
    /// thread's own unlinks; 0 when linked onto an empty list (or not in
    /// list mode); [`UNLINKED`] when not on the list.
    succ: Cell<usize>,
    key: Cell<SlotKey>,
    /// Holds taken through the node (≥ 1 while recorded).
    holds: Cell<u32>,
}

const NO_KEY: SlotKey = SlotKey(0);

thread_local! {
    static LOCAL: Local = const {
        Local {
            count: Cell::new(0),
            head: Cell::new(0),
            bottom: Cell::new(0),
            recs: [const {
                RecCells {
                    node: Cell::new(0),
                    succ: Cell::new(0),
                    key: Cell::new(NO_KEY),
                    holds: Cell::new(0),
                }
            }; MAX_HELD],
        }
    };
    /// Records beyond `MAX_HELD` (a separate thread local: it has a
    /// destructor, which `LOCAL`'s accesses must not pay for). Its first
    /// `count - MAX_HELD` entries count; a forked child's may be longer.
    static MORE: RefCell<Vec<Rec>> = const { RefCell::new(Vec::new()) };
}

thread_local! {
    /// For each of our nodes linked in front of a glibc robust mutex: the
    /// entries that followed it then, up to the next of our nodes or the
    /// head. Nothing is ever linked behind an entry, so its successor is
    /// always the first of these still linked. (Stale entries after a fork
    /// are never consulted: only nodes with a record are looked up.)
    static CHAINS: RefCell<Vec<(usize, Vec<usize>)>> = const { RefCell::new(Vec::new()) };
}

/// The longest chain recorded.
const CHAIN_MAX: usize = 16;

/// `succ` of a record whose node is not on the list: a hold through a
/// second mapping of a slot whose other mapping's node is linked (the two
/// share the slot's link fields, so only one may be linked at a time).
pub(crate) const UNLINKED: usize = usize::MAX;

/// One record, as a value.
#[derive(Clone, Copy)]
struct Rec {
    node: usize,
    key: SlotKey,
    holds: u32,
    succ: usize,
}

/// Forgets the per-thread state (the atfork child handler: glibc resets the
/// child's list, and the parent's holds are not the child's). Plain stores
/// to const-initialised thread locals: async-signal-safe.
pub(crate) fn forget_in_child() {
    LOCAL.with(|l| {
        l.head.set(0);
        l.bottom.set(0);
        l.count.set(0);
    });
}

/// The calling thread's robust-list head (glibc's `robust_list_head`, in
/// the thread's own TLS), in list mode.
///
/// Made only by [`head`], on the thread whose head it is, and neither
/// `Send` nor `Sync`: a value is proof that it names the head of the
/// thread holding it, which lives as long as that thread runs (a forked
/// child's thread has the same head at the same address). The functions
/// that link through it need no other promise about the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RobustHead {
    addr: NonZeroUsize,
    /// Never leaves its thread.
    _this_thread: PhantomData<*const ()>,
}

// The proof must not travel to another thread.
static_assertions::assert_not_impl_any!(RobustHead: Send, Sync);

impl RobustHead {
    /// The head at `addr`, which [`head`] has just read from this thread's
    /// own state (the only caller).
    #[inline(always)]
    fn this_thread(addr: NonZeroUsize) -> RobustHead {
        RobustHead {
            addr,
            _this_thread: PhantomData,
        }
    }

    /// The head's address: the value that ends the list.
    #[inline(always)]
    fn addr(self) -> usize {
        self.addr.get()
    }

    #[inline(always)]
    fn ptr(self) -> *mut Head {
        self.addr.get() as *mut Head
    }

    /// The head's `list`: the first entry (the head itself when empty).
    #[inline(always)]
    fn list(self) -> usize {
        // SAFETY: the type's invariant: this thread's live head, touched
        // only by this thread and by the kernel in this thread's context.
        unsafe { core::ptr::read_volatile(&raw const (*self.ptr()).list) }
    }

    /// Sets the head's `list` to `entry`.
    #[inline(always)]
    fn set_list(self, entry: usize) {
        // SAFETY: as in `list`.
        unsafe { core::ptr::write_volatile(&raw mut (*self.ptr()).list, entry) };
    }
}

/// This thread's head, or `None` where the list is not used.
#[inline]
pub(crate) fn head() -> Option<RobustHead> {
    LOCAL.with(|l| match l.head.get() {
        0 => head_slow(l),
        1 => None,
        h => NonZeroUsize::new(h).map(RobustHead::this_thread),
    })
}

#[cold]
fn head_slow(l: &Local) -> Option<RobustHead> {
    let h = if mode() == Robustness::KernelList {
        query_head().unwrap_or(1)
    } else {
        1
    };
    l.head.set(h);
    NonZeroUsize::new(h)
        .filter(|h| h.get() != 1)
        .map(RobustHead::this_thread)
}

/// `list_op_pending = node` (0 to clear).
///
/// # Safety
/// - `node` is 0 or the node (`&slot.next`) of a lock slot in a mapping
///   that stays mapped until it is cleared again: if the thread dies
///   meanwhile, the kernel writes to the word at `node - 32` if it names
///   the thread.
#[inline]
pub(crate) unsafe fn set_pending(head: RobustHead, node: usize) {
    compiler_fence(Ordering::SeqCst);
    // SAFETY: the head is this thread's (its type's invariant), touched
    // only by this thread and by the kernel in this thread's context.
    unsafe { core::ptr::write_volatile(&raw mut (*head.ptr()).list_op_pending, node) };
    compiler_fence(Ordering::SeqCst);
}

// ---------------------------------------------------------------------------
// Held records
// ---------------------------------------------------------------------------

impl Local {
    /// Record `i < count`.
    fn rec(&self, i: usize) -> Rec {
        if i < MAX_HELD {
            let c = &self.recs[i];
            return Rec {
                node: c.node.get(),
                key: c.key.get(),
                holds: c.holds.get(),
                succ: c.succ.get(),
            };
        }
        // (During thread exit, after `MORE`'s destructor: nothing.)
        MORE.try_with(|m| m.try_borrow().ok()?.get(i - MAX_HELD).copied())
            .ok()
            .flatten()
            .unwrap_or(Rec {
                node: 0,
                key: NO_KEY,
                holds: 0,
                succ: 0,
            })
    }

    fn set_rec(&self, i: usize, r: Rec) {
        if i < MAX_HELD {
            let c = &self.recs[i];
            c.node.set(r.node);
            c.key.set(r.key);
            c.holds.set(r.holds);
            c.succ.set(r.succ);
        } else {
            let _ = MORE.try_with(|m| {
                if let Some(e) = m
                    .try_borrow_mut()
                    .ok()
                    .as_deref_mut()
                    .and_then(|v| v.get_mut(i - MAX_HELD))
                {
                    *e = r;
                }
            });
        }
    }

    /// Appends a record; `false` if it could not be kept (only during
    /// thread exit, beyond the inline records).
    fn push(&self, r: Rec) -> bool {
        let n = self.count.get();
        if n >= MAX_HELD {
            let pushed = MORE
                .try_with(|m| {
                    m.try_borrow_mut().is_ok_and(|mut m| {
                        m.truncate(n - MAX_HELD);
                        m.push(r);
                        true
                    })
                })
                .unwrap_or(false);
            if !pushed {
                return false;
            }
        }
        self.count.set(n + 1);
        if n < MAX_HELD {
            self.set_rec(n, r);
        }
        true
    }

    /// Removes record `i`, keeping the order of the others.
    fn remove(&self, i: usize) {
        let n = self.count.get();
        for j in i..n - 1 {
            self.set_rec(j, self.rec(j + 1));
        }
        self.count.set(n - 1);
        if n > MAX_HELD {
            let _ = MORE.try_with(|m| {
                if let Ok(mut m) = m.try_borrow_mut() {
                    m.truncate(n - 1 - MAX_HELD);
                }
            });
        }
    }

    /// The only record: one hold through `node`, linked alone.
    #[inline(always)]
    fn set_first(&self, node: usize, key: &SlotKey) {
        let r = &self.recs[0];
        r.node.set(node);
        r.key.set(*key);
        r.holds.set(1);
        r.succ.set(0);
        self.count.set(1);
    }

    fn find(&self, node: usize) -> Option<usize> {
        (0..self.count.get()).find(|&i| self.rec(i).node == node)
    }

    /// Whether `node` is one of our nodes on the list (a held record that
    /// is linked).
    fn is_held_node(&self, node: usize) -> bool {
        self.find(node)
            .is_some_and(|i| self.rec(i).succ != UNLINKED)
    }
}

/// This thread's holds of the lock `key` over all its mappings (0: not
/// held). Decides recursion and the last release, in place of anything
/// the page says.
#[inline]
pub(crate) fn holds_of(key: &SlotKey) -> u32 {
    LOCAL.with(|l| {
        if l.count.get() == 0 {
            0
        } else {
            holds_of_slow(l, key)
        }
    })
}

#[cold]
#[inline(never)]
fn holds_of_slow(l: &Local, key: &SlotKey) -> u32 {
    (0..l.count.get())
        .map(|i| l.rec(i))
        .filter(|r| r.key == *key)
        .fold(0u32, |t, r| t.saturating_add(r.holds))
}

/// Whether this thread has a held node in `[start, start + len)`: a
/// mapping about to go away must then be kept (a guard was forgotten).
pub(crate) fn holds_node_in(start: usize, len: usize) -> bool {
    LOCAL
        .try_with(|l| (0..l.count.get()).any(|i| l.rec(i).node.wrapping_sub(start) < len))
        .unwrap_or(false)
}

/// Whether this thread holds no lock at all (the common case of an
/// acquire: then nothing needs looking up).
#[inline]
pub(crate) fn holds_nothing() -> bool {
    LOCAL.with(|l| l.count.get() == 0)
}

/// Records the hold of a thread that held nothing: record 0, and the node
/// linked alone (`head`, list mode).
///
/// # Safety
/// As for [`note_acquire`]; this thread has no record.
#[inline(always)]
pub(crate) unsafe fn note_first(
    head: Option<RobustHead>,
    key: &SlotKey,
    next: &AtomicUsize,
    prev: &AtomicUsize,
) {
    let node = next.as_ptr() as usize;
    LOCAL.with(|l| l.set_first(node, key));
    if let Some(h) = head {
        // SAFETY: forwarded; the node is new, so not linked yet.
        unsafe { enqueue(h, next, prev) };
    }
}

/// Records one more hold through `node` (of slot `key`) and, when it is
/// the node's first, links the node into the list (`head`, list mode).
///
/// # Safety
/// - `next`/`prev` are the links of a slot this thread has just acquired
///   (or holds), in a mapping that stays mapped while the node is
///   recorded: the guard that will release the hold borrows it.
#[inline]
pub(crate) unsafe fn note_acquire(
    head: Option<RobustHead>,
    key: &SlotKey,
    next: &AtomicUsize,
    prev: &AtomicUsize,
) {
    let node = next.as_ptr() as usize;
    let new = LOCAL.with(|l| {
        if l.count.get() == 0 {
            l.set_first(node, key);
            true
        } else {
            note_more(l, node, key)
        }
    });
    if let (true, Some(h)) = (new, head) {
        // SAFETY: forwarded; the node is new, so not linked yet.
        unsafe { enqueue(h, next, prev) };
    }
}

/// [`note_acquire`] with other records present. Returns whether the node
/// is new (and must be linked).
#[cold]
#[inline(never)]
fn note_more(l: &Local, node: usize, key: &SlotKey) -> bool {
    if let Some(i) = l.find(node) {
        let mut r = l.rec(i);
        r.holds = r.holds.saturating_add(1);
        l.set_rec(i, r);
        return false;
    }
    // A hold through another mapping of a slot already held: that
    // mapping's node stays the one on the list.
    let other = (0..l.count.get()).any(|i| l.rec(i).key == *key);
    // Not kept (thread exit): the node is not linked either; the hold's
    // guard then finds no record and releases nothing, and the thread's
    // death is detected through its liveness byte.
    l.push(Rec {
        node,
        key: *key,
        holds: 1,
        succ: if other { UNLINKED } else { 0 },
    }) && !other
}

/// Sets the successor of our node `node`, if we hold it, and the chain of
/// entries behind it (see [`CHAINS`]).
fn set_succ(l: &Local, node: usize, chain: &[usize]) {
    let Some(i) = l.find(node) else {
        return;
    };
    let mut r = l.rec(i);
    r.succ = chain.first().copied().unwrap_or(0);
    l.set_rec(i, r);
    let _ = CHAINS.try_with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            c.retain(|(n, _)| *n != node);
            if chain.len() > 1 {
                c.push((node, chain.to_vec()));
            }
        }
    });
}

/// The chain recorded behind our node `node` whose first entry is `first`.
fn chain_of(node: usize, first: usize) -> Vec<usize> {
    CHAINS
        .try_with(|c| {
            c.try_borrow()
                .ok()?
                .iter()
                .find(|(n, ch)| *n == node && ch.first() == Some(&first))
                .map(|(_, ch)| ch.clone())
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| vec![first])
}

/// Forgets the chain of a node that is no longer ours.
fn drop_chain(node: usize) {
    let _ = CHAINS.try_with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            c.retain(|(n, _)| *n != node);
        }
    });
}

/// The entries behind `first` as they are now: glibc's robust mutexes, up
/// to and including the next of our nodes or the head (at most
/// [`CHAIN_MAX`]; a shorter chain ends without either). Read with
/// fault-safe reads; a candidate list, each entry verified when used.
fn snapshot(l: &Local, head: usize, first: usize) -> Vec<usize> {
    let mut chain = vec![first];
    let mut cur = first;
    while chain.len() < CHAIN_MAX && cur != head && !l.is_held_node(cur) {
        match safe_read_usize(cur) {
            Some(nx) if nx & !1 != 0 => {
                cur = nx & !1;
                chain.push(cur);
            }
            _ => break,
        }
    }
    chain
}

/// The entry now behind our node `node` (`recorded`: its record's
/// successor), from what this thread recorded when it linked the node:
/// the head, our own node, or the first entry of the recorded chain that
/// is still linked right behind it (a robust mutex of this thread whose
/// `prev` points at `node`; entries glibc has unlinked since are
/// skipped). `None` if the record cannot tell. `unlinking` is a node of
/// ours being unlinked: its record is already gone, but it is still ours.
fn successor_of(
    l: &Local,
    head: usize,
    node: usize,
    recorded: usize,
    me: u32,
    unlinking: usize,
) -> Option<usize> {
    if recorded == 0 {
        return None;
    }
    let ours = |e: usize| e == head || e == unlinking || l.is_held_node(e);
    if ours(recorded) {
        return Some(recorded);
    }
    chain_of(node, recorded)
        .into_iter()
        .find(|&e| ours(e) || foreign_links_to(e, node, me))
}

/// What [`note_release`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Released {
    /// This thread holds nothing through the node (a copy of a parent's
    /// guard dropped in a forked child): nothing to release.
    NotHeld,
    /// The node is still held.
    More,
    /// That was the node's last hold: its record is gone, and the node must
    /// be unlinked ([`unlink`], list mode) with `succ`, its recorded
    /// successor (0: none), unless it was [`UNLINKED`].
    Last { succ: usize },
}

/// The common case of [`note_release`]: if `node`'s single hold is this
/// thread's only record, drops it and returns the node's recorded
/// successor (for [`unlink`]); otherwise changes nothing.
#[inline]
pub(crate) fn release_only(node: usize) -> Option<usize> {
    LOCAL.with(|l| {
        let r = &l.recs[0];
        (l.count.get() == 1 && r.node.get() == node && r.holds.get() == 1).then(|| {
            l.count.set(0);
            r.succ.get()
        })
    })
}

/// After the last hold through a linked node of slot `key` went while
/// holds through another mapping of it remain: one of those nodes becomes
/// the linked one. Returns it (to be linked with [`relink`]).
pub(crate) fn take_over_link(key: &SlotKey) -> Option<usize> {
    LOCAL.with(|l| {
        let i = (0..l.count.get()).find(|&i| l.rec(i).key == *key)?;
        let mut r = l.rec(i);
        r.succ = 0;
        l.set_rec(i, r);
        Some(r.node)
    })
}

/// Links `node`, chosen by [`take_over_link`], at the front.
///
/// # Safety
/// - `node` is a node of ours that [`take_over_link`] returned: its
///   record's guard keeps its mapping alive.
pub(crate) unsafe fn relink(head: RobustHead, node: usize) {
    // SAFETY: `node` is `&slot.next` of a slot in a live mapping (per the
    // caller); `prev` is 8 bytes before it; both are `AtomicUsize`s.
    unsafe {
        let next = &*(node as *const AtomicUsize);
        let prev = &*((node - PREV_FROM_NODE) as *const AtomicUsize);
        enqueue(head, next, prev);
    }
}

/// Drops one hold through `node`.
pub(crate) fn note_release(node: usize) -> Released {
    LOCAL.with(|l| {
        let Some(i) = l.find(node) else {
            return Released::NotHeld;
        };
        let mut r = l.rec(i);
        r.holds = r.holds.saturating_sub(1);
        if r.holds == 0 {
            l.remove(i);
            Released::Last { succ: r.succ }
        } else {
            l.set_rec(i, r);
            Released::More
        }
    })
}

// ---------------------------------------------------------------------------
// Linking and unlinking
// ---------------------------------------------------------------------------

/// Links `node` (the address of a held slot's `next`) at the front.
///
/// # Safety
/// - `node` is `&slot.next` of a slot this thread just acquired, in a
///   mapping that stays mapped until [`unlink`], and not linked yet.
#[inline]
unsafe fn enqueue(head: RobustHead, next: &AtomicUsize, prev: &AtomicUsize) {
    let node = next.as_ptr() as usize;
    let first = head.list();
    let first_node = first & !1;
    if first_node == head.addr() {
        LOCAL.with(|l| l.bottom.set(node));
    } else {
        // SAFETY: forwarded.
        unsafe { link_in_front(head.addr(), node, first_node) };
    }
    // Relaxed: the links are read by this thread and by the kernel in this
    // thread's context only; the compiler fence orders them before the
    // publication below.
    next.store(first, Relaxed);
    prev.store(head.addr(), Relaxed);
    compiler_fence(Ordering::SeqCst);
    head.set_list(node);
}

/// The part of [`enqueue`] for a list that is not empty: the old first
/// entry (ours or glibc's) gets `node` as its `prev`, and the node's record
/// what follows it.
///
/// # Safety
/// As for [`enqueue`]; `head` is this thread's head's address and
/// `first_node` its first entry.
#[cold]
#[inline(never)]
unsafe fn link_in_front(head: usize, node: usize, first_node: usize) {
    // Never write in front of the head itself (glibc's write-only
    // `robust_prev` there is other data on other libcs).
    // SAFETY: `first_node` comes from this thread's own list, which holds
    // only the head, nodes this thread holds and glibc's robust mutexes
    // (every link written into it is verified first), and its `prev` link
    // is 8 bytes before it.
    unsafe { core::ptr::write_volatile((first_node - PREV_FROM_NODE) as *mut usize, node) };
    // What now follows the node: our own node, or glibc's mutexes up to
    // the next of ours (the candidates for its successor when it is
    // unlinked: entries are only ever linked in front).
    LOCAL.with(|l| {
        let chain = if l.is_held_node(first_node) {
            vec![first_node]
        } else {
            snapshot(l, head, first_node)
        };
        set_succ(l, node, &chain);
    });
}

/// Unlinks `node`, whose last hold [`note_release`] just dropped.
///
/// Nothing read from the slot is written anywhere unless verified: the
/// successor must be the head, the entry recorded when the node was
/// linked, one of this thread's held nodes linking back to it, or a
/// robust mutex of this thread in private memory linking back to it; the
/// predecessor likewise, or is found by walking the list from the head.
/// A successor that cannot be verified cuts the list there: the entries
/// behind it lose owner-death recovery, but nothing is written through a
/// link a peer could have forged.
///
/// # Safety
/// - the slot was linked by [`note_acquire`] on this thread, and is still
///   mapped; `recorded` is what [`note_release`] returned for it.
#[inline]
pub(crate) unsafe fn unlink(head: RobustHead, next: &AtomicUsize, recorded: usize) {
    if recorded == UNLINKED {
        // Never linked (a hold through a second mapping).
        return;
    }
    let node = next.as_ptr() as usize;
    let first = head.list();
    if first & !1 == node && LOCAL.with(|l| l.bottom.get()) == node {
        // Alone on the list, where `enqueue` put it: nothing is ever linked
        // behind the bottom node, so its successor is the head, whatever
        // its `next` in the page says now.
        head.set_list(head.addr());
        LOCAL.with(|l| l.bottom.set(0));
        return;
    }
    // SAFETY: forwarded.
    unsafe { unlink_general(head, node, first, recorded, next) }
}

/// [`unlink`] of a node that is not alone on the list.
///
/// Trust comes from this thread's own state: the head's `list` (only
/// verified values are ever written into it), the successor recorded for
/// each of our nodes when it was linked (kept current by our own unlinks),
/// and, for glibc's robust mutexes, a back link and an owner TID naming
/// this thread, read without risking a fault. The node's own `next` in the
/// page is used only when it passes the same checks and, for an entry
/// reached through it alone, only if that entry lies in private memory.
///
/// # Safety
/// As for [`unlink`]; `first` is the head's link as read there.
#[cold]
#[inline(never)]
unsafe fn unlink_general(
    rh: RobustHead,
    node: usize,
    first: usize,
    recorded: usize,
    next: &AtomicUsize,
) {
    let head = rh.addr();
    let me = crate::sys::thread::tid().get();
    let bottom = LOCAL.with(|l| l.bottom.get());
    // Relaxed: read by this thread only; peers may have written it.
    let nx = next.load(Relaxed) & !1;

    // The successor.
    let chain_succ = if node == bottom {
        // Nothing is ever linked behind the bottom node.
        Some(head)
    } else {
        LOCAL.with(|l| successor_of(l, head, node, recorded, me, node))
    };
    let succ = match chain_succ {
        Some(s) => s,
        None if nx == head => head,
        None if LOCAL.with(|l| l.is_held_node(nx)) && held_links_to(nx, node) => nx,
        None if foreign_links_to(nx, node, me) && in_private_mapping(nx) => nx,
        // Unverifiable: cut the list here. The entries behind lose
        // owner-death recovery; nothing is written through a forged link.
        None => head,
    };
    // What follows `succ` (for a predecessor of ours to record).
    let rest = if succ == head || LOCAL.with(|l| l.is_held_node(succ)) {
        vec![succ]
    } else {
        let ch = chain_of(node, recorded);
        match ch.iter().position(|&e| e == succ) {
            Some(i) => ch[i..].to_vec(),
            None => LOCAL.with(|l| snapshot(l, head, succ)),
        }
    };
    // The predecessor: the head, our own node recorded in front of us, or
    // the entry found by walking the list through trusted links.
    let pred = if first & !1 == node {
        Some(head)
    } else {
        LOCAL
            .with(|l| held_pred(l, head, node, me))
            .or_else(|| walk_to_pred(rh, node, me))
    };

    if let Some(p) = pred {
        // prev->next = succ. The head's `list` is at offset 0, so the head
        // is a node like any other here.
        // SAFETY: `p` is this thread's head, a node this thread holds (its
        // mapping alive while held), or a glibc robust mutex of this
        // thread reached through trusted links (`walk_to_pred`).
        unsafe { core::ptr::write_volatile(p as *mut usize, succ) };
        LOCAL.with(|l| set_succ(l, p, &rest));
        if succ != head {
            // succ->prev = pred.
            // SAFETY: `succ` is one of our held nodes or a verified glibc
            // robust mutex of this thread (see above); its `prev` link is 8
            // bytes before it.
            unsafe { core::ptr::write_volatile((succ - PREV_FROM_NODE) as *mut usize, p) };
        }
    }
    drop_chain(node);
    // Every record of ours that lists the node behind it now has what
    // followed the node instead (the node may be linked again later, in
    // front, and must not be taken for a successor then).
    LOCAL.with(|l| {
        for i in 0..l.count.get() {
            let r = l.rec(i);
            if r.succ == 0 || r.succ == UNLINKED || r.node == node {
                continue;
            }
            let ch = chain_of(r.node, r.succ);
            if let Some(at) = ch.iter().position(|&e| e == node) {
                let mut new = ch[..at].to_vec();
                new.extend_from_slice(&rest);
                set_succ(l, r.node, &new);
            }
        }
    });

    LOCAL.with(|l| {
        if bottom == node {
            // The predecessor is now last.
            let p = pred.unwrap_or(head);
            l.bottom
                .set(if p != head && l.is_held_node(p) { p } else { 0 });
        } else if chain_succ.is_none() && succ == head && bottom != 0 {
            // The list may have been cut in front of the bottom node, which
            // is then no longer reachable: forget it as the bottom (its own
            // unlink then searches for it).
            l.bottom.set(0);
        }
    });
}

/// Our held node whose successor is `node`.
fn held_pred(l: &Local, head: usize, node: usize, me: u32) -> Option<usize> {
    (0..l.count.get())
        .map(|i| l.rec(i))
        .find(|r| {
            r.node != node
                && r.succ != UNLINKED
                && successor_of(l, head, r.node, r.succ, me, node) == Some(node)
        })
        .map(|r| r.node)
}

/// Finds the entry in front of `node` by walking this thread's list from
/// the head through trusted links only: the head's `list`, the recorded
/// successors of our own nodes, and the `next` of a glibc robust mutex
/// when the entry it names is ours or links back to it and names this
/// thread as its owner. Foreign entries are read without risking a fault.
/// `None` if `node` is not reachable that way (the list was cut in front
/// of it): nothing is then written.
fn walk_to_pred(rh: RobustHead, node: usize, me: u32) -> Option<usize> {
    let head = rh.addr();
    let mut pred = head;
    let mut cur = rh.list() & !1;
    for _ in 0..WALK_LIMIT {
        if cur == head || cur == 0 {
            return None;
        }
        if cur == node {
            return Some(pred);
        }
        let ours = LOCAL.with(|l| {
            let r = l.rec(l.find(cur)?);
            // One of ours: its successor (none recorded: it was linked as
            // the bottom).
            Some(if r.succ == 0 {
                Some(head)
            } else {
                successor_of(l, head, cur, r.succ, me, node)
            })
        });
        let nx = match ours {
            Some(s) => s?,
            None => {
                let nx = safe_read_usize(cur)? & !1;
                let ok = nx == head
                    || nx == node
                    || LOCAL.with(|l| l.is_held_node(nx))
                    || foreign_links_to(nx, cur, me);
                if !ok {
                    return None;
                }
                nx
            }
        };
        pred = cur;
        cur = nx;
    }
    None
}

/// Whether our held node `cand` has `node` as its `prev`.
fn held_links_to(cand: usize, node: usize) -> bool {
    if cand == node || cand % 8 != 0 {
        return false;
    }
    // SAFETY: `cand` is `&slot.next` of a slot this thread holds, in a
    // mapping kept alive while it is held; its `prev`, 8 bytes before, is
    // an `AtomicUsize` (peers may write it: read atomically).
    let back = unsafe { (*((cand - PREV_FROM_NODE) as *const AtomicUsize)).load(Relaxed) };
    back & !1 == node
}

/// Whether `cand`, not one of our nodes, is a robust mutex of this thread
/// whose `prev` is `node`: readable, its `prev` pointing at `node`, and its
/// futex word naming this thread (read without risking a fault).
fn foreign_links_to(cand: usize, node: usize, me: u32) -> bool {
    if cand == 0 || cand % 8 != 0 || cand == node {
        return false;
    }
    safe_read_usize(cand - PREV_FROM_NODE).is_some_and(|v| v & !1 == node) && owner_is(cand, me)
}

/// Whether the futex word of entry `cand` (an 8-aligned node) names
/// thread `me`.
fn owner_is(cand: usize, me: u32) -> bool {
    if cand % 8 != 0 {
        return false;
    }
    // The word is the low half of the 8 bytes at `cand + FUTEX_OFFSET`
    // (little endian, as every target of the list is).
    safe_read_usize(cand.wrapping_add_signed(FUTEX_OFFSET))
        .is_some_and(|v| v as u32 & crate::raw::TID_MASK == me)
}

/// Whether `addr` lies in a private mapping of this process (not shared
/// memory that a peer could have filled with a forged node), from
/// `/proc/self/maps`. Slow: used only for entries that are neither ours
/// nor recorded when they were linked.
fn in_private_mapping(addr: usize) -> bool {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return false;
    };
    for line in maps.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            continue;
        };
        if a <= addr && addr < b {
            return perms.as_bytes().get(3) == Some(&b'p')
                && perms.as_bytes().get(1) == Some(&b'w');
        }
    }
    false
}

/// Reads a word of this process's memory; `None` if unmapped
/// (`process_vm_readv` on ourselves reports `EFAULT` instead of faulting).
fn safe_read_usize(addr: usize) -> Option<usize> {
    let mut out: usize = 0;
    let local = libc::iovec {
        iov_base: (&raw mut out).cast(),
        iov_len: core::mem::size_of::<usize>(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: core::mem::size_of::<usize>(),
    };
    // SAFETY: `local` describes our own 8-byte buffer; `remote` is only
    // read by the kernel, which checks it.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    (n == core::mem::size_of::<usize>() as isize).then_some(out)
}
