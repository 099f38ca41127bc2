//! The barrier state machine of [`crate::Barrier`]: `parties` threads (of
//! any processes) wait for each other, round after round, on one futex
//! word and `2 × parties` party records, with no lock.
//!
//! # The word
//!
//! | bits   | meaning                                                         |
//! |--------|-----------------------------------------------------------------|
//! | 0–11   | [`COUNT_MASK`]: parties counted in the current round (`< parties`) |
//! | 12     | [`WAITERS`]: someone may sleep on the word; whoever ends the round must wake |
//! | 13     | [`BROKEN`]: the current round is broken (`abort`, a timeout, a dead party) |
//! | 14–17  | [`HIST_MASK`]: how the last [`HIST_LEN`] rounds ended, newest in bit 14: 0 completed, 1 reset |
//! | 18–31  | [`GEN_MASK`]: the round (generation), advanced (wrapping) when a round completes or is reset |
//!
//! Transitions:
//! - *arrive* (count `c`, not the last): `c → c + 1` (one `Release` CAS);
//!   the party's index in the round is `c`;
//! - *complete* (count `parties − 1`, the last arrival: the *leader*,
//!   index `parties − 1`): `→ (gen + 1) | hist·0`, count 0, no `BROKEN`, no
//!   `WAITERS` (one `Release` CAS), then a shared wake of everybody if
//!   `WAITERS` was set;
//! - *break* (`abort`, a waiter whose deadline expired, a waiter that found
//!   a dead party, a count no arrival can make): `→ | BROKEN`, then the
//!   wake; arrivals at a broken round return [`Broken`] at once;
//! - *reset*: `→ (gen + 1) | hist·1`, count 0, no `BROKEN`: the round's
//!   waiters return [`Broken`], the barrier is empty and usable again.
//!
//! A waiter of round `g` that sees round `g + d` learns how its round ended
//! from bit `d − 1` of the history: exact for `d ≤` [`HIST_LEN`]. With no
//! more threads than parties a round cannot complete without the waiters
//! of the one before, so `d` is at most 1; with more threads, a waiter that
//! slept through more than [`HIST_LEN`] rounds returns as passed. The
//! generation has 14 bits: a waiter that slept through exactly a multiple
//! of 2¹⁴ rounds (more threads than parties again) keeps waiting.
//!
//! Every `u32` is a valid word (the page is writable by every peer): a
//! count at or beyond `parties`, which no arrival makes, breaks the round;
//! nothing panics, overflows or indexes out of range.
//!
//! # Party records: a party that dies
//!
//! Python's barrier waits forever for a party that died. Here every
//! arrival first *claims* a record of its round: bank `gen & 1` of the
//! `2 × parties` records, any slot whose tag is not the round's (a
//! record is the party's TID, bits 0–21, and the low 10 bits of the round
//! that claimed it, bits 22–31: [`REC_TID`], [`REC_TAG_SHIFT`]); only
//! then is it counted. A record stays until a later round of the same bank
//! claims the slot, so while round `g` fills, the records of round `g`
//! (bank `g & 1`) name every party that arrived or is arriving, and those
//! of round `g − 1` (the other bank) every party of the round before.
//!
//! Waiters sleep in bounded slices ([`SLICE_FIRST`], doubling up to
//! [`SLICE_MAX`]) and after each one probe the recorded parties through a
//! [`Liveness`]: those of the current round and, when the last round
//! completed (not reset), those of the last round, who are expected in
//! this one. A party found dead breaks the round. So a party killed at
//! any instruction never strands the others:
//! - before it claimed a record: it never arrived in this round, but it
//!   was recorded in the last one (a party new to the barrier is expected
//!   by nobody: a process killed before its first arrival is waited for,
//!   as any party that does not come);
//! - after its claim, before or after being counted, while waiting, or
//!   after passing and before its next arrival: its record names it;
//! - as the leader, between completing the round and waking the sleepers:
//!   the round is complete, and sleepers see it after their slice.
//!
//! Two arrivals never share a record: a claim is a CAS from a record of
//! another round, and there are `parties` slots per round. An arrival that
//! finds every slot of its round taken (more threads than parties, or a
//! peer's scribbling) sleeps like a waiter until the round changes.
//!
//! # Ordering
//!
//! Every arrival's CAS is `Release`, and every load of the word (and
//! failed CAS) is `Acquire`. The leader read the word it replaces with such
//! a load, at the end of release sequences headed by every arrival's CAS
//! (read-modify-writes continue them), so it has acquired every arrival;
//! its completing CAS is `Release`, so a waiter whose `Acquire` load sees
//! the round completed sees what every party wrote before its `wait`. Breaks,
//! resets and records publish nothing (`Relaxed`): a [`Broken`] result
//! promises nothing about the other parties.

