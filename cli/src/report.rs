//! One segment described: the facts `ls` and `inspect` print, as a table
//! row, a text block and JSON (the same facts in each).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value as Json};
use shmsync::inspect::{self, format_element, Inspection, Kind, LockSlot, Status};
use shmsync::Error;

use crate::procs::{self, Procs, Thread};

/// How much of the data to read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Detail {
    /// `ls`: the first element only.
    Summary,
    /// `inspect`: the first `n` elements.
    First(usize),
    /// `inspect --all`: every element.
    All,
}

/// The names in `/dev/shm`, sorted.
pub(crate) fn segment_names() -> std::io::Result<Vec<String>> {
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")?
        .filter_map(|e| {
            let e = e.ok()?;
            // Regular files only: no directories (such as the kernel's
            // `/dev/shm/sem.*` are files, listed), no symbolic links.
            e.file_type().ok()?.is_file().then_some(())?;
            e.file_name().into_string().ok()
        })
        .collect();
    v.sort();
    Ok(v)
}

/// A described segment.
#[derive(Debug)]
pub(crate) struct Described {
    pub(crate) json: Json,
    pub(crate) name: String,
    pub(crate) seen: Option<Inspection>,
    pub(crate) users: Vec<u32>,
    pub(crate) creator_alive: bool,
    pub(crate) modified: SystemTime,
    pub(crate) inode: u64,
    pub(crate) len: u64,
    /// The state column: the lock's or the object's own.
    pub(crate) state: String,
    /// The first value, for the table.
    pub(crate) first: Option<String>,
    /// Text lines of `inspect` beyond the table's facts.
    pub(crate) lines: Vec<String>,
}

impl Described {
    /// Whether the file starts with shmsync's magic number.
    pub(crate) fn has_header(&self) -> bool {
        self.seen.as_ref().is_some_and(|s| s.header.is_some())
    }

    /// What `ls` lists without `--all`: published objects, and broken or
    /// unpublished ones that carry shmsync's magic number.
    pub(crate) fn is_shmsync(&self) -> bool {
        self.has_header()
    }

    pub(crate) fn kind_label(&self) -> String {
        match &self.seen {
            None => "unreadable".into(),
            Some(s) => match (&s.status, s.kind, &s.header) {
                (Status::Foreign, ..) => "foreign".into(),
                (_, Some(k), _) => k.name().into(),
                (_, None, Some(h)) => format!("kind {}", h.kind),
                (_, None, None) => "-".into(),
            },
        }
    }
}

/// The row of a segment that could not be read at all (`ls --all`).
pub(crate) fn unreadable(name: &str, e: &Error) -> Described {
    let problem = error_line(name, e);
    Described {
        json: json!({"name": name, "status": "unreadable", "problem": problem}),
        name: name.to_owned(),
        seen: None,
        users: Vec::new(),
        creator_alive: false,
        modified: UNIX_EPOCH,
        inode: 0,
        len: 0,
        state: problem,
        first: None,
        lines: Vec::new(),
    }
}

/// The one-line message for an error about `name`.
pub(crate) fn error_line(name: &str, e: &Error) -> String {
    let bare = name.trim_start_matches('/');
    match e {
        Error::NotFound { .. } => format!("{bare}: no such segment"),
        Error::InvalidName { reason, .. } => format!("{bare}: invalid name: {reason}"),
        Error::Io { errno, .. }
            if std::io::Error::from_raw_os_error(*errno).kind()
                == std::io::ErrorKind::PermissionDenied =>
        {
            format!("{bare}: permission denied")
        }
        e => format!("{bare}: {e}"),
    }
}

/// The Rust type of a header's type code.
fn rust_type(code: u32, size: u32) -> String {
    let t = match u8::try_from(code).unwrap_or(0) {
        b'b' => "i8",
        b'B' => "u8",
        b'h' => "i16",
        b'H' => "u16",
        b'i' => "i32",
        b'I' => "u32",
        b'q' => "i64",
        b'Q' => "u64",
        b'f' => "f32",
        b'd' => "f64",
        b'c' => "CChar",
        b'u' => "WChar",
        b'l' => "CLong",
        b'L' => "CULong",
        b'S' => return format!("struct ({size} bytes)"),
        0 => return "-".into(),
        _ => return format!("code {code}"),
    };
    t.into()
}

fn status_label(s: &Status) -> (&'static str, Option<String>) {
    match s {
        Status::Ok => ("ok", None),
        Status::Foreign => ("foreign", Some("not a shmsync object".into())),
        Status::NotReady => (
            "not ready",
            Some(
                "no published header (being created, its creator died half-way, or a raw block)"
                    .into(),
            ),
        ),
        Status::Broken(e) => ("broken", Some(e.to_string())),
        _ => ("unknown", None),
    }
}

