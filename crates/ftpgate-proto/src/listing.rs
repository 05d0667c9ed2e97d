//! Directory listings: the `ls -l` form of LIST, NLST names, and RFC 3659 MLSD/MLST facts.
//!
//! Each function formats one entry, so a listing is streamed entry by entry whatever the size
//! of the directory. Control characters in names (which may exist on disk, though clients here
//! cannot create them) are replaced by `?` so one user cannot send terminal escapes to another.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::backend::{DirEntry, Facts, FileKind, Metadata};
use crate::perm::{Perm, Permissions};

/// How the facts are named on the wire: `OPTS MLST`, its reply, and FEAT's MLST line.
impl Facts {
    fn table(&self) -> [(bool, &'static str); 6] {
        [
            (self.kind, "type"),
            (self.size, "size"),
            (self.modify, "modify"),
            (self.perm, "perm"),
            (self.unique, "unique"),
            (self.unix_mode, "unix.mode"),
        ]
    }

    /// Selects the facts named in an `OPTS MLST` argument such as `type;size;modify;`;
    /// unknown names are ignored, as the RFC requires.
    pub fn select(names: &str) -> Facts {
        let mut facts = Facts {
            kind: false,
            size: false,
            modify: false,
            perm: false,
            unique: false,
            unix_mode: false,
        };
        for name in names.split(';').map(|n| n.trim().to_ascii_lowercase()) {
            match name.as_str() {
                "type" => facts.kind = true,
                "size" => facts.size = true,
                "modify" => facts.modify = true,
                "perm" => facts.perm = true,
                "unique" => facts.unique = true,
                "unix.mode" => facts.unix_mode = true,
                _ => {}
            }
        }
        facts
    }

    /// The selected facts as `OPTS MLST` replies them, e.g. `type;size;`.
    pub fn names(&self) -> String {
        let mut names = String::new();
        for (on, name) in self.table() {
            if on {
                names.push_str(name);
                names.push(';');
            }
        }
        names
    }

    /// The FEAT line for MLST: the `supported` facts (those the storage gives every entry),
    /// the selected ones marked with `*`.
    pub fn feat_line(&self, supported: Facts) -> String {
        let mut line = String::from("MLST ");
        for ((on, name), (supported, _)) in self.table().into_iter().zip(supported.table()) {
            if supported {
                line.push_str(name);
                if on {
                    line.push('*');
                }
                line.push(';');
            }
        }
        line
    }
}

/// How a listing is formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// LIST: `ls -l` lines.
    Long,
    /// NLST: names only.
    Names,
    /// MLSD: facts and name.
    Facts(Facts),
}

/// Replaces control characters in a name so it cannot inject escapes or break the framing.
pub fn display_name(name: &str) -> Cow<'_, str> {
    if name.chars().any(|c| c.is_control()) {
        Cow::Owned(
            name.chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(name)
    }
}

const SIX_MONTHS: Duration = Duration::from_secs(182 * 24 * 3600);

fn utc(t: SystemTime) -> OffsetDateTime {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn month_abbrev(m: Month) -> &'static str {
    match m {
        Month::January => "Jan",
        Month::February => "Feb",
        Month::March => "Mar",
        Month::April => "Apr",
        Month::May => "May",
        Month::June => "Jun",
        Month::July => "Jul",
        Month::August => "Aug",
        Month::September => "Sep",
        Month::October => "Oct",
        Month::November => "Nov",
        Month::December => "Dec",
    }
}

/// `YYYYMMDDHHMMSS` in UTC, as MDTM and the MLSx `modify` fact use (RFC 3659 section 2.3).
pub fn format_timeval(t: SystemTime) -> String {
    let mut out = Vec::with_capacity(14);
    push_timeval(&mut out, t);
    // Only ASCII digits (and a sign) went in.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `t` as `YYYYMMDDHHMMSS` (UTC).
fn push_timeval(out: &mut Vec<u8>, t: SystemTime) {
    let d = utc(t);
    push_year(out, d.year(), 4);
    for part in [d.month() as u8, d.day(), d.hour(), d.minute(), d.second()] {
        push_two_digits(out, part);
    }
}

/// Appends `n` (below 100) as two digits.
fn push_two_digits(out: &mut Vec<u8>, n: u8) {
    out.extend_from_slice(&[b'0' + n / 10 % 10, b'0' + n % 10]);
}

/// Appends `year`, zero-padded to `width` digits (as `{:0width$}` writes it).
fn push_year(out: &mut Vec<u8>, year: i32, width: usize) {
    match u64::try_from(year) {
        Ok(year) => push_number(out, year, width, b'0'),
        // Before year 0: rare enough for the formatting machinery.
        Err(_) => {
            use std::io::Write as _;
            let _ = write!(out, "{year:0width$}");
        }
    }
}

/// Appends `n` in decimal, right-aligned in `width` columns filled with `fill`.
fn push_number(out: &mut Vec<u8>, n: u64, width: usize, fill: u8) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n);
    out.resize(out.len() + width.saturating_sub(digits.len()), fill);
    out.extend_from_slice(digits.as_bytes());
}