use core::num::NonZeroU32;
use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::time::Duration;

use super::word::{AtomicWord, Deadline, FutexWord, Liveness};

/// Bits 0–11: parties counted in the current round.
pub const COUNT_MASK: u32 = 0xfff;
/// Bit 12: waiters may sleep on the word; the end of the round wakes them.
pub const WAITERS: u32 = 1 << 12;
/// Bit 13: the current round is broken.
pub const BROKEN: u32 = 1 << 13;
/// Bits 14–17: how the last rounds ended (1: reset), newest in bit 14.
pub const HIST_SHIFT: u32 = 14;
/// How many ended rounds the history remembers.
pub const HIST_LEN: u32 = 4;
/// The history's bits.
pub const HIST_MASK: u32 = ((1 << HIST_LEN) - 1) << HIST_SHIFT;
/// Bits 18–31: the round.
pub const GEN_SHIFT: u32 = 18;
/// One round.
pub const GEN_ONE: u32 = 1 << GEN_SHIFT;
/// The round's bits.
pub const GEN_MASK: u32 = !0 << GEN_SHIFT;
/// The most parties a barrier can have (the count must hold `parties − 1`
/// and the page `2 × parties` records).
pub const MAX_PARTIES: u32 = COUNT_MASK;

/// A record's TID bits: Linux TIDs are below `PID_MAX_LIMIT` = 2²².
pub const REC_TID: u32 = (1 << 22) - 1;
/// Where a record's tag (the low 10 bits of its round) starts.
pub const REC_TAG_SHIFT: u32 = 22;

/// The first sleep of a waiter before it re-reads the word and probes the
/// parties (short slices cost wake-ups and probes when the partner is
/// merely slow, which matters most on a loaded machine).
pub const SLICE_FIRST: Duration = Duration::from_millis(10);
/// The longest sleep of a waiter before it re-reads the word and probes:
/// about the time it takes to notice a dead party, and the extra latency
/// of a waiter whose wake was lost (a leader killed before waking).
pub const SLICE_MAX: Duration = Duration::from_millis(50);

/// The most re-reads of the word a waiter spends spinning before it
/// sleeps (adaptive: [`RawBarrier::wait_spinning`]).
pub const SPIN_MAX: u32 = 1000;
/// Spin hints between two re-reads of the word while spinning.
pub const SPIN_PAUSES: u32 = 8;
/// The spinning budget a new handle starts with.
pub const SPIN_START: u32 = 100;
/// A waiter whose budget fell to 0 spins this much again after every
/// [`SPIN_RETRY`] sleeps, so that the budget can grow back.
pub const SPIN_FLOOR: u32 = 10;
/// See [`SPIN_FLOOR`] (a power of two).
pub const SPIN_RETRY: u32 = 32;

/// The spinning budget in the hint: bits 0–15 the budget, bits 16–31 the
/// sleeps since it fell to 0.
fn spin_limit(hint: u32) -> u32 {
    let limit = (hint & 0xffff).min(SPIN_MAX);
    if limit == 0 && (hint >> 16) % SPIN_RETRY == SPIN_RETRY - 1 {
        SPIN_FLOOR
    } else {
        limit
    }
}

