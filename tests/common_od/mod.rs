//! Machinery of the owner-death tests (`tests/owner_death.rs`): child
//! processes started in a chosen robustness mode, a line protocol with
//! them, SIGKILL, unique `/dev/shm` names, and a look at a lock word.
//!
//! # Child processes
//!
//! A test re-runs its own binary with `--exact <test> --nocapture
//! --test-threads=1` and [`ROLE_ENV`] = `<test>/<role>`; the same `#[test]`
//! function starts with [`run_child`], which runs the role in the child.
//! [`Spawn::premain`] instead starts a *single-threaded* child: the role
//! runs from an `.init_array` constructor, before libtest's `main`, in the
//! process's main thread (needed for `fork` and for an `execve` by the
//! main thread), dispatched by the test file through [`premain_role`].
//!
//! Every child gets `SHMSYNC_ROBUST=fallback` or no such variable,
//! according to its [`Mode`], and checks at its start that
//! [`shmsync::robustness`] reports that mode.
//!
//! Children write `@@od:<msg>` lines to stdout ([`tell`]) and read plain
//! lines from stdin ([`read_line`]). Every wait of the parent is bounded by
//! [`HANG_LIMIT`], a watchdog against a hung test and never a timing
//! assertion.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shmsync::{Robustness, SharedMemory};

/// `<test>/<role>` of a child running inside the test harness.
pub(crate) const ROLE_ENV: &str = "SHMSYNC_OD_ROLE";
/// `<role>` of a single-threaded child that runs before `main`.
pub(crate) const PREMAIN_ENV: &str = "SHMSYNC_OD_PREMAIN";
/// The child's intended mode (`list` or `fallback`).
const MODE_ENV: &str = "SHMSYNC_OD_MODE";
const ARG_PREFIX: &str = "SHMSYNC_OD_ARG_";
const MSG_PREFIX: &str = "@@od:";
/// Watchdog on every single wait of the parent.
pub(crate) const HANG_LIMIT: Duration = Duration::from_secs(60);

/// Offset of the lock word in every object's segment (the in-page
/// `LockSlot`, `shared/ROBUST.md`: a glibc-shaped 40-byte node at 128).
pub(crate) const LOCK_WORD_OFFSET: usize = 128;

// ---------------------------------------------------------------------------
// Modes
// ---------------------------------------------------------------------------

/// The owner-death mechanism a child process is started in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The default: the kernel's robust list where it fits (64-bit glibc).
    List,
    /// `SHMSYNC_ROBUST=fallback`: liveness tokens only.
    Fallback,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::List => "list",
            Mode::Fallback => "fallback",
        }
    }

    /// What [`shmsync::robustness`] must report in a child of this mode.
    pub(crate) fn expected(self) -> Robustness {
        match self {
            // The list is proven to fit on 64-bit glibc (this machine);
            // elsewhere the default is the fallback.
            Mode::List if cfg!(all(target_env = "gnu", target_pointer_width = "64")) => {
                Robustness::KernelList
            }
            _ => Robustness::Fallback,
        }
    }

    /// Whether the kernel marks our locks when their owner dies.
    pub(crate) fn kernel_marks(self) -> bool {
        self.expected() == Robustness::KernelList
    }

    fn apply(self, cmd: &mut Command) {
        match self {
            Mode::List => cmd.env_remove("SHMSYNC_ROBUST"),
            Mode::Fallback => cmd.env("SHMSYNC_ROBUST", "fallback"),
        };
        cmd.env(MODE_ENV, self.as_str());
    }

    /// In a child: the mode it was started in, checked against the crate.
    pub(crate) fn of_child() -> Mode {
        let m = match std::env::var(MODE_ENV).as_deref() {
            Ok("list") => Mode::List,
            Ok("fallback") => Mode::Fallback,
            other => panic!("{MODE_ENV} not set properly: {other:?}"),
        };
        assert_eq!(
            shmsync::robustness(),
            m.expected(),
            "child started in mode {m:?} runs in the wrong mode"
        );
        m
    }
}

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