/// What the lock slot says, with `/proc`'s view of its owner and sleepers.
fn lock_state(slot: &LockSlot, sleepers: &[(u32, u32)]) -> (String, Json) {
    let mut j = Map::new();
    let mut text = if slot.not_recoverable() {
        j.insert("state".into(), "not recoverable".into());
        "not recoverable".to_owned()
    } else if let Some(tid) = slot.owner() {
        j.insert("state".into(), "held".into());
        j.insert("owner_tid".into(), tid.into());
        match procs::thread(tid) {
            Thread::Alive { pid, comm } => {
                j.insert("owner_pid".into(), pid.into());
                j.insert("owner_comm".into(), comm.clone().into());
                j.insert("owner_alive".into(), true.into());
                format!("held by TID {tid} of PID {pid} ({comm}), alive")
            }
            Thread::Gone => {
                j.insert("owner_alive".into(), false.into());
                format!("held by TID {tid}, owner dead")
            }
        }
    } else if slot.owner_died() {
        j.insert("state".into(), "owner died".into());
        "owner dead (the kernel marked it; the next locker recovers it)".to_owned()
    } else {
        j.insert("state".into(), "free".into());
        "free".to_owned()
    };
    if slot.owner_died() && slot.owner().is_some() {
        text.push_str(", owner-died bit set");
    }
    j.insert("owner_died_bit".into(), slot.owner_died().into());
    j.insert("waiters_bit".into(), slot.waiters().into());
    j.insert("extra_holds".into(), slot.extra.into());
    j.insert("consistent".into(), (slot.state == 0).into());
    j.insert(
        "waiting".into(),
        sleepers
            .iter()
            .map(|&(pid, tid)| json!({"pid": pid, "tid": tid}))
            .collect(),
    );
    if !sleepers.is_empty() {
        text.push_str(&format!(", {} waiting", sleepers.len()));
    } else if slot.waiters() {
        text.push_str(", waiters bit set");
    }
    (text, Json::Object(j))
}

