//! glibc's robust pthread mutexes and ours held in one thread, locked and
//! unlocked in fixed and random orders (`SHMSYNC_OD_SEED` replays a run):
//! after every step the thread's robust list holds exactly the held locks,
//! most recent first; when the holder dies, exactly the locks it held
//! report it (ours `OwnerDied`, glibc's `EOWNERDEAD`) with their data.

use shmsync::{SharedMemory, TryLockError, Value};

use crate::checks::check_value_after;
use crate::common::owner_death::{kind, trials, Mode, Rng};
use crate::common::{
    arg, block_until_killed, glibc_timedlock, init_robust_mutex, robust_list, spawn, tell, ShmName,
};
use crate::{start_server, LONG, TRIALS};

/// Byte offsets in the glibc block: mutex X, its data, mutex Y, its data.
const GX: usize = 0;
const GX_DATA: usize = 64;
const GY: usize = 128;
const GY_DATA: usize = 192;
/// Our locks A, B (two `Value`s) and glibc's X, Y.
const LOCKS: [&str; 4] = ["A", "B", "X", "Y"];

/// Lock/unlock sequences over A, B, X, Y: fixed orders first, then random.
fn glibc_sequence(trial: usize, rng: &mut Rng) -> Vec<(usize, bool)> {
    let fixed: [&[(usize, bool)]; 6] = [
        // ours then glibc's, both held
        &[(0, true), (2, true)],
        // glibc's then ours, both held
        &[(2, true), (0, true)],
        // unlock in lock order, then in reverse order; B and Y held
        &[
            (0, true),
            (2, true),
            (0, false),
            (2, false),
            (1, true),
            (3, true),
        ],
        &[
            (2, true),
            (0, true),
            (0, false),
            (2, false),
            (3, true),
            (1, true),
        ],
        // unlock from the middle of the list
        &[
            (0, true),
            (2, true),
            (1, true),
            (3, true),
            (2, false),
            (1, false),
        ],
        // everything released before death
        &[
            (3, true),
            (1, true),
            (0, true),
            (1, false),
            (3, false),
            (0, false),
        ],
    ];
    if trial < fixed.len() {
        return fixed[trial].to_vec();
    }
    let mut held = [false; 4];
    let len = 3 + rng.below(12) as usize;
    (0..len)
        .map(|_| {
            let l = rng.below(4) as usize;
            held[l] = !held[l];
            (l, held[l])
        })
        .collect()
}

pub(crate) fn scenario(test: &str, mode: Mode) {
    let seed = Rng::seed();
    let mut rng = Rng::new(seed);
    let mut server = start_server(test, mode);
    for trial in 0..trials(TRIALS) {
        let seq = glibc_sequence(trial, &mut rng);
        let ctx = format!("{mode:?} trial {trial} seq {seq:?} (SHMSYNC_OD_SEED={seed})");
        let na = ShmName::new("ga");
        let nb = ShmName::new("gb");
        let ng = ShmName::new("gg");
        let va = Value::<i64>::create(&na, -1).unwrap();
        let vb = Value::<i64>::create(&nb, -1).unwrap();
        let gm = SharedMemory::create(&ng, 4096).unwrap();
        for (m, d) in [(GX, GX_DATA), (GY, GY_DATA)] {
            // SAFETY: the offsets lie inside the 4096-byte mapping, 8-aligned
            // for pthread_mutex_t (40 bytes, align 8); nobody else uses the
            // block yet.
            unsafe { init_robust_mutex(gm.as_ptr().add(m).cast()) };
            gm.write_at(d, &(-1i64).to_ne_bytes()).unwrap();
        }
        // Expected state at death: held or not, and the data last written
        // (the step number of the lock's last acquisition).
        let mut held = [false; 4];
        let mut data = [-1i64; 4];
        for (step, &(l, lock)) in seq.iter().enumerate() {
            held[l] = lock;
            if lock {
                data[l] = step as i64 + 1;
            }
        }
        let mask: u32 = (0..4).filter(|&l| held[l]).map(|l| 1 << l).sum();
        let seq_arg: Vec<String> = seq
            .iter()
            .map(|&(l, lock)| format!("{}{}", LOCKS[l], if lock { '+' } else { '-' }))
            .collect();
        let mut h = spawn(test, "interleave")
            .mode(mode)
            .arg("A", &*na)
            .arg("B", &*nb)
            .arg("G", &*ng)
            .arg("SEQ", seq_arg.join(" "))
            .start();
        h.expect("held");
        h.kill();
        let consistent = trial % 3 != 2;
        server.send(&format!(
            "glibc {} {} {} {mask} {} {} {} {} {}",
            &*na,
            &*nb,
            &*ng,
            data[0],
            data[1],
            data[2],
            data[3],
            u8::from(consistent)
        ));
        assert_eq!(server.recv(), "checked", "{ctx}");
        // Ours, from this process: a lock held at death and not repaired is
        // dead for everyone; the rest are consistent.
        for (l, v) in [(0, &va), (1, &vb)] {
            let want = if held[l] { data[l] + 1000 } else { data[l] };
            check_value_after(v, !held[l] || consistent, want);
        }
    }
    server.wait();
}

