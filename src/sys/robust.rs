//! The kernel's robust-futex list, shared with glibc.
//!
//! When a thread dies (or its process is killed, or it execs), the kernel
//! walks the thread's registered robust list and, for every entry whose
//! futex word holds the thread's TID, sets `FUTEX_OWNER_DIED` and wakes a
//! waiter (`Documentation/locking/robust-futex-ABI.rst`). glibc registers
//! one list head per thread for its own robust mutexes; calling
//! `set_robust_list` ourselves would silently disable those, so our lock
//! slots are linked into glibc's list, following glibc's own protocol
//! (nptl `ENQUEUE_MUTEX` / `DEQUEUE_MUTEX`, `shared/ROBUST.md`):
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
//! token of [`super::liveness`].
//!
//! Links read back from a slot (memory other processes can write) are
//! never followed blindly: a link is used only if it is the list head, a
//! slot this thread holds (a thread-local registry), or a node whose own
//! link points back at ours, checked with a fault-safe read.

use core::cell::Cell;
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

/// Which owner-death mechanism this process uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Robustness {
    /// The kernel's robust list (glibc-compatible), with the liveness token
    /// as a backstop for peers on the fallback path.
    KernelList,
    /// Liveness tokens only: waiters probe the owner's token while waiting.
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

const MAX_HELD: usize = 16;

/// Per-thread state: the head (0 = not looked up, 1 = none) and the nodes
/// of the slots this thread holds (links read back from a page may point
/// at those; see [`trusted_node`]).
///
/// Holding one lock at a time, the common case, costs one store on each
/// side: the node then sits alone on the list (`bottom`). Nodes linked in
/// front of other entries (nested holds, or a glibc robust mutex held too)
/// are kept in the `held` stack.
struct Local {
    head: Cell<usize>,
    /// The held node that this thread linked onto an empty list (0: none).
    bottom: Cell<usize>,
    /// The other held nodes, in the order they were linked.
    held: [Cell<usize>; MAX_HELD],
    /// Entries of `held`. A node that finds the stack full is not
    /// recorded: its links are then checked like a foreign node's.
    n_held: Cell<usize>,
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            head: Cell::new(0),
            bottom: Cell::new(0),
            held: [const { Cell::new(0) }; MAX_HELD],
            n_held: Cell::new(0),
        }
    };
}

/// Forgets the per-thread state (the atfork child handler: glibc resets the
/// child's list, and the parent's holds are not the child's).
pub(crate) fn forget_in_child() {
    LOCAL.with(|l| {
        l.head.set(0);
        l.bottom.set(0);
        l.n_held.set(0);
    });
}

/// This thread's head, or `None` where the list is not used.
#[inline]
pub(crate) fn head() -> Option<NonZeroUsize> {
    LOCAL.with(|l| match l.head.get() {
        0 => head_slow(l),
        1 => None,
        h => NonZeroUsize::new(h),
    })
}

#[cold]
fn head_slow(l: &Local) -> Option<NonZeroUsize> {
    let h = if mode() == Robustness::KernelList {
        query_head().unwrap_or(1)
    } else {
        1
    };
    l.head.set(h);
    NonZeroUsize::new(h).filter(|h| h.get() != 1)
}

/// `list_op_pending = node` (0 to clear).
///
/// # Safety
/// - `head` comes from [`head`] on this thread.
#[inline]
pub(crate) unsafe fn set_pending(head: usize, node: usize) {
    compiler_fence(Ordering::SeqCst);
    // SAFETY: `head` is this thread's live robust head; only this thread
    // (and the kernel, in this thread's context) touches it.
    unsafe { core::ptr::write_volatile(&raw mut (*(head as *mut Head)).list_op_pending, node) };
    compiler_fence(Ordering::SeqCst);
}

/// Links `node` (the address of a held slot's `next`) at the front.
///
/// # Safety
/// - `head` comes from [`head`] on this thread;
/// - `node` is `&slot.next` of a slot this thread just acquired, in a
///   mapping that stays mapped until [`dequeue`].
#[inline]
pub(crate) unsafe fn enqueue(head: usize, next: &AtomicUsize, prev: &AtomicUsize) {
    let node = next.as_ptr() as usize;
    let h = head as *mut Head;
    // SAFETY: this thread's head (see `set_pending`).
    let first = unsafe { core::ptr::read_volatile(&raw const (*h).list) };
    let first_node = first & !1;
    if first_node == head {
        LOCAL.with(|l| l.bottom.set(node));
    } else {
        // The old first entry (ours or glibc's) gets us as its prev. Never
        // write in front of the head itself (glibc's write-only
        // `robust_prev` there is other data on other libcs).
        // SAFETY: `first_node` comes from this thread's own list (trusted
        // memory: glibc's or one of the slots this thread holds), and its
        // `prev` link is 8 bytes before it.
        unsafe { core::ptr::write_volatile((first_node - PREV_FROM_NODE) as *mut usize, node) };
        remember_nested(node);
    }
    // Relaxed: the links are read by this thread and by the kernel in this
    // thread's context only; the compiler fence orders them before the
    // publication below.
    next.store(first, Relaxed);
    prev.store(head, Relaxed);
    compiler_fence(Ordering::SeqCst);
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(&raw mut (*h).list, node) };
}