/// Reads `name` and everything `/proc` says about it.
pub(crate) fn describe(name: &str, procs: &Procs, detail: Detail) -> Result<Described, Error> {
    let limit = match detail {
        Detail::Summary => 64,
        Detail::First(n) => n.saturating_mul(4096),
        Detail::All => usize::MAX,
    };
    let seen = inspect::inspect(name, limit)?;
    let f = seen.file;
    let users = procs.users(f.inode);
    let (status, problem) = status_label(&seen.status);
    let mut j = Map::new();
    j.insert("name".into(), seen.name.clone().unwrap_or_default().into());
    j.insert("status".into(), status.into());
    j.insert("problem".into(), problem.clone().into());
    j.insert("bytes".into(), f.len.into());
    j.insert("uid".into(), f.uid.into());
    j.insert("mode".into(), format!("{:04o}", f.mode).into());
    j.insert(
        "modified".into(),
        f.modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .into(),
    );
    j.insert(
        "attached".into(),
        users
            .iter()
            .map(|&p| json!({"pid": p, "comm": procs::comm(p)}))
            .collect(),
    );
    let mut state = problem.clone().unwrap_or_default();
    let mut first = None;
    let mut lines = Vec::new();
    let mut creator_alive = false;
    if let Some(h) = &seen.header {
        let kind = seen.kind;
        j.insert("kind".into(), kind.map(Kind::name).into());
        j.insert("kind_number".into(), h.kind.into());
        // Synchronisation objects record an internal type code for their
        // words: only element kinds have a user-visible element type.
        let code = u8::try_from(h.type_code)
            .ok()
            .filter(|c| *c != 0 && has_elements(kind));
        j.insert(
            "type_code".into(),
            code.map(|c| (c as char).to_string()).into(),
        );
        j.insert(
            "rust_type".into(),
            code.map_or_else(|| "-".to_owned(), |_| rust_type(h.type_code, h.elem_size))
                .into(),
        );
        // Elements: the user's length; other kinds record internal words.
        let length = has_elements(kind).then_some(h.count);
        j.insert("length".into(), length.into());
        let header = json!({
            "magic": format!("{:#018x}", h.magic),
            "version": h.version,
            "kind": h.kind,
            "type_code": h.type_code,
            "elem_size": h.elem_size,
            "elem_align": h.elem_align,
            "stride": h.stride,
            "count": h.count,
            "data_offset": h.data_offset,
            "lock_mode": h.lock_mode,
            "lock_name_len": h.lock_name_len,
            "id": format!("{:#018x}", h.id),
            "lock_id": format!("{:#018x}", h.lock_id),
            "init": format!("{:#010x}", h.init),
            "creator_pid": h.creator_pid,
            "creator_start": h.creator_start,
        });
        j.insert("header".into(), header);
        if let Some((pid, start)) = inspect::creator(h) {
            creator_alive = inspect::creator_alive(pid, start);
            j.insert(
                "creator".into(),
                json!({"pid": pid, "alive": creator_alive}),
            );
        }
        if let Some(slot) = &seen.lock {
            let sleepers = procs.sleepers(f.inode, inspect::LOCK_WORD_OFFSET);
            let (text, lj) = lock_state(slot, sleepers);
            state = text;
            let mut lj = lj;
            if let Json::Object(m) = &mut lj {
                m.insert("word".into(), format!("{:#010x}", slot.word).into());
                m.insert("prev".into(), format!("{:#018x}", slot.prev).into());
                m.insert("next".into(), format!("{:#018x}", slot.next).into());
            }
            j.insert("lock".into(), lj);
        }
        if let Some(n) = &seen.lock_name {
            j.insert("lock_name".into(), n.clone().into());
            state = format!("uses the lock of {n}");
        }
        let elems = element_values(&seen, detail);
        if let Some(v) = elems.first() {
            first = Some(v.clone());
        }
        if kind == Some(Kind::Event) {
            if let Some(w) = word_at(&seen.data, 0) {
                let set = w & 1 != 0;
                let n = procs.sleepers(f.inode, h.data_offset).len();
                state = format!("{}{}", if set { "set" } else { "clear" }, waiting(n));
                j.insert(
                    "event".into(),
                    json!({"set": set, "word": format!("{w:#010x}"), "waiting": n}),
                );
            }
        } else if has_elements(kind) && seen.status == Status::Ok {
            j.insert("values".into(), elems.clone().into());
        }
        let all = procs.all_sleepers(f.inode);
        if kind == Some(Kind::Condition) {
            // Its own lock's state, then who waits on the condition itself.
            let on_cond = all
                .iter()
                .filter(|(off, ..)| *off != inspect::LOCK_WORD_OFFSET)
                .count();
            state = format!("lock {state}, {on_cond} waiting on the condition");
        }
        if seen.lock.is_none() && kind != Some(Kind::Event) && seen.status == Status::Ok {
            // Other synchronisation objects: who sleeps on any of their
            // words (their own state is in `inspect`'s raw data).
            if !has_elements(kind) {
                state = if all.is_empty() {
                    "nobody waiting".to_owned()
                } else {
                    format!("{} waiting", all.len())
                };
            }
        }
        j.insert(
            "sleepers".into(),
            all.iter()
                .map(|&(off, pid, tid)| json!({"offset": off, "pid": pid, "tid": tid}))
                .collect(),
        );
        if detail_is_full(detail) {
            lines.push(format!(
                "header    magic {:#018x}  version {}  kind {} ({})  init {:#010x}",
                h.magic,
                h.version,
                h.kind,
                kind.map_or("unknown", Kind::name),
                h.init
            ));
            lines.push(format!(
                "elements  type code {} ({})  size {}  align {}  stride {}  count {}  data at {}",
                code.map_or("-".into(), |c| format!("'{}'", c as char)),
                rust_type(h.type_code, h.elem_size),
                h.elem_size,
                h.elem_align,
                h.stride,
                h.count,
                h.data_offset
            ));
            lines.push(format!(
                "lock      mode {} ({})  name length {}  lock id {:#018x}",
                h.lock_mode,
                match h.lock_mode {
                    0 => "none",
                    1 => "own slot",
                    2 => "another object's",
                    _ => "invalid",
                },
                h.lock_name_len,
                h.lock_id
            ));
            lines.push(format!(
                "identity  id {:#018x}  creator PID {} ({})",
                h.id,
                h.creator_pid,
                match inspect::creator(h) {
                    None => "unknown",
                    Some(_) if creator_alive => "alive",
                    Some(_) => "gone",
                }
            ));
            if let Some(slot) = &seen.lock {
                lines.push(format!(
                    "lock slot word {:#010x} (owner TID bits 0-29, owner died 30, waiters 31)  \
                     extra holds {}  state {} ({})",
                    slot.word,
                    slot.extra,
                    slot.state,
                    if slot.state == 0 {
                        "consistent"
                    } else {
                        "not marked consistent since an owner died"
                    }
                ));
                lines.push(format!(
                    "          robust list prev {:#018x}  next {:#018x} (addresses in the owner's process)",
                    slot.prev, slot.next
                ));
            }
            if !elems.is_empty() {
                let shown = elems.len();
                let more = usize::try_from(h.count).unwrap_or(usize::MAX) > shown;
                lines.push(format!(
                    "values    [{}{}]",
                    elems.join(", "),
                    if more {
                        ", ... (--all for every element)"
                    } else {
                        ""
                    }
                ));
            }
            for (off, pid, tid) in &all {
                lines.push(format!(
                    "sleeping  TID {tid} of PID {pid} ({}) on the word at offset {off}",
                    procs::comm(*pid)
                ));
            }
        }
    }
    for &p in &users {
        if detail_is_full(detail) {
            lines.push(format!("attached  PID {p} ({})", procs::comm(p)));
        }
    }
    j.insert("state".into(), state.clone().into());
    Ok(Described {
        json: Json::Object(j),
        name: seen.name.clone().unwrap_or_default(),
        users,
        creator_alive,
        modified: f.modified,
        inode: f.inode,
        len: f.len,
        state,
        first,
        lines,
        seen: Some(seen),
    })
}