/// The next hint: a budget of at least twice what it took when the round
/// ended while spinning (so that a partner arriving at a steady pace is
/// caught without sleeping), half the budget when the waiter had to sleep
/// (a partner that is not running: spinning only takes CPU time it may
/// need), counting the sleeps.
fn next_hint(hint: u32, spins: u32, slept: bool) -> u32 {
    let limit = spin_limit(hint);
    if slept {
        ((hint >> 16).wrapping_add(1) << 16) | (limit / 2)
    } else {
        limit
            .max(spins.saturating_mul(2).saturating_add(16))
            .min(SPIN_MAX)
    }
}

/// The round is broken (`abort`, a timeout, a dead party) or was reset
/// while the caller waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Broken;

/// The tag of round `gen` (word bits) in a record.
#[inline]
fn tag(gen: u32) -> u32 {
    ((gen >> GEN_SHIFT) & (u32::MAX >> REC_TAG_SHIFT)) << REC_TAG_SHIFT
}

/// A barrier: a view of its word and its `2 × parties` records.
#[derive(Debug)]
pub struct RawBarrier<'a, W: FutexWord> {
    word: &'a W,
    records: &'a [W::Atomic],
    parties: u32,
}

impl<'a, W: FutexWord> RawBarrier<'a, W> {
    /// A barrier on `word` with `records.len() / 2` parties; `None` unless
    /// `records` holds two banks of 1 to [`MAX_PARTIES`] records. (On the
    /// page, zero-filled words are an empty barrier in round 0.)
    pub fn new(word: &'a W, records: &'a [W::Atomic]) -> Option<Self> {
        let parties = u32::try_from(records.len() / 2).ok()?;
        (records.len() % 2 == 0 && (1..=MAX_PARTIES).contains(&parties)).then_some(RawBarrier {
            word,
            records,
            parties,
        })
    }

    /// The word, as a peer process sees it.
    pub fn word(&self) -> &W {
        self.word
    }

    /// The records, as a peer process sees them.
    pub fn records(&self) -> &[W::Atomic] {
        self.records
    }

    #[inline(always)]
    fn w(&self) -> &W::Atomic {
        self.word.atomic()
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.parties
    }

    /// Parties waiting in the current round (0 while it is broken).
    pub fn n_waiting(&self) -> u32 {
        // Relaxed: a snapshot that orders nothing.
        let cur = self.w().load(Relaxed);
        if cur & BROKEN != 0 {
            0
        } else {
            (cur & COUNT_MASK).min(self.parties - 1)
        }
    }

    /// Whether the current round is broken.
    pub fn is_broken(&self) -> bool {
        // Relaxed: a snapshot that orders nothing.
        self.w().load(Relaxed) & BROKEN != 0
    }

    /// Breaks the current round (Python's `abort`): its waiters, and every
    /// arrival until a [`reset`](Self::reset), return [`Broken`].
    pub fn abort(&self) {
        // Relaxed: only a guess for the CAS in `break_round`.
        let cur = self.w().load(Relaxed);
        self.break_round(cur);
    }

    /// Ends the current round as reset: its waiters return [`Broken`], and
    /// the barrier is empty, unbroken and usable again.
    pub fn reset(&self) {
        let w = self.w();
        // Relaxed: only a guess for the CAS.
        let mut cur = w.load(Relaxed);
        loop {
            let hist = (((cur & HIST_MASK) << 1) | (1 << HIST_SHIFT)) & HIST_MASK;
            let new = (cur & GEN_MASK).wrapping_add(GEN_ONE) | hist;
            // Relaxed: a reset publishes nothing (module docs).
            match w.compare_exchange(cur, new, Relaxed, Relaxed) {
                Ok(_) => {
                    if cur & WAITERS != 0 {
                        self.word.wake_all();
                    }
                    return;
                }
                Err(found) => cur = found,
            }
        }
    }

