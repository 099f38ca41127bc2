//! `shmsync`: see every shared-memory segment, who holds which lock, and
//! clean up what dead processes left behind.
//!
//! ```text
//! shmsync ls [--all] [--json]
//! shmsync inspect NAME [--all] [--json]
//! shmsync unlink NAME... [--json]
//! shmsync gc [--dry-run] [--prefix P] [--older-than DURATION] [--json]
//! ```
//!
//! Reading a segment never changes it and never takes its lock: segments
//! are read with `pread` through a read-only descriptor
//! (`shmsync::inspect`). Who uses a segment comes from `/proc` (`procs.rs`).
//! `README.md` ("The `shmsync` tool") shows a real run.

mod procs;
mod report;

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use serde_json::{json, Value as Json};

use procs::Procs;
use report::{describe, error_line, segment_names, Detail};

/// The `shmsync` command line.
#[derive(Debug, Parser)]
#[command(name = "shmsync", version, about = "See and clean up shmsync shared-memory segments in /dev/shm", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the shmsync segments in /dev/shm: kind, type, size, owner,
    /// lock state, and how many processes use each.
    Ls {
        /// Also list segments that are not shmsync objects (CPython's
        /// `psm_*`, raw blocks, unpublished ones), marked as such.
        #[arg(long)]
        all: bool,
        /// Print JSON (an array of objects) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one segment: every header field, the lock slot, the value or
    /// the first elements, and the processes attached.
    Inspect {
        /// The segment's name (with or without a leading `/`).
        name: String,
        /// Show every element, not only the first 16.
        #[arg(long)]
        all: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove names from /dev/shm, including broken or stale ones that no
    /// typed `open` accepts. Processes that have them open keep them.
    Unlink {
        /// The names to remove.
        #[arg(required = true)]
        names: Vec<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove shmsync segments that no live process has mapped or open
    /// and whose creator is gone.
    Gc {
        /// Print exactly what would be removed, and remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only names that start with this prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Only segments last modified (created, resized) longer ago than
        /// this: `90s`, `10m`, `2h`, `7d` (a bare number is seconds).
        #[arg(long, value_parser = parse_duration)]
        older_than: Option<Duration>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 90s, 10m, 2h, 7d"))?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(|| format!("{s:?} is not a duration such as 90s, 10m, 2h, 7d"))?;
    Ok(Duration::from_secs(secs))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Ls { all, json } => ls(all, json),
        Command::Inspect { name, all, json } => inspect(&name, all, json),
        Command::Unlink { names, json } => unlink(&names, json),
        Command::Gc {
            dry_run,
            prefix,
            older_than,
            json,
        } => gc(dry_run, &prefix, older_than, json),
    }
}

fn print_json(v: &Json) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("shmsync: cannot format JSON: {e}"),
    }
}

fn ls(all: bool, json: bool) -> ExitCode {
    let names = match segment_names() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("shmsync: /dev/shm: {e}");
            return ExitCode::FAILURE;
        }
    };
    let procs = Procs::scan();
    let mut rows = Vec::new();
    for name in names {
        // A name can vanish or refuse us between the listing and the read.
        match describe(&name, &procs, Detail::Summary) {
            Ok(d) if all || d.is_shmsync() => rows.push(d),
            Ok(_) => {}
            Err(e) if all => rows.push(report::unreadable(&name, &e)),
            Err(_) => {}
        }
    }
    if json {
        print_json(&Json::Array(rows.iter().map(|d| d.json.clone()).collect()));
    } else {
        report::print_table(&rows);
    }
    ExitCode::SUCCESS
}

fn inspect(name: &str, all: bool, json: bool) -> ExitCode {
    let procs = Procs::scan();
    let detail = if all { Detail::All } else { Detail::First(16) };
    match describe(name, &procs, detail) {
        Ok(d) => {
            if json {
                print_json(&d.json);
            } else {
                report::print_inspection(&d);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shmsync: {}", error_line(name, &e));
            ExitCode::FAILURE
        }
    }
}

fn unlink(names: &[String], json: bool) -> ExitCode {
    let mut ok = true;
    let mut out = Vec::new();
    for name in names {
        match shmsync::SharedMemory::unlink_name(name) {
            Ok(()) => {
                if !json {
                    println!("removed {name}");
                }
                out.push(json!({"name": name, "removed": true}));
            }
            Err(e) => {
                ok = false;
                let line = error_line(name, &e);
                if !json {
                    eprintln!("shmsync: {line}");
                }
                out.push(json!({"name": name, "removed": false, "error": line}));
            }
        }
    }
    if json {
        print_json(&Json::Array(out));
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn gc(dry_run: bool, prefix: &str, older_than: Option<Duration>, json: bool) -> ExitCode {
    let names = match segment_names() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("shmsync: /dev/shm: {e}");
            return ExitCode::FAILURE;
        }
    };
    let procs = Procs::scan();
    let now = SystemTime::now();
    let mut out = Vec::new();
    let mut ok = true;
    for name in names.into_iter().filter(|n| n.starts_with(prefix)) {
        let Ok(d) = describe(&name, &procs, Detail::Summary) else {
            continue;
        };
        // Only files with shmsync's magic number: never another program's.
        if !d.has_header() {
            continue;
        }
        let keep = if !d.users.is_empty() {
            Some(format!("in use by PID {}", join(&d.users)))
        } else if d.creator_alive {
            Some("its creator is alive".to_owned())
        } else {
            older_than.and_then(|min| {
                let age = now.duration_since(d.modified).unwrap_or(Duration::ZERO);
                (age < min).then(|| format!("younger than {}s", min.as_secs()))
            })
        };
        let (action, reason) = match keep {
            Some(why) => ("kept", why),
            None if dry_run => ("would remove", "orphaned".to_owned()),
            None => match remove_if_same(&name, d.inode) {
                Ok(()) => ("removed", "orphaned".to_owned()),
                Err(e) => {
                    ok = false;
                    ("failed", e)
                }
            },
        };
        if !json && action != "kept" {
            println!(
                "{action} {name} ({}, {} bytes): {reason}",
                d.kind_label(),
                d.len
            );
        }
        out.push(json!({"name": name, "action": action, "reason": reason}));
    }
    if json {
        print_json(&Json::Array(out));
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Unlinks `name` if it is still the file that was judged (same inode): a
/// segment created anew under that name since the scan is left alone.
fn remove_if_same(name: &str, inode: u64) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let path = format!("/dev/shm/{name}");
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.ino() == inode => {
            shmsync::SharedMemory::unlink_name(name).map_err(|e| error_line(name, &e))
        }
        Ok(_) => Err("replaced since the scan; left alone".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

fn join(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}
