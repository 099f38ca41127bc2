//! Shared test machinery: unique `/dev/shm` names that must be gone when a
//! test ends, and cross-process tests that re-spawn the test binary. Every
//! suite declares `mod common;` (a suite in a folder of its own,
//! `#[path = "../common/mod.rs"] mod common;`). Submodules:
//! [`layout`] (where the header and the lock slot lie in a segment's file)
//! and [`owner_death`] (children in a chosen robustness mode, lock-word
//! peeks, locking outcomes by name, random trials).
//!
//! # Child processes
//!
//! A cross-process test re-runs its own test binary with
//! `--exact <test> --nocapture --test-threads=1 --include-ignored` and the
//! environment variable [`ROLE_ENV`] set to `<test>/<role>`. The same
//! `#[test]` function starts with
//!
//! ```ignore
//! if common::run_child("my_test", |role| match role { ... }) {
//!     return;
//! }
//! ```
//!
//! which, in the child, runs the role and prints a `done` message.
//! [`Spawn::premain`] instead starts a *single-threaded* child: [`PREMAIN_ENV`]
//! names the role, which the suite runs from the `.init_array` constructor
//! that [`premain!`] defines, before libtest's `main`, in the process's main
//! thread (needed for `fork` and for an `execve` by the main thread).
//! A child started with [`Spawn::mode`] checks, before its role runs, that
//! the crate runs in that robustness mode.
//!
//! The two sides talk in lines: the child writes `@@shmsync:<msg>` lines to
//! stdout ([`tell`]) and reads plain lines from stdin ([`read_line`],
//! [`await_msg`]); the parent uses [`Child::expect`] and [`Child::send`].
//! Every wait is bounded by [`HANG_LIMIT`] (a watchdog against a hung test,
//! not a timing assertion), and a child that did not print `done` (wrong
//! test name, panic) fails the parent.
#![allow(dead_code)]

pub(crate) mod layout;
pub(crate) mod owner_death;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `<test>/<role>` of a child process running inside the test harness.
pub(crate) const ROLE_ENV: &str = "SHMSYNC_CHILD_ROLE";
/// `<role>` of a single-threaded child that runs before `main`.
pub(crate) const PREMAIN_ENV: &str = "SHMSYNC_CHILD_PREMAIN";
/// Prefix of the environment variables carrying a child's arguments.
const ARG_PREFIX: &str = "SHMSYNC_ARG_";
/// Prefix of the environment variables carrying inherited descriptors.
const FD_PREFIX: &str = "SHMSYNC_FD_";
/// Prefix of protocol lines on a child's stdout.
const MSG_PREFIX: &str = "@@shmsync:";
/// Watchdog: the longest any single wait on a child may take before the
/// test is declared hung. Generous (debug builds, a loaded 2-core machine).
pub(crate) const HANG_LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

