//! What `/proc` says about the processes using a segment: who has it
//! mapped or open, which of their threads sleep on one of its futex words,
//! and who a lock's owner TID is.
//!
//! Everything here is read once per run ([`Procs::scan`]) and is a
//! snapshot. Without privileges, `/proc/PID/maps`, `fd/` and `syscall` of
//! another user's processes are unreadable: such processes are not seen
//! (the tool says so in its documentation; run it as root to see all).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::MetadataExt;

/// One mapping of a `/dev/shm` file in a process.
#[derive(Debug, Clone)]
struct Mapping {
    pid: u32,
    start: u64,
    end: u64,
    /// File offset of `start`.
    offset: u64,
    inode: u64,
}

/// The users of `/dev/shm` files, by inode.
#[derive(Debug, Default)]
pub(crate) struct Procs {
    /// inode → PIDs that map it or hold a descriptor of it.
    users: BTreeMap<u64, BTreeSet<u32>>,
    /// Every mapping of a `/dev/shm` file.
    maps: Vec<Mapping>,
    /// (inode, file offset) → TIDs asleep in `futex` on that word, with
    /// their process.
    sleepers: BTreeMap<(u64, u64), Vec<(u32, u32)>>,
}

impl Procs {
    /// Reads `/proc` once.
    pub(crate) fn scan() -> Procs {
        let mut p = Procs::default();
        let Ok(dir) = fs::read_dir("/proc") else {
            return p;
        };
        let pids: Vec<u32> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        for &pid in &pids {
            p.scan_maps(pid);
            p.scan_fds(pid);
        }
        for &pid in &pids {
            p.scan_sleepers(pid);
        }
        p
    }

    fn scan_maps(&mut self, pid: u32) {
        let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else {
            return;
        };
        for line in maps.lines() {
            // "start-end perms offset dev inode   path"
            let mut f = line.split_whitespace();
            let (Some(range), Some(_perms), Some(off), Some(_dev), Some(ino)) =
                (f.next(), f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            let path: Vec<&str> = f.collect();
            if !path.first().is_some_and(|p| p.starts_with("/dev/shm/")) {
                continue;
            }
            let Some((a, b)) = range.split_once('-') else {
                continue;
            };
            let (Ok(start), Ok(end), Ok(offset), Ok(inode)) = (
                u64::from_str_radix(a, 16),
                u64::from_str_radix(b, 16),
                u64::from_str_radix(off, 16),
                ino.parse::<u64>(),
            ) else {
                continue;
            };
            self.users.entry(inode).or_default().insert(pid);
            self.maps.push(Mapping {
                pid,
                start,
                end,
                offset,
                inode,
            });
        }
    }

    fn scan_fds(&mut self, pid: u32) {
        let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            return;
        };
        for e in dir.flatten() {
            let Ok(target) = fs::read_link(e.path()) else {
                continue;
            };
            if !target.starts_with("/dev/shm/") {
                continue;
            }
            // `stat` follows the link to the open file, even an unlinked one.
            if let Ok(m) = fs::metadata(e.path()) {
                self.users.entry(m.ino()).or_default().insert(pid);
            }
        }
    }

    /// Threads of `pid` blocked in `futex(2)` on a word of a `/dev/shm`
    /// mapping (`/proc/PID/task/TID/syscall`: number 202 on x86-64, 98 on
    /// aarch64, then the arguments; the first is the word's address).
    fn scan_sleepers(&mut self, pid: u32) {
        if !self.maps.iter().any(|m| m.pid == pid) {
            return;
        }
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            return;
        };
        for t in tasks.flatten() {
            let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(sc) = fs::read_to_string(t.path().join("syscall")) else {
                continue;
            };
            let mut f = sc.split_whitespace();
            let Some(Ok(nr)) = f.next().map(str::parse::<i64>) else {
                continue;
            };
            if nr != FUTEX_SYSCALL {
                continue;
            }
            let Some(Ok(addr)) = f
                .next()
                .map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16))
            else {
                continue;
            };
            let Some(m) = self
                .maps
                .iter()
                .find(|m| m.pid == pid && (m.start..m.end).contains(&addr))
            else {
                continue;
            };
            let off = addr - m.start + m.offset;
            self.sleepers
                .entry((m.inode, off))
                .or_default()
                .push((pid, tid));
        }
    }

    /// The processes that have the file mapped or open.
    pub(crate) fn users(&self, inode: u64) -> Vec<u32> {
        self.users
            .get(&inode)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Threads asleep on the word at `offset` of the file: `(pid, tid)`.
    pub(crate) fn sleepers(&self, inode: u64, offset: u64) -> &[(u32, u32)] {
        self.sleepers
            .get(&(inode, offset))
            .map_or(&[], Vec::as_slice)
    }

    /// Threads asleep on any word of the file: `(offset, pid, tid)`.
    pub(crate) fn all_sleepers(&self, inode: u64) -> Vec<(u64, u32, u32)> {
        self.sleepers
            .range((inode, 0)..=(inode, u64::MAX))
            .flat_map(|(&(_, off), v)| v.iter().map(move |&(p, t)| (off, p, t)))
            .collect()
    }
}

#[cfg(target_arch = "x86_64")]
const FUTEX_SYSCALL: i64 = 202;
#[cfg(target_arch = "aarch64")]
const FUTEX_SYSCALL: i64 = 98;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const FUTEX_SYSCALL: i64 = -1;

/// A thread as `/proc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Thread {
    /// A live thread of process `pid`, whose command is `comm`.
    Alive { pid: u32, comm: String },
    /// No such thread in this PID namespace: dead (or in a namespace this
    /// one does not see).
    Gone,
}

/// Who thread `tid` is (`/proc/TID/status` is readable for any thread,
/// listed or not).
pub(crate) fn thread(tid: u32) -> Thread {
    let Ok(status) = fs::read_to_string(format!("/proc/{tid}/status")) else {
        return Thread::Gone;
    };
    let pid = status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok());
    match pid {
        Some(pid) => Thread::Alive {
            pid,
            comm: comm(pid),
        },
        None => Thread::Gone,
    }
}

/// The command name of `pid` (`?` if unreadable).
pub(crate) fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm")).map_or_else(|_| "?".into(), |s| s.trim().into())
}