    /// Sets `BROKEN` on the round of `cur` (or whatever the word holds, if
    /// it is still that round), waking the sleepers. Nothing if the word
    /// has moved to another round or is already broken.
    fn break_round(&self, mut cur: u32) {
        let w = self.w();
        let gen = cur & GEN_MASK;
        loop {
            if cur & GEN_MASK != gen || cur & BROKEN != 0 {
                return;
            }
            // Relaxed: a break publishes nothing (module docs).
            match w.compare_exchange(cur, (cur | BROKEN) & !WAITERS, Relaxed, Relaxed) {
                Ok(_) => {
                    if cur & WAITERS != 0 {
                        self.word.wake_all();
                    }
                    return;
                }
                Err(found) => cur = found,
            }
        }
    }

    /// How a waiter of round `gen` with index `index` leaves, given the
    /// word `cur`; `None` while the round is still filling.
    fn outcome(&self, cur: u32, gen: u32, index: u32) -> Option<Result<u32, Broken>> {
        if cur & GEN_MASK == gen {
            return (cur & BROKEN != 0).then_some(Err(Broken));
        }
        let d = cur.wrapping_sub(gen) >> GEN_SHIFT;
        let reset = d <= HIST_LEN && (cur >> (HIST_SHIFT + d - 1)) & 1 != 0;
        Some(if reset { Err(Broken) } else { Ok(index) })
    }

    /// Claims a record of round `gen` for `me`, looking from slot `from`:
    /// its index in `records`, and the record.
    fn claim(&self, gen: u32, from: u32, me: u32) -> Option<(usize, u32)> {
        let n = self.parties as usize;
        let base = ((gen >> GEN_SHIFT) & 1) as usize * n;
        let tag = tag(gen);
        let mine = me | tag;
        for k in 0..n {
            let i = base + (from as usize + k) % n;
            let r = &self.records[i];
            // Relaxed: records publish nothing but themselves; a prober
            // that counts this party sees the claim through the arrival's
            // Release CAS, which follows it.
            let old = r.load(Relaxed);
            if old & REC_TID != 0 && old & !REC_TID == tag {
                continue; // taken in this round
            }
            if r.compare_exchange(old, mine, Relaxed, Relaxed).is_ok() {
                return Some((i, mine));
            }
        }
        None
    }

    /// Gives a claimed record back (the round moved on before the party
    /// was counted).
    fn unclaim(&self, (i, mine): (usize, u32)) {
        // Relaxed: see `claim`. A failure means a later round took the
        // slot: nothing to give back.
        let _ = self.records[i].compare_exchange(mine, 0, Relaxed, Relaxed);
    }

    /// Removes every record naming `me` (a thread that leaves the barrier
    /// for good: it is no longer expected in the next round).
    pub fn withdraw(&self, me: NonZeroU32) {
        let me = me.get() & REC_TID;
        for r in self.records {
            // Relaxed: see `claim`.
            let old = r.load(Relaxed);
            if old & REC_TID == me {
                let _ = r.compare_exchange(old, 0, Relaxed, Relaxed);
            }
        }
    }

    /// Whether some party recorded for the round of `cur` (other than
    /// `me`) is known to be dead: the records of the round, and those of
    /// the round before if it completed.
    fn anyone_dead(&self, cur: u32, me: u32, live: &mut dyn Liveness) -> bool {
        let n = self.parties as usize;
        let gen = cur & GEN_MASK;
        let bank = ((gen >> GEN_SHIFT) & 1) as usize;
        let mut check = |bank: usize, tag: u32| {
            self.records[bank * n..(bank + 1) * n].iter().any(|r| {
                // Relaxed: see `claim`; a death is judged by the probe,
                // which learns it from the kernel.
                let v = r.load(Relaxed);
                let tid = v & REC_TID;
                v & !REC_TID == tag && tid != 0 && tid != me && live.owner_is_dead(tid)
            })
        };
        if check(bank, tag(gen)) {
            return true;
        }
        // The last round completed: its parties are expected in this one.
        cur & (1 << HIST_SHIFT) == 0 && check(bank ^ 1, tag(gen.wrapping_sub(GEN_ONE)))
    }