/// A unique shared-memory name for one test, which must no longer exist in
/// `/dev/shm` when the value is dropped.
///
/// Declare it *before* the objects that use it, so that it is dropped after
/// them. If the test is already failing, a leftover file is removed
/// silently; otherwise a leftover file is removed and the test fails.
#[derive(Debug)]
pub(crate) struct ShmName {
    name: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl ShmName {
    /// `shmsync_t_<tag>_<pid>_<n>`: unique among concurrently running tests
    /// and processes.
    pub(crate) fn new(tag: &str) -> ShmName {
        // Relaxed: only uniqueness of the returned numbers matters.
        let n = COUNTER.fetch_add(1, Relaxed);
        ShmName {
            name: format!("shmsync_t_{tag}_{}_{n}", std::process::id()),
        }
    }

    /// Adopts a name made elsewhere (e.g. by CPython), with the same
    /// must-be-gone check.
    pub(crate) fn adopt(name: &str) -> ShmName {
        ShmName {
            name: name.trim_start_matches('/').to_owned(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.name
    }

    pub(crate) fn path(&self) -> PathBuf {
        shm_path(&self.name)
    }

    pub(crate) fn exists(&self) -> bool {
        self.path().exists()
    }
}

impl std::ops::Deref for ShmName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl Drop for ShmName {
    fn drop(&mut self) {
        let path = self.path();
        if path.exists() {
            let _ = std::fs::remove_file(&path);
            if !std::thread::panicking() {
                panic!("test left {} behind", path.display());
            }
        }
    }
}

/// `/dev/shm/<bare name>`.
pub(crate) fn shm_path(name: &str) -> PathBuf {
    PathBuf::from("/dev/shm").join(name.trim_start_matches('/'))
}

/// Asserts that the name no longer exists in `/dev/shm`.
pub(crate) fn assert_gone(name: &str) {
    let p = shm_path(name);
    assert!(!p.exists(), "{} still exists", p.display());
}

/// Asserts that the name exists in `/dev/shm`.
pub(crate) fn assert_exists(name: &str) {
    let p = shm_path(name);
    assert!(p.exists(), "{} does not exist", p.display());
}

/// Permission bits of `/dev/shm/<name>`.
pub(crate) fn mode_of(name: &str) -> u32 {
    std::fs::metadata(shm_path(name))
        .expect("metadata of /dev/shm file")
        .permissions()
        .mode()
        & 0o777
}

/// One named object of every kind, created by this process.
#[derive(Debug)]
pub(crate) struct EveryKind {
    // Dropped in this order: the objects, then their names.
    /// `SharedMemory`, `Value`, `RawValue`, `Array`, `RawArray`, `Lock`,
    /// `AtomicValue`, `AtomicArray`, a `Value` locked by the last one, and
    /// that `RLock` (dropped in this order).
    pub(crate) objects: Vec<Box<dyn std::fmt::Debug>>,
    /// Their names, in the same order.
    pub(crate) names: Vec<ShmName>,
}

/// One named object of every kind ([`EveryKind`]), names tagged `tag`.
pub(crate) fn every_kind(tag: &str) -> EveryKind {
    use shmsync::{
        Array, AtomicArray, AtomicValue, Lock, RLock, RawArray, RawValue, SharedMemory, Value,
    };
    let names: Vec<ShmName> = (0..10).map(|_| ShmName::new(tag)).collect();
    let lock = RLock::create(&names[9]).unwrap();
    let objects: Vec<Box<dyn std::fmt::Debug>> = vec![
        Box::new(SharedMemory::create(&names[0], 10).unwrap()),
        Box::new(Value::<i32>::create(&names[1], 0).unwrap()),
        Box::new(RawValue::<i32>::create(&names[2], 0).unwrap()),
        Box::new(Array::<i32>::create(&names[3], &[0]).unwrap()),
        Box::new(RawArray::<i32>::create(&names[4], &[0]).unwrap()),
        Box::new(Lock::create(&names[5]).unwrap()),
        Box::new(AtomicValue::<u64>::create(&names[6], 0).unwrap()),
        Box::new(AtomicArray::<u64>::create(&names[7], &[0]).unwrap()),
        Box::new(Value::<i32>::create_with_lock(&names[8], 0, &lock).unwrap()),
        Box::new(lock),
    ];
    EveryKind { objects, names }
}

/// `n` random bytes from `getrandom(2)`.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        filled += rustix::rand::getrandom(&mut b[filled..], rustix::rand::GetRandomFlags::empty())
            .expect("getrandom");
    }
    b
}

/// `/dev/shm/<name>` opened for reading and writing, as any process with
/// access to the file can (a careless peer, a test damaging a segment).
pub(crate) fn shm_file(name: &str) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(name))
        .unwrap_or_else(|e| panic!("open /dev/shm/{name}: {e}"))
}

/// Creates `path` (mode 0600; it must not exist) holding exactly `bytes`.
pub(crate) fn create_file(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.write_all(bytes).expect("write the new file");
}