/// Runs `SEQ` over our A, B and glibc's X, Y in this one thread, checking
/// the thread's robust list after every step, then waits to be killed.
pub(crate) fn interleave(mode: Mode) {
    let va = Value::<i64>::open(&arg("A")).unwrap();
    let vb = Value::<i64>::open(&arg("B")).unwrap();
    let gm = SharedMemory::open(&arg("G")).unwrap();
    let mx: *mut libc::pthread_mutex_t = gm.as_ptr().wrapping_add(GX).cast();
    let my: *mut libc::pthread_mutex_t = gm.as_ptr().wrapping_add(GY).cast();
    let mut ga = None;
    let mut gb = None;
    // Held locks, most recently locked first (the list is LIFO).
    let mut order: Vec<usize> = Vec::new();
    let seq = arg("SEQ");
    let before = robust_list();
    for (step, tok) in seq.split_whitespace().enumerate() {
        let data = step as i64 + 1;
        let l = LOCKS.iter().position(|&n| tok.starts_with(n)).unwrap();
        let lock = tok.ends_with('+');
        let (m, d) = if l == 2 { (mx, GX_DATA) } else { (my, GY_DATA) };
        match (l, lock) {
            (0, true) => {
                let g = va.lock().unwrap();
                g.set(data);
                ga = Some(g);
            }
            (0, false) => ga = None,
            (1, true) => {
                let g = vb.lock().unwrap();
                g.set(data);
                gb = Some(g);
            }
            (1, false) => gb = None,
            (_, true) => {
                // SAFETY: an initialised robust pshared mutex in `gm`.
                assert_eq!(unsafe { libc::pthread_mutex_lock(m) }, 0);
                gm.write_at(d, &data.to_ne_bytes()).unwrap();
            }
            (_, false) => {
                // SAFETY: as above; this thread holds it.
                assert_eq!(unsafe { libc::pthread_mutex_unlock(m) }, 0);
            }
        }
        if lock {
            order.insert(0, l);
        } else {
            order.retain(|&x| x != l);
        }
        // The list holds exactly the held locks, in LIFO order: glibc's at
        // their own addresses, ours (list mode only) elsewhere.
        let nodes = robust_list();
        let want: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&x| x >= 2 || mode.kernel_marks())
            .collect();
        let extra = before.len();
        assert_eq!(
            nodes.len(),
            want.len() + extra,
            "step {step} ({tok}) of {seq}: robust list {nodes:x?}, held {want:?}"
        );
        for (node, &x) in nodes.iter().zip(&want) {
            let glibc_node = |m: *mut libc::pthread_mutex_t| m as usize + 32;
            match x {
                2 => assert_eq!(*node, glibc_node(mx), "step {step}: X's place"),
                3 => assert_eq!(*node, glibc_node(my), "step {step}: Y's place"),
                _ => assert!(
                    *node != glibc_node(mx) && *node != glibc_node(my),
                    "step {step}: our lock's place"
                ),
            }
        }
    }
    tell("held");
    let _keep = (ga, gb);
    block_until_killed()
}

/// Server command `glibc A B G MASK dA dB dX dY CONSISTENT`: exactly the
/// locks held at death report the death (ours `OwnerDied`, glibc's
/// `EOWNERDEAD`), with the data last written.
pub(crate) fn glibc_check(a: &[&str]) -> String {
    let va = Value::<i64>::open(a[0]).unwrap();
    let vb = Value::<i64>::open(a[1]).unwrap();
    let gm = SharedMemory::open(a[2]).unwrap();
    let mask: u32 = a[3].parse().unwrap();
    let data: Vec<i64> = a[4..8].iter().map(|s| s.parse().unwrap()).collect();
    let consistent = a[8] == "1";
    for (l, v) in [(0, &va), (1, &vb)] {
        let held = mask & (1 << l) != 0;
        match v.lock_timeout(LONG) {
            Err(TryLockError::OwnerDied(g)) if held => {
                assert_eq!(g.get(), data[l], "{}: data", LOCKS[l]);
                g.set(data[l] + 1000);
                if consistent {
                    g.mark_consistent();
                }
            }
            Ok(g) if !held => assert_eq!(g.get(), data[l], "{}: data", LOCKS[l]),
            r => panic!("{} (held at death: {held}): {}", LOCKS[l], kind(&r)),
        }
    }
    for (l, off, d) in [(2, GX, GX_DATA), (3, GY, GY_DATA)] {
        let held = mask & (1 << l) != 0;
        let m: *mut libc::pthread_mutex_t = gm.as_ptr().wrapping_add(off).cast();
        // SAFETY: an initialised robust pshared mutex in `gm`.
        let rc = unsafe { glibc_timedlock(m, LONG) };
        let want = if held { libc::EOWNERDEAD } else { 0 };
        assert_eq!(rc, want, "{} (held at death: {held})", LOCKS[l]);
        let mut b = [0u8; 8];
        gm.read_at(d, &mut b).unwrap();
        assert_eq!(i64::from_ne_bytes(b), data[l], "{}: data", LOCKS[l]);
        // SAFETY: this thread holds `m`.
        unsafe {
            if held && consistent {
                assert_eq!(libc::pthread_mutex_consistent(m), 0);
            }
            assert_eq!(libc::pthread_mutex_unlock(m), 0);
            let again = glibc_timedlock(m, LONG);
            if held && !consistent {
                assert_eq!(again, libc::ENOTRECOVERABLE, "{}", LOCKS[l]);
            } else {
                assert_eq!(again, 0, "{}", LOCKS[l]);
                assert_eq!(libc::pthread_mutex_unlock(m), 0);
            }
        }
    }
    "checked".to_owned()
}