fn waiting(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(", {n} waiting")
    }
}

fn detail_is_full(d: Detail) -> bool {
    !matches!(d, Detail::Summary)
}

fn has_elements(kind: Option<Kind>) -> bool {
    matches!(
        kind,
        Some(
            Kind::Value
                | Kind::RawValue
                | Kind::Array
                | Kind::RawArray
                | Kind::AtomicValue
                | Kind::AtomicArray
        )
    )
}

fn word_at(data: &[u8], off: usize) -> Option<u32> {
    let b = data.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// The elements read, formatted (hex bytes for structs).
fn element_values(seen: &Inspection, detail: Detail) -> Vec<String> {
    let Some(h) = &seen.header else {
        return Vec::new();
    };
    if !has_elements(seen.kind) || seen.status != Status::Ok {
        return Vec::new();
    }
    let stride = h.stride as usize;
    let size = h.elem_size as usize;
    if stride == 0 || size == 0 {
        return Vec::new();
    }
    let max = match detail {
        Detail::Summary => 1,
        Detail::First(n) => n,
        Detail::All => usize::MAX,
    };
    let code = u8::try_from(h.type_code).unwrap_or(0);
    seen.data
        .chunks(stride)
        .take(max)
        .filter(|c| c.len() >= size)
        .map(|c| {
            format_element(code, &c[..size]).unwrap_or_else(|| {
                c[..size]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            })
        })
        .collect()
}

/// `ls`'s table.
pub(crate) fn print_table(rows: &[Described]) {
    let head = [
        "NAME", "KIND", "TYPE", "LEN", "BYTES", "UID", "MODE", "PROCS", "VALUE", "STATE",
    ];
    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|d| {
            let h = d.seen.as_ref().and_then(|s| s.header);
            let elems = has_elements(d.seen.as_ref().and_then(|s| s.kind));
            let f = d.seen.as_ref().map(|s| s.file);
            [
                d.name.clone(),
                d.kind_label(),
                h.filter(|_| elems).map_or("-".into(), |h| {
                    let r = rust_type(h.type_code, h.elem_size);
                    match u8::try_from(h.type_code)
                        .ok()
                        .filter(|c| c.is_ascii_graphic())
                    {
                        Some(c) => format!("'{}' {r}", c as char),
                        None => r,
                    }
                }),
                h.filter(|_| elems)
                    .map_or("-".into(), |h| h.count.to_string()),
                d.len.to_string(),
                f.map_or("-".into(), |f| f.uid.to_string()),
                f.map_or("-".into(), |f| format!("{:04o}", f.mode)),
                d.users.len().to_string(),
                d.first.clone().unwrap_or_else(|| "-".into()),
                if d.state.is_empty() {
                    "-".into()
                } else {
                    d.state.clone()
                },
            ]
        })
        .collect();
    let mut width = head.map(str::len);
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |c: &[String]| {
        let mut s = String::new();
        for (i, (cell, w)) in c.iter().zip(width).enumerate() {
            if i + 1 == c.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", s.trim_end());
    };
    line(&head.map(String::from));
    for c in &cells {
        line(c);
    }
}

/// `inspect`'s text.
pub(crate) fn print_inspection(d: &Described) {
    let s = d.seen.as_ref();
    println!("name      {}", d.name);
    if let Some(s) = s {
        let (status, problem) = status_label(&s.status);
        println!(
            "status    {status}{}",
            problem.map_or(String::new(), |p| format!(": {p}"))
        );
        println!(
            "file      {} bytes  uid {}  mode {:04o}  inode {}",
            s.file.len, s.file.uid, s.file.mode, s.file.inode
        );
    }
    println!("kind      {}", d.kind_label());
    if !d.state.is_empty() {
        println!("state     {}", d.state);
    }
    for l in &d.lines {
        println!("{l}");
    }
    if d.users.is_empty() {
        println!("attached  no process");
    }
}