/// The error of a call that must fail.
pub(crate) fn err<T>(r: Result<T, shmsync::Error>) -> shmsync::Error {
    match r {
        Ok(_) => panic!("expected an error, got Ok"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------
// Parent side
// ---------------------------------------------------------------------------

/// A child process to be started: the test binary, running one test in one
/// role.
#[derive(Debug)]
pub(crate) struct Spawn {
    test: String,
    role: String,
    /// Appended to `<test>/<role>` in failure messages.
    note: String,
    premain: bool,
    args: Vec<(String, String)>,
    fds: Vec<(String, RawFd)>,
    /// Extra environment changes, in order (`None`: remove the variable).
    env: Vec<(String, Option<String>)>,
}

/// Describes a child that runs test `test` in role `role`.
pub(crate) fn spawn(test: &str, role: &str) -> Spawn {
    Spawn {
        test: test.to_owned(),
        role: role.to_owned(),
        note: String::new(),
        premain: false,
        args: Vec::new(),
        fds: Vec::new(),
        env: Vec::new(),
    }
}

impl Spawn {
    /// Passes `value` to the child, read there with [`arg`].
    pub(crate) fn arg(mut self, key: &str, value: impl ToString) -> Spawn {
        self.args.push((key.to_owned(), value.to_string()));
        self
    }

    /// Lets the child inherit `fd` (at the same number), read there with
    /// [`take_fd`]. `fd` must stay open until [`start`](Spawn::start)
    /// returns; the parent's copy keeps its close-on-exec flag, so children
    /// of concurrently running tests never see it.
    pub(crate) fn fd(mut self, key: &str, fd: BorrowedFd<'_>) -> Spawn {
        self.fds.push((key.to_owned(), fd.as_raw_fd()));
        self
    }

    /// Sets the environment variable `key` in the child.
    pub(crate) fn env(mut self, key: &str, value: &str) -> Spawn {
        self.env.push((key.to_owned(), Some(value.to_owned())));
        self
    }

    /// Removes the environment variable `key` from the child's environment.
    pub(crate) fn env_remove(mut self, key: &str) -> Spawn {
        self.env.push((key.to_owned(), None));
        self
    }

    /// Appends `note` to the child's name in failure messages.
    pub(crate) fn note(mut self, note: &str) -> Spawn {
        self.note.push_str(note);
        self
    }

    /// Runs the role single-threaded, before libtest's `main` (see the
    /// module documentation).
    pub(crate) fn premain(mut self) -> Spawn {
        self.premain = true;
        self
    }

    /// Starts the child.
    pub(crate) fn start(self) -> Child {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        if self.premain {
            cmd.env(PREMAIN_ENV, &self.role).env_remove(ROLE_ENV);
        } else {
            // `--include-ignored`: roles of `#[ignore]`d tests (the
            // owner-death soak) run too.
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
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        for (k, v) in &self.args {
            cmd.env(format!("{ARG_PREFIX}{k}"), v);
        }
        for (k, fd) in &self.fds {
            cmd.env(format!("{FD_PREFIX}{k}"), fd.to_string());
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if !self.fds.is_empty() {
            let fds: Vec<RawFd> = self.fds.iter().map(|&(_, fd)| fd).collect();
            // SAFETY: the closure runs in the forked child before `execve`,
            // where only async-signal-safe work is allowed: it iterates a
            // vector allocated before the fork (no allocation) and makes
            // `fcntl(2)` system calls, which are async-signal-safe. The
            // descriptors were open in the parent at fork time (the caller
            // keeps them open until `start` returns), so they are open in
            // the child too.
            unsafe {
                cmd.pre_exec(move || {
                    for &fd in &fds {
                        // SAFETY: `fd` is open in this (child) process, see
                        // above.
                        let b = BorrowedFd::borrow_raw(fd);
                        rustix::io::fcntl_setfd(b, rustix::io::FdFlags::empty())?;
                    }
                    Ok(())
                });
            }
        }
        let mut proc = cmd.spawn().expect("spawn child test process");
        let stdin = proc.stdin.take();
        let stdout = proc.stdout.take().expect("child stdout");
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            // Reads to the end even when nobody receives any more, so that
            // the child (or a process it forked) never blocks on, or fails
            // at, writing to its stdout.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest prints `test NAME ... ` without a newline before
                // running the test, so a message can follow other text.
                match line.find(MSG_PREFIX) {
                    Some(at) => {
                        let _ = tx.send(line[at + MSG_PREFIX.len()..].to_owned());
                    }
                    None => log2.lock().unwrap().push(line),
                }
            }
        });
        Child {
            label: format!("{}/{}{}", self.test, self.role, self.note),
            proc: Some(proc),
            stdin,
            msgs: rx,
            log,
            reader: Some(reader),
            done: false,
        }
    }
}

/// A running child test process.
#[derive(Debug)]
pub(crate) struct Child {
    label: String,
    proc: Option<std::process::Child>,
    stdin: Option<ChildStdin>,
    msgs: Receiver<String>,
    /// The child's non-protocol stdout lines (libtest's report, prints).
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    done: bool,
}

impl Child {
    /// The child's PID (it is not reaped yet).
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

    /// The next protocol message from the child.
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
                let status = self.reap();
                panic!(
                    "{}: exited ({status}) before sending the expected message; output:\n{}",
                    self.label,
                    self.output()
                )
            }
        }
    }

    /// Waits for the message `want` (and fails on any other).
    pub(crate) fn expect(&mut self, want: &str) {
        let got = self.recv();
        assert_eq!(got, want, "{}: unexpected message", self.label);
    }

    /// Waits for the next message, which must start with `prefix`, and
    /// returns the rest.
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

    /// Waits for the exit, bounded by the watchdog (then kills).
    fn reap(&mut self) -> ExitStatus {
        let mut proc = self.proc.take().expect("child not reaped yet");
        let start = Instant::now();
        loop {
            match proc.try_wait().expect("try_wait") {
                Some(status) => return status,
                None if start.elapsed() > HANG_LIMIT => {
                    let _ = proc.kill();
                    let _ = proc.wait();
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
        let status = self.reap();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "{}: ended otherwise ({status}) before the kill; output:\n{}",
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

    /// Closes the child's stdin, waits for it to exit, and checks that it
    /// ran its role to the end (`done`) and exited successfully.
    pub(crate) fn wait(mut self) {
        self.stdin = None;
        let status = self.reap();
        if let Some(r) = self.reader.take() {
            r.join().expect("reader thread");
        }
        while let Ok(m) = self.msgs.try_recv() {
            if m == "done" {
                self.done = true;
            }
        }
        assert!(
            status.success(),
            "{}: child failed ({status}); output:\n{}",
            self.label,
            self.output()
        );
        assert!(
            self.done,
            "{}: child did not run its role (wrong test name?); output:\n{}",
            self.label,
            self.output()
        );
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Only reached with a live process when the test is failing: never
        // leave a child behind.
        if let Some(mut p) = self.proc.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

/// Starts `n` children (`make(i)`, each calling [`ready_go`]), releases
/// them together once all have sent `ready` (so that they really contend),
/// and waits for each to end ([`Child::wait`]).
pub(crate) fn run_together(n: usize, make: impl Fn(usize) -> Spawn) {
    let mut kids: Vec<Child> = (0..n).map(|i| make(i).start()).collect();
    for k in &mut kids {
        k.expect("ready");
    }
    for k in &mut kids {
        k.send("go");
    }
    for k in kids {
        k.wait();
    }
}

/// Polls `f` every 200 µs until it returns `Some`, at most [`HANG_LIMIT`]
/// (a handshake, not a timing assertion).
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
// Child side
// ---------------------------------------------------------------------------

/// In a child started for `test`, runs `role` with the role's name, reports
/// `done`, and returns `true`; in any other process returns `false`.
pub(crate) fn run_child(test: &str, role: impl FnOnce(&str)) -> bool {
    let Ok(v) = std::env::var(ROLE_ENV) else {
        return false;
    };
    let Some((t, r)) = v.split_once('/') else {
        panic!("malformed {ROLE_ENV}={v:?}");
    };
    if t != test {
        return false;
    }
    owner_death::check_child_mode();
    role(r);
    tell("done");
    true
}

/// Defines the suite's `.init_array` constructor, which runs before
/// libtest's `main`: in a child started with [`Spawn::premain`] it runs
/// `roles(role)` ([`run_premain`]) and exits; in any other process it does
/// nothing.
///
/// ```ignore
/// common::premain!(|role| match role {
///     "forker" => forker(),
///     r => panic!("unknown premain role {r}"),
/// });
/// ```
#[allow(unused_macros)] // used by some suites only
macro_rules! premain {
    ($roles:expr) => {
        extern "C" fn premain_constructor() {
            $crate::common::run_premain($roles);
        }

        #[used]
        #[link_section = ".init_array"]
        static PREMAIN: extern "C" fn() = premain_constructor;
    };
}
#[allow(unused_imports)] // used by some suites only
pub(crate) use premain;

/// In a single-threaded child ([`Spawn::premain`]): runs its role, reports
/// `done` and exits (101 if the role panicked). Returns at once in any
/// other process. Called by the constructor [`premain!`] defines.
pub(crate) fn run_premain(roles: impl FnOnce(&str)) {
    let Ok(role) = std::env::var(PREMAIN_ENV) else {
        return;
    };
    // Unwinding out of the constructor (an `extern "C"` function) would
    // abort without a useful message: end the process here instead.
    let ok = catch_unwind(AssertUnwindSafe(|| {
        owner_death::check_child_mode();
        roles(&role);
        tell("done");
    }))
    .is_ok();
    let _ = std::io::stdout().flush();
    std::process::exit(if ok { 0 } else { 101 });
}

/// Sends a protocol message to the parent.
pub(crate) fn tell(msg: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{MSG_PREFIX}{msg}").expect("write to parent");
    out.flush().expect("flush to parent");
}

/// The next line from the parent, or `None` if it closed stdin.
fn next_line() -> Option<String> {
    let mut line = String::new();
    let n = std::io::stdin().read_line(&mut line).expect("read stdin");
    (n > 0).then(|| line.trim_end().to_owned())
}

/// The next line from the parent (panics if the parent closed stdin).
pub(crate) fn read_line() -> String {
    next_line().expect("parent closed stdin")
}

/// Reads the next line from the parent, which must be `want`.
pub(crate) fn await_msg(want: &str) {
    let Some(line) = next_line() else {
        panic!("parent closed stdin while the child waited for {want:?}");
    };
    assert_eq!(line, want, "unexpected message from the parent");
}

/// The child's rendezvous: reports `ready`, then waits for `go`.
pub(crate) fn ready_go() {
    tell("ready");
    await_msg("go");
}

/// Blocks until the parent kills this process (or closes stdin, then
/// fails).
pub(crate) fn block_until_killed() -> ! {
    let l = read_line();
    panic!("expected to be killed, got {l:?}");
}

/// An argument passed with [`Spawn::arg`].
pub(crate) fn arg(key: &str) -> String {
    std::env::var(format!("{ARG_PREFIX}{key}"))
        .unwrap_or_else(|_| panic!("child argument {key} missing"))
}

/// [`arg`], parsed.
pub(crate) fn arg_parse<T: std::str::FromStr>(key: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    arg(key).parse().expect("child argument parses")
}

/// Takes ownership of a descriptor passed with [`Spawn::fd`].
pub(crate) fn take_fd(key: &str) -> OwnedFd {
    let n: RawFd = std::env::var(format!("{FD_PREFIX}{key}"))
        .unwrap_or_else(|_| panic!("child fd {key} missing"))
        .parse()
        .expect("fd number");
    // Check that it really is open before claiming it.
    // SAFETY: borrowing for the duration of one `fcntl` call; an invalid
    // number makes `fcntl` fail with EBADF, nothing worse.
    let flags = rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(n) });
    assert!(flags.is_ok(), "inherited fd {n} ({key}) is not open");
    // SAFETY: the descriptor was inherited from the parent for this child
    // alone (see `Spawn::fd`); nothing else in this process owns or closes
    // it, and `take_fd` is called once per key.
    unsafe { OwnedFd::from_raw_fd(n) }
}

/// The calling thread's kernel TID.
pub(crate) fn gettid() -> u32 {
    rustix::thread::gettid().as_raw_nonzero().get() as u32
}

// ---------------------------------------------------------------------------
// glibc robust mutexes and this thread's robust list
// ---------------------------------------------------------------------------

/// # Safety
/// `m` points to writable memory for a `pthread_mutex_t` that nobody uses.
pub(crate) unsafe fn init_robust_mutex(m: *mut libc::pthread_mutex_t) {
    const PTHREAD_MUTEX_ROBUST: libc::c_int = 1;
    // SAFETY: a local attribute object, initialised before use and
    // destroyed after; `m` is valid per the caller.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        assert_eq!(libc::pthread_mutexattr_init(&mut attr), 0);
        assert_eq!(
            libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
            0
        );
        assert_eq!(
            libc::pthread_mutexattr_setrobust(&mut attr, PTHREAD_MUTEX_ROBUST),
            0
        );
        assert_eq!(libc::pthread_mutex_init(m, &attr), 0);
        libc::pthread_mutexattr_destroy(&mut attr);
    }
}

/// `pthread_mutex_timedlock` with a deadline `d` from now.
///
/// # Safety
/// `m` is an initialised process-shared mutex in a live mapping.
pub(crate) unsafe fn glibc_timedlock(m: *mut libc::pthread_mutex_t, d: Duration) -> libc::c_int {
    // SAFETY: `ts` is a valid out-pointer; `m` per the caller.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts);
        ts.tv_sec += d.as_secs() as libc::time_t;
        libc::pthread_mutex_timedlock(m, &ts)
    }
}

/// This thread's robust list as the kernel would walk it: the nodes from
/// the head's `list` round to the head, each `prev` link checked.
pub(crate) fn robust_list() -> Vec<usize> {
    let mut head: usize = 0;
    let mut len: usize = 0;
    // SAFETY: get_robust_list(2) writes one pointer and one size_t into the
    // two valid out-pointers; pid 0 is the calling thread.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_get_robust_list,
            0 as libc::c_long,
            &raw mut head,
            &raw mut len,
        )
    };
    assert!(rc == 0 && head != 0, "no robust list head");
    let mut nodes = Vec::new();
    let mut prev = head;
    // SAFETY: `head` is this thread's live robust-list head (glibc's TLS).
    let mut cur = unsafe { std::ptr::read_volatile(head as *const usize) } & !1;
    while cur != head {
        assert!(
            nodes.len() < 64,
            "the robust list does not return to its head"
        );
        // SAFETY: every entry is the `next` field of a lock this thread
        // holds (ours or glibc's) in a live mapping, with `prev` 8 bytes
        // before it: the very property this walk checks (a corrupted list
        // crashes the holder and fails the test).
        let (back, next) = unsafe {
            (
                std::ptr::read_volatile((cur - 8) as *const usize),
                std::ptr::read_volatile(cur as *const usize),
            )
        };
        assert_eq!(
            back & !1,
            prev,
            "prev link of robust-list entry {}",
            nodes.len()
        );
        nodes.push(cur);
        prev = cur;
        cur = next & !1;
    }
    nodes
}
