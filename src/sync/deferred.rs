#![allow(unsafe_code)] // the deferred futex word, kept mapped by its segment
//! Wait morphing for [`Condition`](crate::Condition): a `notify` made
//! while the notifier holds the condition's lock wakes the waiters when
//! that thread next releases a lock word, not at once.
//!
//! Woken at once, a waiter finds the lock still held and goes back to
//! sleep on the lock word, to be woken again by the unlock: two extra
//! sleeps and wakes per hand-off (about 11 futex calls per round trip of
//! a two-process ping-pong instead of 2; `cargo bench --bench sync`,
//! rows `cond` and `cond-unlocked`). The condition's sequence is still
//! advanced by the `notify` itself, so nothing depends on the deferred
//! wake for correctness: a waiter that is not woken (the notifier died,
//! or forgot its guard and never releases) sees the sequence moved at the
//! end of its sleep slice, as after any lost wake (`src/raw/condvar.rs`).
//!
//! Each thread keeps up to [`SLOTS`] pending words, with a handle of the
//! segment that keeps each word mapped; past that, `notify` wakes at once.
//! A forked child inherits its parent's pending wakes and performs them at
//! its own next release: spurious wake-ups, which waiters tolerate.

use core::cell::{Cell, RefCell};
use core::sync::atomic::AtomicU32;
use std::sync::Arc;

use crate::raw::FutexWord;
use crate::shm::segment::Segment;

/// Pending words per thread.
const SLOTS: usize = 4;

/// `n` wakes owed to the futex word `word` of `seg`.
struct Pending {
    seg: Arc<Segment>,
    word: *const AtomicU32,
    /// `u32::MAX`: everybody.
    n: u32,
}

thread_local! {
    /// Whether `PENDING` may hold something: the only cost of a release
    /// without deferred wakes is this load.
    static ANY: Cell<bool> = const { Cell::new(false) };
    static PENDING: RefCell<[Option<Pending>; SLOTS]> =
        const { RefCell::new([const { None }; SLOTS]) };
}

/// Owes `n` wakes (`u32::MAX`: all) of the futex `word`, which lies in
/// `seg`'s mapping, to this thread's next lock release. `false` if they
/// could not be recorded (no room, thread exiting): the caller wakes now.
pub(crate) fn defer(seg: &Arc<Segment>, word: *const AtomicU32, n: u32) -> bool {
    PENDING
        .try_with(|p| {
            let Ok(mut p) = p.try_borrow_mut() else {
                return false;
            };
            if let Some(e) = p.iter_mut().flatten().find(|e| e.word == word) {
                e.n = e.n.saturating_add(n);
                return true;
            }
            let Some(free) = p.iter_mut().find(|e| e.is_none()) else {
                return false;
            };
            *free = Some(Pending {
                seg: seg.clone(),
                word,
                n,
            });
            ANY.with(|a| a.set(true));
            true
        })
        .unwrap_or(false)
}

/// Called after this thread released a lock word: performs the wakes it
/// owes.
#[inline]
pub(crate) fn flush() {
    if ANY.try_with(Cell::get).unwrap_or(false) {
        flush_slow();
    }
}

#[cold]
#[inline(never)]
fn flush_slow() {
    let _ = ANY.try_with(|a| a.set(false));
    let owed = PENDING
        .try_with(|p| {
            p.try_borrow_mut()
                .map(|mut p| core::mem::take(&mut *p))
                .ok()
        })
        .ok()
        .flatten();
    for e in owed.into_iter().flatten().flatten() {
        // SAFETY: `word` points at an aligned futex word of `e.seg`'s
        // mapping (a condition's sequence), which `e.seg` keeps mapped
        // until after this wake; every access to it is atomic.
        let w = unsafe { &*e.word };
        if e.n == u32::MAX {
            w.wake_all();
        } else {
            w.wake_n(e.n);
        }
        drop(e.seg);
    }
}