/// The registry update of [`enqueue`] for a node linked in front of
/// another entry.
#[cold]
#[inline(never)]
fn remember_nested(node: usize) {
    LOCAL.with(|l| {
        let n = l.n_held.get();
        if n < MAX_HELD {
            l.held[n].set(node);
            l.n_held.set(n + 1);
        }
    });
}

/// Unlinks `node` from the list.
///
/// # Safety
/// - `head` comes from [`head`] on this thread;
/// - the slot was linked by [`enqueue`] on this thread and is still held.
#[inline]
pub(crate) unsafe fn dequeue(head: usize, next: &AtomicUsize, prev: &AtomicUsize) {
    let node = next.as_ptr() as usize;
    let h = head as *mut Head;
    // SAFETY: this thread's head.
    let first = unsafe { core::ptr::read_volatile(&raw const (*h).list) };
    // Relaxed: see `enqueue`. The link lives in peer-writable memory: it is
    // used as is only when it is the head.
    let nx = next.load(Relaxed);
    if first & !1 == node && nx & !1 == head && LOCAL.with(|l| l.bottom.get()) == node {
        // The node is alone on the list, where `enqueue` put it.
        // SAFETY: this thread's head; `nx` is the head itself.
        unsafe { core::ptr::write_volatile(&raw mut (*h).list, nx) };
        LOCAL.with(|l| l.bottom.set(0));
        // (The node's own links are left as they are, as glibc does:
        // nothing reads an unlinked node's links.)
        return;
    }
    // SAFETY: forwarded.
    unsafe { dequeue_general(head, node, first, nx, prev) }
}

/// [`dequeue`] of a node that is not alone on the list.
///
/// # Safety
/// As for [`dequeue`]; `first` and `nx` are the head's and the node's
/// `next` links as read there.
#[cold]
#[inline(never)]
unsafe fn dequeue_general(head: usize, node: usize, first: usize, nx: usize, prev: &AtomicUsize) {
    // A first node's predecessor is the head, whatever its `prev` says.
    // Otherwise `prev` was written by whoever linked the entry in front of
    // it, and is checked before use.
    let is_first = first & !1 == node;
    let pv = if is_first { head } else { prev.load(Relaxed) };
    let nx_node = nx & !1;
    let pv_node = pv & !1;
    // prev->next = next. The head's `list` is at offset 0, so the head is a
    // node like any other here; it is our predecessor only if we are first.
    let pv_ok = if is_first {
        true
    } else {
        pv_node != head && trusted_node(pv_node, node, Link::Prev)
    };
    if pv_ok {
        // SAFETY: `pv_node` is the head or a node whose `next` points at
        // ours (checked by `trusted_node`): writing its `next` is what glibc's
        // DEQUEUE_MUTEX does.
        unsafe { core::ptr::write_volatile(pv_node as *mut usize, nx) };
    }
    // next->prev = prev, unless next is the head.
    if nx_node != head && trusted_node(nx_node, node, Link::Next) {
        // SAFETY: `nx_node` is a node whose `prev` (8 bytes before it)
        // points at ours (checked by `trusted_node`).
        unsafe { core::ptr::write_volatile((nx_node - PREV_FROM_NODE) as *mut usize, pv) };
    }
    LOCAL.with(|l| {
        if l.bottom.get() == node {
            l.bottom.set(0);
            return;
        }
        let n = l.n_held.get();
        if let Some(i) = (0..n).rev().find(|&i| l.held[i].get() == node) {
            for j in i..n - 1 {
                l.held[j].set(l.held[j + 1].get());
            }
            l.n_held.set(n - 1);
        }
    });
}

#[derive(Clone, Copy)]
enum Link {
    /// The candidate is our predecessor: its `next` must point at us.
    Prev,
    /// The candidate is our successor: its `prev` must point at us.
    Next,
}

/// Whether a link read from a slot, other than the head, may be written
/// through: a slot this thread holds, or a foreign node that links back to
/// ours.
#[cold]
#[inline(never)]
fn trusted_node(cand: usize, node: usize, link: Link) -> bool {
    if cand == 0 || cand % 8 != 0 || cand == node {
        return false;
    }
    // Where the candidate's link back to `node` must be.
    let at = match link {
        Link::Prev => cand,
        Link::Next => cand - PREV_FROM_NODE,
    };
    let ours = LOCAL.with(|l| {
        let n = l.n_held.get();
        l.bottom.get() == cand || (0..n).any(|i| l.held[i].get() == cand)
    });
    if ours {
        // SAFETY: `cand` is `&slot.next` of a slot this thread holds, in a
        // mapping kept alive by its guard; `at` is that slot's `next` or
        // `prev`, an `AtomicUsize` (peers may write it: read atomically).
        let back = unsafe { (*(at as *const AtomicUsize)).load(Relaxed) };
        return back & !1 == node;
    }
    // A foreign node (glibc's robust mutex, or a registry overflow): read
    // its back link without risking a fault.
    safe_read_usize(at).is_some_and(|v| v & !1 == node)
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