/// Parses `YYYYMMDDHHMMSS[.sss]` in UTC (MFMT, RFC draft-somers-ftp-mfxx).
pub fn parse_timeval(s: &str) -> Option<SystemTime> {
    let (main, _fraction) = s.split_once('.').unwrap_or((s, ""));
    if main.len() != 14 || !main.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| main[r].parse::<u32>().ok();
    let year = i32::try_from(num(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
    let date = Date::from_calendar_date(year, month, u8::try_from(num(6..8)?).ok()?).ok()?;
    let time = Time::from_hms(
        u8::try_from(num(8..10)?).ok()?,
        u8::try_from(num(10..12)?).ok()?,
        u8::try_from(num(12..14)?).ok()?,
    )
    .ok()?;
    let secs = PrimitiveDateTime::new(date, time)
        .assume_utc()
        .unix_timestamp();
    if secs >= 0 {
        Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    }
}

/// Appends the `ls -l` mode column, such as `-rw-r--r--`.
fn push_mode(out: &mut Vec<u8>, meta: &Metadata) {
    let (kind, default) = match meta.kind {
        FileKind::Dir => (b'd', 0o755),
        FileKind::File => (b'-', 0o644),
        FileKind::Symlink => (b'l', 0o777),
    };
    let mode = meta.mode.unwrap_or(default);
    out.push(kind);
    // setuid, setgid and sticky show in the execute column as `ls` shows them (s/S, s/S,
    // t/T), so LIST tells what MLST's unix.mode tells.
    for (shift, special, set, unset) in [
        (6, 0o4000, b's', b'S'),
        (3, 0o2000, b's', b'S'),
        (0, 0o1000, b't', b'T'),
    ] {
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { b'r' } else { b'-' });
        out.push(if bits & 2 != 0 { b'w' } else { b'-' });
        out.push(match (bits & 1 != 0, mode & special != 0) {
            (true, false) => b'x',
            (false, false) => b'-',
            (true, true) => set,
            (false, true) => unset,
        });
    }
}

/// Appends one `ls -l` line (with CRLF): recent entries show the time, entries older than six
/// months or in the future show the year, as `ls` does and client parsers expect. Times are
/// shown `utc_offset` seconds east of UTC (the listing's time zone at that time; 0 for UTC).
pub fn format_list_line(entry: &DirEntry, now: SystemTime, utc_offset: i32, out: &mut Vec<u8>) {
    let meta = &entry.metadata;
    let modified = meta.modified.unwrap_or(UNIX_EPOCH);
    let mut d = utc(modified);
    if utc_offset != 0 {
        if let Ok(offset) = time::UtcOffset::from_whole_seconds(utc_offset) {
            d = d.checked_to_offset(offset).unwrap_or(d);
        }
    }
    let recent = modified <= now + Duration::from_secs(3600)
        && now
            .duration_since(modified)
            .map(|a| a < SIX_MONTHS)
            .unwrap_or(true);
    // Written straight into `out`, digits included: no allocation and no formatting machinery
    // per line (listings run to millions of lines).
    push_mode(out, meta);
    out.extend_from_slice(b" 1 ftp ftp ");
    push_number(out, meta.size, 13, b' ');
    out.push(b' ');
    out.extend_from_slice(month_abbrev(d.month()).as_bytes());
    out.push(b' ');
    push_number(out, u64::from(d.day()), 2, b' ');
    out.push(b' ');
    if recent {
        push_two_digits(out, d.hour());
        out.push(b':');
        push_two_digits(out, d.minute());
        out.push(b' ');
    } else {
        out.push(b' ');
        push_year(out, d.year(), 0);
        out.push(b' ');
    }
    out.extend_from_slice(display_name(&entry.name).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The MLSx `perm` fact for an entry given the user's permissions there (RFC 3659 section 7.5.5).
pub fn perm_fact(kind: FileKind, perms: Permissions) -> String {
    perm_table(kind)
        .iter()
        .filter(|(_, p)| perms.allows(*p))
        .map(|(c, _)| *c)
        .collect()
}

/// The `perm` letters of an entry of `kind`, each with the permission it stands for.
fn perm_table(kind: FileKind) -> &'static [(char, Perm)] {
    match kind {
        FileKind::Dir => &[
            ('c', Perm::Store),
            ('d', Perm::Delete),
            ('e', Perm::Cwd),
            ('f', Perm::Rename),
            ('l', Perm::List),
            ('m', Perm::Mkdir),
            ('p', Perm::Delete),
        ],
        FileKind::File | FileKind::Symlink => &[
            ('a', Perm::Append),
            ('d', Perm::Delete),
            ('f', Perm::Rename),
            ('r', Perm::Retrieve),
            ('w', Perm::Store),
        ],
    }
}

/// The facts of one entry followed by a space and `name`, without a line ending:
/// `type=file;size=3;modify=20240101000000;perm=r; name`.
pub fn format_facts(meta: &Metadata, name: &str, facts: Facts, perms: Permissions) -> String {
    let mut out = Vec::new();
    write_facts(meta, name, facts, perms, &mut out);
    // Only UTF-8 went in: names are `str`, facts are ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// [`format_facts`], appended to `out` without allocating per fact.
fn write_facts(meta: &Metadata, name: &str, facts: Facts, perms: Permissions, out: &mut Vec<u8>) {
    use std::io::Write as _;
    if facts.kind {
        out.extend_from_slice(match meta.kind {
            FileKind::Dir => b"type=dir;".as_slice(),
            FileKind::File => b"type=file;".as_slice(),
            FileKind::Symlink => b"type=OS.unix=symlink;".as_slice(),
        });
    }
    if facts.size {
        out.extend_from_slice(b"size=");
        push_number(out, meta.size, 0, b' ');
        out.push(b';');
    }
    if facts.modify {
        if let Some(t) = meta.modified {
            out.extend_from_slice(b"modify=");
            push_timeval(out, t);
            out.push(b';');
        }
    }
    if facts.perm {
        out.extend_from_slice(b"perm=");
        for (letter, perm) in perm_table(meta.kind) {
            if perms.allows(*perm) {
                out.push(*letter as u8);
            }
        }
        out.push(b';');
    }
    if facts.unique {
        if let Some(u) = &meta.unique {
            let _ = write!(out, "unique={u};");
        }
    }
    if facts.unix_mode {
        if let Some(m) = meta.mode {
            out.extend_from_slice(b"unix.mode=0");
            let m = m & 0o7777;
            // Octal digits without leading zeros, as `{:o}` writes them.
            let digits = (1..=4)
                .rev()
                .find(|&n| m >> (3 * (n - 1)) != 0)
                .unwrap_or(1);
            for n in (0..digits).rev() {
                out.push(b'0' + ((m >> (3 * n)) & 7) as u8);
            }
            out.push(b';');
        }
    }
    out.push(b' ');
    out.extend_from_slice(display_name(name).as_bytes());
}

/// Appends one listing entry in `format` (with CRLF). `perms` are the user's permissions in the
/// listed directory, for the MLSD `perm` fact; `utc_offset` is the time zone of LIST's times
/// (MLSD's are UTC).
pub fn format_entry(
    format: ListFormat,
    entry: &DirEntry,
    perms: Permissions,
    now: SystemTime,
    utc_offset: i32,
    out: &mut Vec<u8>,
) {
    match format {
        ListFormat::Long => format_list_line(entry, now, utc_offset, out),
        ListFormat::Names => {
            out.extend_from_slice(display_name(&entry.name).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        ListFormat::Facts(facts) => {
            write_facts(&entry.metadata, &entry.name, facts, perms, out);
            out.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn file(name: &str, size: u64, modified: SystemTime) -> DirEntry {
        DirEntry {
            name: name.to_string(),
            metadata: Metadata {
                kind: FileKind::File,
                size,
                modified: Some(modified),
                mode: Some(0o644),
                unique: None,
            },
        }
    }

    fn list_line(entry: &DirEntry, now: SystemTime) -> String {
        let mut out = Vec::new();
        format_list_line(entry, now, 0, &mut out);
        String::from_utf8(out).unwrap()
    }

    // 2024-03-05 14:07:00 UTC
    const MARCH_5_2024: u64 = 1_709_647_620;

    /// The columns as `format!` lays them out, to hold the hand-written digits to.
    fn reference_line(entry: &DirEntry, recent: bool) -> String {
        let d = utc(entry.metadata.modified.unwrap_or(UNIX_EPOCH));
        let when = if recent {
            format!("{:02}:{:02}", d.hour(), d.minute())
        } else {
            format!(" {}", d.year())
        };
        format!(
            "-rw-r--r-- 1 ftp ftp {:>13} {} {:>2} {when} {}\r\n",
            entry.metadata.size,
            month_abbrev(d.month()),
            d.day(),
            entry.name
        )
    }

    #[test]
    fn columns_and_digits_for_every_width() {
        let now = at(MARCH_5_2024);
        let sizes = [0, 7, 10, 99_999, 1 << 40, 9_999_999_999_999, u64::MAX];
        // Recent (minutes and hours of one and two digits), a year ago, the epoch, the far future,
        // the far past.
        let times = [
            (at(MARCH_5_2024 - 5 * 3600 - 7 * 60), true),
            (at(MARCH_5_2024 - 40 * 24 * 3600 + 3600), true),
            (at(MARCH_5_2024 - 400 * 24 * 3600), false),
            (at(0), false),
            (at(253_402_300_799), false),
            // Before year 0.
            (UNIX_EPOCH - Duration::from_secs(62_300_000_000), false),
        ];
        for size in sizes {
            for (modified, recent) in times {
                let entry = file("f", size, modified);
                assert_eq!(list_line(&entry, now), reference_line(&entry, recent));
                let d = utc(modified);
                let timeval = format!(
                    "{:04}{:02}{:02}{:02}{:02}{:02}",
                    d.year(),
                    d.month() as u8,
                    d.day(),
                    d.hour(),
                    d.minute(),
                    d.second()
                );
                assert_eq!(format_timeval(modified), timeval);
                let facts = format_facts(&entry.metadata, "f", Facts::default(), Permissions::ALL);
                assert!(
                    facts.contains(&format!("size={size};modify={timeval};")),
                    "{facts}"
                );
            }
        }
    }

    #[test]
    fn unix_mode_fact_in_octal() {
        for mode in [0, 0o7, 0o10, 0o644, 0o755, 0o4755, 0o7777, 0o170_777] {
            let mut meta = file("f", 0, at(0)).metadata;
            meta.mode = Some(mode);
            let facts = format_facts(&meta, "f", Facts::default(), Permissions::ALL);
            let expected = format!("unix.mode=0{:o};", mode & 0o7777);
            assert!(facts.contains(&expected), "{facts} for {mode:o}");
        }
    }

    #[test]
    fn list_mode_column_shows_special_bits_as_ls_does() {
        for (mode, column) in [
            (0o644, "-rw-r--r--"),
            (0o4755, "-rwsr-xr-x"),
            (0o4644, "-rwSr--r--"),
            (0o2755, "-rwxr-sr-x"),
            (0o2745, "-rwxr-Sr-x"),
            (0o1777, "-rwxrwxrwt"),
            (0o1776, "-rwxrwxrwT"),
            (0o7777, "-rwsrwsrwt"),
        ] {
            let mut entry = file("f", 0, at(MARCH_5_2024));
            entry.metadata.mode = Some(mode);
            let line = list_line(&entry, at(MARCH_5_2024));
            assert!(line.starts_with(column), "{line} for {mode:o}");
        }
    }

    #[test]
    fn recent_file_shows_time() {
        let now = at(MARCH_5_2024 + 86400);
        assert_eq!(
            list_line(&file("a.txt", 1234, at(MARCH_5_2024)), now),
            "-rw-r--r-- 1 ftp ftp          1234 Mar  5 14:07 a.txt\r\n"
        );
    }

    #[test]
    fn times_in_a_zone() {
        let now = at(MARCH_5_2024 + 86400);
        let mut out = Vec::new();
        // 14:07 UTC is 15:07 at UTC+1, and 09:07 at UTC-5.
        format_list_line(&file("a", 1, at(MARCH_5_2024)), now, 3600, &mut out);
        format_list_line(&file("b", 1, at(MARCH_5_2024)), now, -5 * 3600, &mut out);
        // 23:30 UTC on Mar 5 is the next day at UTC+1.
        format_list_line(
            &file("c", 1, at(MARCH_5_2024 + 9 * 3600 + 23 * 60)),
            now,
            3600,
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(" Mar  5 15:07 a\r\n"), "{text}");
        assert!(text.contains(" Mar  5 09:07 b\r\n"), "{text}");
        assert!(text.contains(" Mar  6 00:30 c\r\n"), "{text}");
    }

    #[test]
    fn old_file_shows_year() {
        let now = at(MARCH_5_2024 + 400 * 86400);
        assert_eq!(
            list_line(&file("a.txt", 1, at(MARCH_5_2024)), now),
            "-rw-r--r-- 1 ftp ftp             1 Mar  5  2024 a.txt\r\n"
        );
    }

    #[test]
    fn future_file_shows_year() {
        let now = at(MARCH_5_2024 - 30 * 86400);
        assert!(list_line(&file("a", 1, at(MARCH_5_2024)), now).contains("Mar  5  2024"));
    }

    #[test]
    fn directory_line_and_spaces_in_names() {
        let entry = DirEntry {
            name: "my dir".into(),
            metadata: Metadata {
                kind: FileKind::Dir,
                size: 4096,
                modified: Some(at(MARCH_5_2024)),
                mode: Some(0o755),
                unique: None,
            },
        };
        let line = list_line(&entry, at(MARCH_5_2024));
        assert!(line.starts_with("drwxr-xr-x 1 ftp ftp"), "{line}");
        assert!(line.ends_with(" my dir\r\n"));
    }

    #[test]
    fn control_characters_are_replaced_in_listings() {
        let line = list_line(&file("evil\x1b[2J\r\nx", 1, at(0)), at(0));
        assert!(line.ends_with("evil?[2J??x\r\n"), "{line:?}");
    }

    #[test]
    fn timeval_round_trip() {
        assert_eq!(format_timeval(at(MARCH_5_2024)), "20240305140700");
        assert_eq!(parse_timeval("20240305140700"), Some(at(MARCH_5_2024)));
        assert_eq!(parse_timeval("20240305140700.123"), Some(at(MARCH_5_2024)));
        assert_eq!(parse_timeval("19700101000000"), Some(UNIX_EPOCH));
        assert_eq!(parse_timeval("20241305140700"), None);
        assert_eq!(parse_timeval("2024030514070"), None);
        assert_eq!(parse_timeval("2024030514070x"), None);
    }

    #[test]
    fn facts_line() {
        let e = file("b c", 3, at(MARCH_5_2024));
        let line = format_facts(&e.metadata, &e.name, Facts::default(), Permissions::ALL);
        assert_eq!(
            line,
            "type=file;size=3;modify=20240305140700;perm=adfrw;unix.mode=0644; b c"
        );
        let only = Facts::select("type;SIZE;bogus;");
        assert_eq!(
            format_facts(&e.metadata, &e.name, only, Permissions::ALL),
            "type=file;size=3; b c"
        );
        assert_eq!(only.names(), "type;size;");
    }

    #[test]
    fn perm_fact_follows_permissions() {
        assert_eq!(perm_fact(FileKind::File, Permissions::READ_ONLY), "r");
        assert_eq!(perm_fact(FileKind::Dir, Permissions::READ_ONLY), "el");
        assert_eq!(perm_fact(FileKind::Dir, Permissions::ALL), "cdeflmp");
    }

    #[test]
    fn feat_line_marks_selected_facts() {
        assert_eq!(
            Facts::select("size").feat_line(Facts::ALL),
            "MLST type;size*;modify;perm;unique;unix.mode;"
        );
        // Only what the storage gives every entry is offered.
        assert_eq!(
            Facts::ALL.feat_line(Facts::BASIC),
            "MLST type*;size*;perm*;"
        );
        assert_eq!(Facts::ALL.and(Facts::BASIC).names(), "type;size;perm;");
    }
}