    /// Sleeps one slice on `cur` (announcing `WAITERS` first); `false`,
    /// without sleeping, if the deadline has expired.
    fn nap(
        &self,
        cur: u32,
        slice: &mut Duration,
        deadline: &mut Option<&mut dyn Deadline>,
    ) -> bool {
        let mut cur = cur;
        if cur & WAITERS == 0 {
            // Relaxed: the value is only slept on, never returned on.
            match self
                .w()
                .compare_exchange(cur, cur | WAITERS, Relaxed, Relaxed)
            {
                Ok(_) => cur |= WAITERS,
                // Changed meanwhile: the caller re-reads it.
                Err(_) => return true,
            }
        }
        let t = match deadline.as_deref_mut() {
            None => *slice,
            Some(d) => match d.remaining() {
                None => return false,
                Some(left) => left.min(*slice),
            },
        };
        self.word.wait(cur, Some(t));
        *slice = slice.saturating_mul(2).min(SLICE_MAX);
        true
    }

    /// Waits until all parties have called `wait` in this round: the
    /// caller's index in the round (distinct per party, `parties − 1` for
    /// the last to arrive, which completes the round: the leader).
    ///
    /// `me` is the caller's TID (non-zero, below 2²²), recorded in the page
    /// for the others to probe; its liveness byte must be held before.
    /// [`Broken`] if the round is or gets broken (by `abort`, a dead party,
    /// a waiter's expired deadline), is reset while the caller waits, or if
    /// the caller's own `deadline` expires first, which breaks it.
    pub fn wait(
        &self,
        me: NonZeroU32,
        deadline: Option<&mut dyn Deadline>,
        live: Option<&mut dyn Liveness>,
    ) -> Result<u32, Broken> {
        self.wait_spinning(me, deadline, live, None)
    }

