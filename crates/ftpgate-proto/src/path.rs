//! Client paths, normalised inside the user's root.
//!
//! A [`VirtualPath`] is always absolute, starts with `/`, has no empty, `.` or `..` components
//! and no trailing slash (except the root itself). `..` at the root stays at the root, so no
//! sequence of components can climb out. Backslash is an ordinary name character (as it is on
//! Unix), and nothing is percent-decoded, so `%2e%2e` is a name, not a parent. NUL and other
//! control characters are refused: they truncate names in C libraries and corrupt logs.

use std::fmt;

/// Why a client path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// The path holds a NUL byte or another control character.
    ControlCharacter,
    /// The path is empty where a name is required.
    Empty,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::ControlCharacter => {
                f.write_str("control characters are not allowed in names")
            }
            PathError::Empty => f.write_str("a file name is required"),
        }
    }
}

impl std::error::Error for PathError {}

/// Whether `c` may not appear in a name: NUL, C0 controls and DEL.
pub fn is_forbidden_char(c: char) -> bool {
    c.is_control()
}

/// A normalised absolute path inside a user's root.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VirtualPath(String);

impl VirtualPath {
    /// The root, `/`.
    pub fn root() -> Self {
        VirtualPath("/".to_string())
    }

    /// Resolves a client argument against this directory: absolute arguments start from the
    /// root, relative ones from `self`.
    pub fn resolve(&self, arg: &str) -> Result<VirtualPath, PathError> {
        if arg.chars().any(is_forbidden_char) {
            return Err(PathError::ControlCharacter);
        }
        let mut parts: Vec<&str> = if arg.starts_with('/') {
            Vec::new()
        } else {
            self.components().collect()
        };
        for part in arg.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                name => parts.push(name),
            }
        }
        Ok(Self::from_parts(&parts))
    }

    /// Parses an absolute path, normalising it (for configuration values such as
    /// per-directory permissions).
    pub fn parse_absolute(path: &str) -> Result<VirtualPath, PathError> {
        VirtualPath::root().resolve(path)
    }

    fn from_parts(parts: &[&str]) -> VirtualPath {
        let mut s = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum::<usize>().max(1));
        for part in parts {
            s.push('/');
            s.push_str(part);
        }
        if s.is_empty() {
            s.push('/');
        }
        VirtualPath(s)
    }

    /// The path as a string, starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path without its leading `/`: empty for the root. Backends join this to their root.
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The names along the path, root excluded.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// The last name, or `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        if self.is_root() {
            None
        } else {
            self.0.rsplit('/').next()
        }
    }

    /// The parent directory; the root is its own parent.
    pub fn parent(&self) -> VirtualPath {
        match self.0.rfind('/') {
            Some(0) | None => VirtualPath::root(),
            Some(i) => VirtualPath(self.0[..i].to_string()),
        }
    }

    /// This directory joined with one name (which must not contain `/`).
    pub fn join(&self, name: &str) -> VirtualPath {
        if self.is_root() {
            VirtualPath(format!("/{name}"))
        } else {
            VirtualPath(format!("{}/{name}", self.0))
        }
    }

    /// Whether `self` is `base` or lies beneath it, component-wise.
    pub fn starts_with(&self, base: &VirtualPath) -> bool {
        base.is_root()
            || self.0 == base.0
            || (self.0.starts_with(&base.0) && self.0.as_bytes().get(base.0.len()) == Some(&b'/'))
    }
}

impl fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Quotes a path for a 257 reply: RFC 959 appendix II doubles embedded quotes.
pub fn quote_for_257(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(dir: &str, arg: &str) -> String {
        VirtualPath::parse_absolute(dir)
            .unwrap()
            .resolve(arg)
            .unwrap()
            .to_string()
    }

    #[test]
    fn relative_and_absolute() {
        assert_eq!(at("/a/b", "c"), "/a/b/c");
        assert_eq!(at("/a/b", "/c"), "/c");
        assert_eq!(at("/", ""), "/");
        assert_eq!(at("/a", "."), "/a");
    }

    #[test]
    fn dot_dot_cannot_climb_above_root() {
        assert_eq!(at("/", ".."), "/");
        assert_eq!(at("/a", "../../../../etc/passwd"), "/etc/passwd");
        assert_eq!(at("/a/b", "../c"), "/a/c");
        assert_eq!(at("/", "/../../x"), "/x");
    }

    #[test]
    fn repeated_and_trailing_slashes_collapse() {
        assert_eq!(at("/", "//a///b//"), "/a/b");
    }

    #[test]
    fn backslash_and_encoded_dots_are_names() {
        assert_eq!(at("/", "..\\..\\etc"), "/..\\..\\etc");
        assert_eq!(at("/", "%2e%2e/x"), "/%2e%2e/x");
    }

    #[test]
    fn control_characters_are_refused() {
        let root = VirtualPath::root();
        assert_eq!(root.resolve("a\0b"), Err(PathError::ControlCharacter));
        assert_eq!(root.resolve("a\x1b[31m"), Err(PathError::ControlCharacter));
        assert_eq!(root.resolve("a\x7f"), Err(PathError::ControlCharacter));
    }

    #[test]
    fn names_with_spaces_quotes_and_utf8_survive() {
        assert_eq!(at("/", "my file \"q\" #1 %.txt"), "/my file \"q\" #1 %.txt");
        assert_eq!(at("/", "-dash"), "/-dash");
        assert_eq!(at("/", "Grüße/日本"), "/Grüße/日本");
    }

    #[test]
    fn parent_file_name_join() {
        let p = VirtualPath::parse_absolute("/a/b").unwrap();
        assert_eq!(p.parent().as_str(), "/a");
        assert_eq!(p.parent().parent().as_str(), "/");
        assert_eq!(VirtualPath::root().parent().as_str(), "/");
        assert_eq!(p.file_name(), Some("b"));
        assert_eq!(VirtualPath::root().file_name(), None);
        assert_eq!(VirtualPath::root().join("x").as_str(), "/x");
        assert_eq!(p.join("x").as_str(), "/a/b/x");
        assert_eq!(p.relative(), "a/b");
    }

    #[test]
    fn starts_with_is_component_wise() {
        let ab = VirtualPath::parse_absolute("/a/b").unwrap();
        assert!(ab.starts_with(&VirtualPath::parse_absolute("/a").unwrap()));
        assert!(ab.starts_with(&VirtualPath::root()));
        assert!(
            !VirtualPath::parse_absolute("/ab")
                .unwrap()
                .starts_with(&VirtualPath::parse_absolute("/a").unwrap())
        );
    }

    #[test]
    fn quote_doubles_quotes() {
        assert_eq!(quote_for_257("/a\"b"), "\"/a\"\"b\"");
    }

    #[test]
    fn resolve_never_leaves_root_for_any_input() {
        // A small exhaustive walk over dangerous pieces: every result is absolute and normalised.
        let pieces = ["..", ".", "", "a", "/", "\\", "..."];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let arg = format!("{a}/{b}/{c}");
                    let p = VirtualPath::parse_absolute("/x/y")
                        .unwrap()
                        .resolve(&arg)
                        .unwrap();
                    assert!(p.as_str().starts_with('/'));
                    assert!(
                        p.components()
                            .all(|c| c != ".." && c != "." && !c.is_empty()),
                        "{arg} -> {p}"
                    );
                }
            }
        }
    }
}
