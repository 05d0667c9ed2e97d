//! Permissions as the letters pyftpdlib made common: `elradfmwMT`.
//!
//! e change directory, l list, r retrieve, a append, d delete, f rename, m make directory,
//! w store, M change mode, T set modification time. A [`PermissionMap`] holds a user's default
//! letters and optional per-directory overrides; the deepest matching directory wins.

use std::fmt;

use crate::path::VirtualPath;

/// One permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perm {
    /// `e`: change directory (CWD, CDUP).
    Cwd,
    /// `l`: list (LIST, NLST, MLSD, MLST, STAT path, SIZE, MDTM).
    List,
    /// `r`: retrieve (RETR).
    Retrieve,
    /// `a`: append (APPE, and resuming a STOR at an offset).
    Append,
    /// `d`: delete (DELE, RMD).
    Delete,
    /// `f`: rename (RNFR, RNTO).
    Rename,
    /// `m`: make directory (MKD).
    Mkdir,
    /// `w`: store (STOR, STOU).
    Store,
    /// `M`: change mode (SITE CHMOD).
    Chmod,
    /// `T`: set modification time (MFMT).
    SetTime,
}

const ALL: [(Perm, char); 10] = [
    (Perm::Cwd, 'e'),
    (Perm::List, 'l'),
    (Perm::Retrieve, 'r'),
    (Perm::Append, 'a'),
    (Perm::Delete, 'd'),
    (Perm::Rename, 'f'),
    (Perm::Mkdir, 'm'),
    (Perm::Store, 'w'),
    (Perm::Chmod, 'M'),
    (Perm::SetTime, 'T'),
];

impl Perm {
    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// The permission's letter.
    pub fn letter(self) -> char {
        ALL.iter()
            .find(|(p, _)| *p == self)
            .map(|(_, c)| *c)
            .unwrap_or('?')
    }
}

/// A set of permissions.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions(u16);

/// A letter that is not one of `elradfmwMT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPermission(pub char);

impl fmt::Display for UnknownPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown permission letter {:?} (allowed: elradfmwMT)",
            self.0
        )
    }
}

impl std::error::Error for UnknownPermission {}

impl Permissions {
    /// Every permission.
    pub const ALL: Permissions = Permissions(0x3ff);
    /// What anonymous users get by default: change directory, list, retrieve.
    pub const READ_ONLY: Permissions = Permissions(0b111);

    /// Parses letters such as `"elradfmwMT"`.
    pub fn parse(letters: &str) -> Result<Permissions, UnknownPermission> {
        let mut set = 0;
        for c in letters.chars() {
            let (perm, _) = ALL
                .iter()
                .find(|(_, l)| *l == c)
                .ok_or(UnknownPermission(c))?;
            set |= perm.bit();
        }
        Ok(Permissions(set))
    }

    /// Whether `perm` is granted.
    pub fn allows(self, perm: Perm) -> bool {
        self.0 & perm.bit() != 0
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (perm, letter) in ALL {
            if self.allows(perm) {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permissions({self})")
    }
}

/// A user's permissions: defaults, with overrides for directories and everything beneath them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionMap {
    default: Permissions,
    /// Sorted deepest first, so the first match is the most specific.
    overrides: Vec<(VirtualPath, Permissions)>,
}

impl PermissionMap {
    /// The same permissions everywhere.
    pub fn uniform(default: Permissions) -> Self {
        PermissionMap {
            default,
            overrides: Vec::new(),
        }
    }

    /// Adds an override for `dir` and everything beneath it.
    pub fn with_override(mut self, dir: VirtualPath, perms: Permissions) -> Self {
        self.overrides.retain(|(d, _)| *d != dir);
        self.overrides.push((dir, perms));
        self.overrides
            .sort_by_key(|(d, _)| std::cmp::Reverse(d.components().count()));
        self
    }

    /// The permissions in force at `path`.
    pub fn at(&self, path: &VirtualPath) -> Permissions {
        self.overrides
            .iter()
            .find(|(dir, _)| path.starts_with(dir))
            .map(|(_, p)| *p)
            .unwrap_or(self.default)
    }

    /// Whether `perm` is granted at `path`.
    pub fn allows(&self, perm: Perm, path: &VirtualPath) -> bool {
        self.at(path).allows(perm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        let p = Permissions::parse("elradfmwMT").unwrap();
        assert_eq!(p, Permissions::ALL);
        assert_eq!(p.to_string(), "elradfmwMT");
        assert_eq!(Permissions::parse("elr").unwrap(), Permissions::READ_ONLY);
        assert_eq!(Permissions::parse("elx"), Err(UnknownPermission('x')));
    }

    #[test]
    fn letters_are_case_sensitive() {
        let p = Permissions::parse("m").unwrap();
        assert!(p.allows(Perm::Mkdir));
        assert!(!p.allows(Perm::Chmod));
    }

    #[test]
    fn deepest_override_wins() {
        let map = PermissionMap::uniform(Permissions::ALL)
            .with_override(
                VirtualPath::parse_absolute("/pub").unwrap(),
                Permissions::READ_ONLY,
            )
            .with_override(
                VirtualPath::parse_absolute("/pub/incoming").unwrap(),
                Permissions::parse("elw").unwrap(),
            );
        let at = |p: &str| map.at(&VirtualPath::parse_absolute(p).unwrap());
        assert_eq!(at("/home"), Permissions::ALL);
        assert_eq!(at("/pub"), Permissions::READ_ONLY);
        assert_eq!(at("/pub/file"), Permissions::READ_ONLY);
        assert_eq!(at("/pub/incoming/x"), Permissions::parse("elw").unwrap());
        assert_eq!(at("/public"), Permissions::ALL);
    }
}