/// A unique `/dev/shm` name that must be gone when the value is dropped
/// (declare it before the objects using it). A leftover file is removed;
/// the test fails unless it is already failing.
#[derive(Debug)]
pub(crate) struct OdName(String);

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl OdName {
    /// `shmsync_od_<tag>_<pid>_<n>`.
    pub(crate) fn new(tag: &str) -> OdName {
        // Relaxed: only the uniqueness of the numbers matters.
        let n = COUNTER.fetch_add(1, Relaxed);
        OdName(format!("shmsync_od_{tag}_{}_{n}", std::process::id()))
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/dev/shm").join(&self.0)
    }
}

impl std::ops::Deref for OdName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for OdName {
    fn drop(&mut self) {
        let p = self.path();
        if p.exists() {
            let _ = std::fs::remove_file(&p);
            if !std::thread::panicking() {
                panic!("test left {} behind", p.display());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Lock word
// ---------------------------------------------------------------------------

/// A second mapping of an object's segment, to read its lock word (never
/// written; an opened `SharedMemory` never unlinks).
#[derive(Debug)]
pub(crate) struct Peek(SharedMemory);

impl Peek {
    pub(crate) fn open(name: &str) -> Peek {
        Peek(SharedMemory::open(name).expect("open segment to peek"))
    }

    /// The lock word now.
    pub(crate) fn word(&self) -> u32 {
        let mut b = [0u8; 4];
        self.0
            .read_at(LOCK_WORD_OFFSET, &mut b)
            .expect("read lock word");
        u32::from_ne_bytes(b)
    }

    /// The lock slot's owner record (`tid << 32 | liveness token`, at 16
    /// in the slot; diagnostics only).
    pub(crate) fn owner(&self) -> u64 {
        let mut b = [0u8; 8];
        self.0
            .read_at(LOCK_WORD_OFFSET + 16, &mut b)
            .expect("read owner record");
        u64::from_ne_bytes(b)
    }

    /// Waits until `cond(word)` holds (a handshake, bounded by
    /// [`HANG_LIMIT`]); returns the word.
    pub(crate) fn wait_for(&self, what: &str, cond: impl Fn(u32) -> bool) -> u32 {
        wait_until(what, || {
            let w = self.word();
            cond(w).then_some(w)
        })
    }
}

/// Polls `f` every 200 µs until it returns `Some`, at most [`HANG_LIMIT`].
pub(crate) fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < HANG_LIMIT,
            "waited {HANG_LIMIT:?} for {what}"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

// ---------------------------------------------------------------------------
// Parent side
// ---------------------------------------------------------------------------

/// A child process to be started.
#[derive(Debug)]
pub(crate) struct Spawn {
    test: String,
    role: String,
    mode: Mode,
    premain: bool,
    args: Vec<(String, String)>,
}

/// A child running `role` of `test` in `mode`.
pub(crate) fn spawn(test: &str, role: &str, mode: Mode) -> Spawn {
    Spawn {
        test: test.to_owned(),
        role: role.to_owned(),
        mode,
        premain: false,
        args: Vec::new(),
    }
}

impl Spawn {
    /// Passes `value` to the child ([`arg`] there).
    pub(crate) fn arg(mut self, key: &str, value: impl ToString) -> Spawn {
        self.args.push((key.to_owned(), value.to_string()));
        self
    }

    /// Runs the role single-threaded, before libtest's `main`.
    pub(crate) fn premain(mut self) -> Spawn {
        self.premain = true;
        self
    }

    pub(crate) fn start(self) -> Kid {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        if self.premain {
            cmd.env(PREMAIN_ENV, &self.role).env_remove(ROLE_ENV);
        } else {
            // `--include-ignored`: the soak test is `#[ignore]`d.
            cmd.args([
                "--exact",
                &self.test,
                "--nocapture",
                "--test-threads=1",
                "--include-ignored",
            ])
            .env(ROLE_ENV, format!("{}/{}", self.test, self.role))
            .env_remove(PREMAIN_ENV);
        }
        self.mode.apply(&mut cmd);
        for (k, v) in &self.args {
            cmd.env(format!("{ARG_PREFIX}{k}"), v);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut proc = cmd.spawn().expect("spawn child process");
        let stdin = proc.stdin.take();
        let stdout = proc.stdout.take().expect("child stdout");
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may have printed `test NAME ... ` on the same line
                // just before (no newline), so look anywhere in it.
                match line.find(MSG_PREFIX) {
                    Some(at) => {
                        let _ = tx.send(line[at + MSG_PREFIX.len()..].to_owned());
                    }
                    None => log2.lock().unwrap().push(line),
                }
            }
        });
        Kid {
            label: format!("{}/{}({:?})", self.test, self.role, self.mode),
            proc: Some(proc),
            stdin,
            msgs: rx,
            log,
            reader: Some(reader),
            done: false,
        }
    }
}

/// A running child.
#[derive(Debug)]
pub(crate) struct Kid {
    label: String,
    proc: Option<std::process::Child>,
    stdin: Option<ChildStdin>,
    msgs: Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    done: bool,
}

impl Kid {
    pub(crate) fn pid(&self) -> i32 {
        self.proc.as_ref().expect("child not reaped").id() as i32
    }

    /// Sends one line to the child's stdin.
    pub(crate) fn send(&mut self, msg: &str) {
        let stdin = self.stdin.as_mut().expect("child stdin open");
        writeln!(stdin, "{msg}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: cannot write to child: {e}", self.label));
    }

    /// The next protocol message.
    pub(crate) fn recv(&mut self) -> String {
        match self.msgs.recv_timeout(HANG_LIMIT) {
            Ok(m) => {
                if m == "done" {
                    self.done = true;
                }
                m
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!("{}: no message within {HANG_LIMIT:?} (hung?)", self.label)
            }
            Err(RecvTimeoutError::Disconnected) => {
                let st = self.reap();
                panic!(
                    "{}: exited ({st}) before the expected message; output:\n{}",
                    self.label,
                    self.output()
                )
            }
        }
    }

    /// Waits for exactly `want`.
    pub(crate) fn expect(&mut self, want: &str) {
        let got = self.recv();
        assert_eq!(got, want, "{}: unexpected message", self.label);
    }

    /// Waits for a message starting with `prefix`; returns the rest.
    pub(crate) fn expect_prefixed(&mut self, prefix: &str) -> String {
        let got = self.recv();
        match got.strip_prefix(prefix) {
            Some(rest) => rest.to_owned(),
            None => panic!("{}: expected {prefix:?}..., got {got:?}", self.label),
        }
    }

    fn output(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    fn reap(&mut self) -> ExitStatus {
        let mut p = self.proc.take().expect("child not reaped yet");
        let start = Instant::now();
        loop {
            match p.try_wait().expect("try_wait") {
                Some(st) => return st,
                None if start.elapsed() > HANG_LIMIT => {
                    let _ = p.kill();
                    let _ = p.wait();
                    panic!("{}: did not exit within {HANG_LIMIT:?}", self.label);
                }
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }

    /// Whether the process has not exited yet (it is not reaped).
    pub(crate) fn running(&mut self) -> bool {
        let p = self.proc.as_mut().expect("child not reaped yet");
        p.try_wait().expect("try_wait").is_none()
    }

    /// SIGKILLs the child without waiting for it.
    pub(crate) fn kill_now(&mut self) {
        let pid = self.pid();
        // SAFETY: kill(2) on our own unreaped child: the PID cannot have
        // been reused.
        let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(rc, 0, "{}: kill failed", self.label);
    }

    /// SIGKILLs the child and reaps it; it must die of that signal (not
    /// have exited or crashed before).
    pub(crate) fn kill(mut self) {
        self.kill_now();
        self.stdin = None;
        let st = self.reap();
        assert_eq!(
            st.signal(),
            Some(libc::SIGKILL),
            "{}: ended otherwise ({st}) before the kill; output:\n{}",
            self.label,
            self.output()
        );
    }

    /// Reaps a child that was SIGKILLed or that ended by itself, whatever
    /// its status (a random-time kill may land before it started).
    pub(crate) fn kill_any(mut self) {
        if self.running() {
            self.kill_now();
        }
        self.stdin = None;
        let _ = self.reap();
    }

    /// Closes stdin, waits for the exit: it must have run its role to the
    /// end (`done`) and exited successfully.
    pub(crate) fn wait(mut self) {
        self.stdin = None;
        let st = self.reap();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        while let Ok(m) = self.msgs.try_recv() {
            if m == "done" {
                self.done = true;
            }
        }
        assert!(
            st.success(),
            "{}: child failed ({st}); output:\n{}",
            self.label,
            self.output()
        );
        assert!(
            self.done,
            "{}: child did not run its role; output:\n{}",
            self.label,
            self.output()
        );
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        // Only reached with a live process when the test fails.
        if let Some(mut p) = self.proc.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Child side
// ---------------------------------------------------------------------------

/// In a child started for `test`: checks the mode, runs `role`, reports
/// `done` and returns `true`. In any other process returns `false`.
pub(crate) fn run_child(test: &str, role: impl FnOnce(&str, Mode)) -> bool {
    let Ok(v) = std::env::var(ROLE_ENV) else {
        return false;
    };
    let Some((t, r)) = v.split_once('/') else {
        panic!("malformed {ROLE_ENV}={v:?}");
    };
    if t != test {
        return false;
    }
    let mode = Mode::of_child();
    role(r, mode);
    tell("done");
    true
}

/// The role of a single-threaded pre-`main` child, if this is one.
pub(crate) fn premain_role() -> Option<String> {
    std::env::var(PREMAIN_ENV).ok()
}

/// Sends a protocol message to the parent.
pub(crate) fn tell(msg: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{MSG_PREFIX}{msg}").expect("write to parent");
    out.flush().expect("flush to parent");
}

/// The next line from the parent (panics if the parent went away).
pub(crate) fn read_line() -> String {
    let mut line = String::new();
    let n = std::io::stdin().read_line(&mut line).expect("read stdin");
    assert!(n > 0, "parent closed stdin");
    line.trim_end().to_owned()
}

/// Reads the next line, which must be `want`.
pub(crate) fn await_msg(want: &str) {
    assert_eq!(read_line(), want, "unexpected message from the parent");
}

/// Blocks until the parent kills this process (or closes stdin, then
/// fails).
pub(crate) fn block_until_killed() -> ! {
    let l = read_line();
    panic!("expected to be killed, got {l:?}");
}

pub(crate) fn arg(key: &str) -> String {
    std::env::var(format!("{ARG_PREFIX}{key}"))
        .unwrap_or_else(|_| panic!("child argument {key} missing"))
}

pub(crate) fn arg_parse<T: std::str::FromStr>(key: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    arg(key).parse().expect("child argument parses")
}

/// The calling thread's kernel TID.
pub(crate) fn gettid() -> u32 {
    rustix::thread::gettid().as_raw_nonzero().get() as u32
}

// ---------------------------------------------------------------------------
// Randomness
// ---------------------------------------------------------------------------

/// xorshift64*: reproducible from a printed seed.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// A seed from `getrandom`, or `SHMSYNC_OD_SEED` to replay.
    pub(crate) fn seed() -> u64 {
        if let Ok(s) = std::env::var("SHMSYNC_OD_SEED") {
            return s.parse().expect("SHMSYNC_OD_SEED is a u64");
        }
        let mut b = [0u8; 8];
        let mut n = 0;
        while n < 8 {
            n += rustix::rand::getrandom(&mut b[n..], rustix::rand::GetRandomFlags::empty())
                .expect("getrandom");
        }
        u64::from_ne_bytes(b)
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Trials per scenario and mode: `SHMSYNC_OD_TRIALS` or `default`.
pub(crate) fn trials(default: usize) -> usize {
    std::env::var("SHMSYNC_OD_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