    /// [`wait`](Self::wait), spinning before it sleeps for as many
    /// re-reads of the word as the hint `spin` allows (at most
    /// [`SPIN_MAX`]; each after [`SPIN_PAUSES`] spin hints), and adapting
    /// it afterwards: raised when the round ended while spinning, halved
    /// when the waiter had to sleep (at 0, [`SPIN_FLOOR`] again every
    /// [`SPIN_RETRY`] sleeps). `spin` is the caller's private hint (never
    /// in the page; any value is valid), starting at [`SPIN_START`];
    /// without it a waiter re-reads [`FutexWord::SPIN_LIMIT`] times. No
    /// spinning where `SPIN_LIMIT` is 0 (loom).
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_spinning(
        &self,
        me: NonZeroU32,
        mut deadline: Option<&mut dyn Deadline>,
        mut live: Option<&mut dyn Liveness>,
        spin: Option<&AtomicU32>,
    ) -> Result<u32, Broken> {
        let me = me.get() & REC_TID;
        let w = self.w();
        let mut slice = SLICE_FIRST;
        // Acquire: pairs with the leader's Release CAS (a waiter) and the
        // arrivals' Release CASes (the leader, module docs); the same for
        // every load and failed CAS below.
        let mut cur = w.load(Acquire);
        'arrive: loop {
            // Claim a record of the round.
            let (gen, claim) = loop {
                if cur & BROKEN != 0 {
                    return Err(Broken);
                }
                let gen = cur & GEN_MASK;
                if cur & COUNT_MASK >= self.parties {
                    self.break_round(cur);
                    return Err(Broken);
                }
                if let Some(c) = self.claim(gen, cur & COUNT_MASK, me) {
                    break (gen, c);
                }
                // Every record of the round is taken: wait for the next.
                if !self.nap(cur, &mut slice, &mut deadline) {
                    self.break_round(cur);
                    return Err(Broken);
                }
                cur = w.load(Acquire);
                if cur & GEN_MASK == gen && cur & BROKEN == 0 {
                    if let Some(l) = live.as_deref_mut() {
                        if self.anyone_dead(cur, me, l) {
                            self.break_round(cur);
                            return Err(Broken);
                        }
                    }
                }
            };
            // Be counted.
            let index = loop {
                if cur & GEN_MASK != gen || cur & BROKEN != 0 {
                    // The round ended or broke before this party counted.
                    self.unclaim(claim);
                    if cur & BROKEN != 0 && cur & GEN_MASK == gen {
                        return Err(Broken);
                    }
                    continue 'arrive;
                }
                let c = cur & COUNT_MASK;
                if c >= self.parties {
                    self.break_round(cur);
                    return Err(Broken);
                }
                if c + 1 == self.parties {
                    let hist = ((cur & HIST_MASK) << 1) & HIST_MASK;
                    let new = gen.wrapping_add(GEN_ONE) | hist;
                    // Release: publishes the round to the waiters' Acquire
                    // loads. Every arrival of the round is already acquired:
                    // `cur`, which this CAS replaces, was read by an Acquire
                    // load (or failed CAS), and the arrivals' Release CASes
                    // head release sequences that every later CAS on the
                    // word continues (module docs).
                    match w.compare_exchange(cur, new, Release, Acquire) {
                        Ok(_) => {
                            if cur & WAITERS != 0 {
                                self.word.wake_all();
                            }
                            return Ok(c);
                        }
                        Err(found) => cur = found,
                    }
                    continue;
                }
                // Release: pairs with the leader's Acquire load of a later
                // value (module docs).
                match w.compare_exchange(cur, cur + 1, Release, Acquire) {
                    Ok(_) => {
                        cur += 1;
                        break c;
                    }
                    Err(found) => cur = found,
                }
            };
            // Wait for the round to end: spin (up to the adaptive
            // budget), then sleep in slices.
            // Relaxed: a private hint, ordering nothing.
            let hint = spin.map_or(0, |s| s.load(Relaxed));
            let limit = match spin {
                Some(_) if W::SPIN_LIMIT > 0 => spin_limit(hint),
                _ => W::SPIN_LIMIT,
            };
            let mut spins = 0;
            let mut slept = false;
            loop {
                if let Some(r) = self.outcome(cur, gen, index) {
                    if let Some(s) = spin.filter(|_| W::SPIN_LIMIT > 0) {
                        // Relaxed: a private hint, ordering nothing.
                        s.store(next_hint(hint, spins, slept), Relaxed);
                    }
                    return r;
                }
                if spins < limit {
                    for _ in 0..SPIN_PAUSES {
                        W::spin_hint();
                    }
                    spins += 1;
                    cur = w.load(Acquire);
                    continue;
                }
                slept = true;
                if !self.nap(cur, &mut slice, &mut deadline) {
                    return self.give_up(gen, index);
                }
                cur = w.load(Acquire);
                if cur & GEN_MASK == gen && cur & BROKEN == 0 {
                    if let Some(l) = live.as_deref_mut() {
                        if self.anyone_dead(cur, me, l) {
                            return self.give_up(gen, index);
                        }
                    }
                }
            }
        }
    }

    /// A waiter of round `gen` whose deadline expired or that found a dead
    /// party breaks the round, unless it ended meanwhile.
    #[cold]
    fn give_up(&self, gen: u32, index: u32) -> Result<u32, Broken> {
        // Acquire: as in `wait` (the round may have completed meanwhile).
        let cur = self.w().load(Acquire);
        if let Some(r) = self.outcome(cur, gen, index) {
            return r;
        }
        self.break_round(cur);
        // Acquire: as above; the break may have lost to a completion.
        let cur = self.w().load(Acquire);
        self.outcome(cur, gen, index).unwrap_or(Err(Broken))
    }
}
