//! What a LIST, NLST or MLSD sends: which entries (hidden names, wildcards), in which order
//! (sorted by name up to `listing_sort_limit` entries, streamed as they come beyond) and with
//! which clock (`listing_time_zone` for LIST's `ls -l` times).

use std::time::SystemTime;

use ftpgate_core::{DirEntry, EntryStream, Storage, StorageError, StorageErrorKind, VirtualPath};
use ftpgate_proto::Permissions;
use ftpgate_proto::glob::ListPattern;
use ftpgate_proto::listing::{ListFormat, display_name, format_entry};

/// The time zone of the times in LIST's `ls -l` lines (MLSD, MLST and MDTM are always UTC, as
/// RFC 3659 requires). UTC by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListingTimeZone(Option<jiff::tz::TimeZone>);

/// A time zone name that is not in the system's time zone database.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown time zone {0:?} (expected a name such as \"Europe/Paris\" or \"UTC\")")]
pub struct UnknownTimeZone(pub String);

impl ListingTimeZone {
    /// UTC.
    pub const UTC: ListingTimeZone = ListingTimeZone(None);

    /// The zone with this IANA name (`Europe/Paris`, `America/New_York`, `UTC`), from the
    /// system's time zone database; daylight saving time is followed.
    pub fn named(name: &str) -> Result<ListingTimeZone, UnknownTimeZone> {
        if name.eq_ignore_ascii_case("UTC") {
            return Ok(ListingTimeZone::UTC);
        }
        jiff::tz::TimeZone::get(name)
            .map(|tz| ListingTimeZone(Some(tz)))
            .map_err(|_| UnknownTimeZone(name.to_string()))
    }

    /// The zone's name.
    pub fn name(&self) -> &str {
        match &self.0 {
            None => "UTC",
            Some(tz) => tz.iana_name().unwrap_or("UTC"),
        }
    }

    /// Seconds east of UTC at `t`.
    pub(crate) fn offset_seconds(&self, t: Option<SystemTime>) -> i32 {
        let (Some(tz), Some(t)) = (&self.0, t) else {
            return 0;
        };
        jiff::Timestamp::try_from(t).map_or(0, |ts| tz.to_offset(ts).seconds())
    }
}

/// The entries to list for `path`: a directory's, or the one file's; or, when `path` does not
/// exist and its last name has wildcards, those of its parent (filtered by [`Lister`]).
/// A name that exists as written is listed as itself, wildcards or not.
pub(crate) async fn open(
    storage: &dyn Storage,
    path: &VirtualPath,
    format: ListFormat,
    pattern: Option<&ListPattern>,
) -> Result<(EntryStream, Option<ListPattern>), StorageError> {
    match storage.metadata(path).await {
        Ok(meta) if meta.is_dir() => Ok((storage.list(path).await?, None)),
        Ok(_) if matches!(format, ListFormat::Facts(_)) => Err(StorageError::new(
            StorageErrorKind::NotADirectory,
            format!("{path}: MLSD of a file"),
        )),
        Ok(meta) => {
            let name = path.file_name().unwrap_or("").to_string();
            let entry = DirEntry {
                name,
                metadata: meta,
            };
            Ok((Box::pin(futures_util::stream::iter([Ok(entry)])), None))
        }
        Err(e) if e.kind == StorageErrorKind::NotFound && pattern.is_some() => {
            let entries = storage.list(&path.parent()).await?;
            Ok((entries, pattern.cloned()))
        }
        Err(e) => Err(e),
    }
}

/// Formats a listing entry by entry: filters hidden names and wildcards, holds up to
/// `sort_limit` entries to send them sorted by name, and past that many sends the held ones
/// and every later one as they come, so memory stays bounded whatever the directory's size.
pub(crate) struct Lister {
    format: ListFormat,
    permissions: Permissions,
    now: SystemTime,
    zone: ListingTimeZone,
    show_hidden: bool,
    pattern: Option<ListPattern>,
    sort_limit: usize,
    /// Entries held for sorting; `None` once the limit was passed.
    held: Option<Vec<DirEntry>>,
}

impl Lister {
    pub(crate) fn new(
        format: ListFormat,
        permissions: Permissions,
        all: bool,
        pattern: Option<ListPattern>,
        zone: ListingTimeZone,
        sort_limit: usize,
    ) -> Lister {
        Lister {
            format,
            permissions,
            now: SystemTime::now(),
            zone,
            show_hidden: all
                || matches!(format, ListFormat::Facts(_))
                || pattern.as_ref().is_some_and(|p| p.glob.matches_hidden()),
            pattern,
            sort_limit,
            held: Some(Vec::new()),
        }
    }

    /// Takes the next entry of the directory, appending to `out` what can be sent now.
    pub(crate) fn push(&mut self, entry: DirEntry, out: &mut Vec<u8>) {
        if !self.show_hidden && entry.name.starts_with('.') {
            return;
        }
        if let Some(pattern) = &self.pattern {
            if !pattern.glob.matches(&entry.name) {
                return;
            }
        }
        if let Some(held) = &mut self.held {
            if held.len() < self.sort_limit {
                held.push(entry);
                return;
            }
            // Too many to sort: what is held goes out as it came, and so does the rest.
            let held = std::mem::take(held);
            self.held = None;
            for entry in &held {
                self.format(entry, out);
            }
        }
        self.format(&entry, out);
    }

    /// The directory is complete: appends the held entries, sorted by name (byte order, as
    /// `LC_ALL=C ls` sorts).
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        if let Some(mut held) = self.held.take() {
            held.sort_unstable_by(|a, b| a.name.cmp(&b.name));
            for entry in &held {
                self.format(entry, out);
            }
        }
    }

    fn format(&self, entry: &DirEntry, out: &mut Vec<u8>) {
        let offset = match self.format {
            ListFormat::Long => self.zone.offset_seconds(entry.metadata.modified),
            _ => 0,
        };
        if let (ListFormat::Names, Some(pattern)) = (self.format, &self.pattern) {
            // NLST of `dir/*.txt` names `dir/a.txt`, so the client can retrieve what it lists.
            out.extend_from_slice(display_name(&pattern.prefix).as_bytes());
        }
        format_entry(self.format, entry, self.permissions, self.now, offset, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftpgate_core::{FileKind, Metadata};
    use std::time::{Duration, UNIX_EPOCH};

    fn entry(name: &str) -> DirEntry {
        DirEntry {
            name: name.to_string(),
            metadata: Metadata {
                kind: FileKind::File,
                size: 1,
                // 2024-07-01 12:00 UTC: summer time in Europe.
                modified: Some(UNIX_EPOCH + Duration::from_secs(1_719_835_200)),
                mode: None,
                unique: None,
            },
        }
    }

    fn run(lister: &mut Lister, names: &[&str]) -> String {
        let mut out = Vec::new();
        for name in names {
            lister.push(entry(name), &mut out);
        }
        lister.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn names(pattern: Option<&str>, limit: usize) -> Lister {
        let pattern = pattern.map(|p| {
            ListPattern::of_argument(p, p.rsplit('/').next())
                .unwrap()
                .unwrap()
        });
        Lister::new(
            ListFormat::Names,
            Permissions::ALL,
            false,
            pattern,
            ListingTimeZone::UTC,
            limit,
        )
    }

    #[test]
    fn sorted_up_to_the_limit_then_streamed() {
        let input = ["c", "a", "b", ".hidden"];
        assert_eq!(run(&mut names(None, 10), &input), "a\r\nb\r\nc\r\n");
        // Past the limit: every entry, in directory order.
        assert_eq!(run(&mut names(None, 2), &input), "c\r\na\r\nb\r\n");
        assert_eq!(run(&mut names(None, 0), &input), "c\r\na\r\nb\r\n");
    }

    #[test]
    fn wildcards_filter_and_nlst_names_keep_the_directory() {
        let input = ["b.txt", "a.log", "a.txt", ".x.txt"];
        assert_eq!(
            run(&mut names(Some("sub/*.txt"), 10), &input),
            "sub/a.txt\r\nsub/b.txt\r\n"
        );
        assert_eq!(run(&mut names(Some(".*"), 10), &input), ".x.txt\r\n");
    }

    #[test]
    fn zone_offset_in_list_times() {
        let paris = ListingTimeZone::named("Europe/Paris").unwrap();
        assert_eq!(paris.name(), "Europe/Paris");
        let mut lister = Lister::new(ListFormat::Long, Permissions::ALL, false, None, paris, 10);
        lister.now = UNIX_EPOCH + Duration::from_secs(1_719_835_200 + 86_400);
        // 12:00 UTC is 14:00 in Paris in July.
        assert!(run(&mut lister, &["f"]).contains(" Jul  1 14:00 f"));
        assert_eq!(
            ListingTimeZone::named("Mars/Olympus"),
            Err(UnknownTimeZone("Mars/Olympus".into()))
        );
        assert_eq!(ListingTimeZone::named("utc"), Ok(ListingTimeZone::UTC));
    }
}
