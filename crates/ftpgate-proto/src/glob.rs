//! Wildcards in the last name of a LIST or NLST argument (`NLST *.txt`, as `mget` and `mdelete`
//! send it): `*`, `?` and `[...]` classes with ranges and `!` or `^` negation.
//!
//! The cost is bounded: a pattern is at most [`MAX_PATTERN_LEN`] bytes with at most
//! [`MAX_STARS`] stars, and matching is the iterative two-pointer algorithm (on a mismatch only
//! the last star takes one more character), so one name costs at most O(name × pattern) steps,
//! with no recursion and no exponential backtracking. Slashes are not special: the engine
//! matches names within one directory, never walking into subdirectories.

/// Longest pattern accepted, in bytes (a name is at most 255 bytes on common file systems).
pub const MAX_PATTERN_LEN: usize = 255;
/// Most `*` in one pattern.
pub const MAX_STARS: usize = 16;

/// A pattern that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobError {
    /// Longer than [`MAX_PATTERN_LEN`].
    TooLong,
    /// More than [`MAX_STARS`] stars.
    TooManyStars,
}

impl std::fmt::Display for GlobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GlobError::TooLong => write!(f, "Pattern longer than {MAX_PATTERN_LEN} bytes"),
            GlobError::TooManyStars => write!(f, "Pattern with more than {MAX_STARS} '*'"),
        }
    }
}

impl std::error::Error for GlobError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `?`: any one character.
    Any,
    /// `*`: any run of characters.
    Star,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Char(p) => *p == c,
            Token::Any => true,
            Token::Star => false,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
            }
        }
    }
}

/// A compiled wildcard pattern for one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
    /// Whether the pattern starts with a literal `.` (only such patterns match hidden names).
    dot: bool,
}

/// A LIST or NLST argument whose last name is a pattern: the directory part is a path as
/// usual (wildcards there are ordinary characters), the last name selects entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPattern {
    /// The pattern for the names.
    pub glob: Glob,
    /// The directory part as the client wrote it (`sub/`, or empty), which NLST puts before
    /// each name so `mget` can retrieve it; LIST shows names alone.
    pub prefix: String,
}

impl ListPattern {
    /// The pattern of a LIST/NLST argument `arg` that resolved to a path whose last name is
    /// `file_name`: `Ok(None)` when that name has no wildcard, or when `arg` does not end in it
    /// (`*.d/..`).
    pub fn of_argument(
        arg: &str,
        file_name: Option<&str>,
    ) -> Result<Option<ListPattern>, GlobError> {
        let trimmed = arg.trim_end_matches('/');
        let (prefix, last) = match trimmed.rfind('/') {
            Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
            None => ("", trimmed),
        };
        if file_name != Some(last) {
            return Ok(None);
        }
        Ok(Glob::new(last)?.map(|glob| ListPattern {
            glob,
            prefix: prefix.to_string(),
        }))
    }
}

/// Whether `name` holds a wildcard character and is meant as a pattern.
pub fn has_wildcards(name: &str) -> bool {
    name.contains(['*', '?', '['])
}

impl Glob {
    /// Compiles `pattern`; `Ok(None)` when it has no wildcard (a plain name). A `[` without a
    /// closing `]` is an ordinary character.
    pub fn new(pattern: &str) -> Result<Option<Glob>, GlobError> {
        if !has_wildcards(pattern) {
            return Ok(None);
        }
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(GlobError::TooLong);
        }
        if pattern.matches('*').count() > MAX_STARS {
            return Err(GlobError::TooManyStars);
        }
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::with_capacity(chars.len());
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                // Consecutive stars are one star.
                '*' if tokens.last() == Some(&Token::Star) => i += 1,
                '*' => {
                    tokens.push(Token::Star);
                    i += 1;
                }
                '?' => {
                    tokens.push(Token::Any);
                    i += 1;
                }
                '[' => match class(&chars[i + 1..]) {
                    Some((token, used)) => {
                        tokens.push(token);
                        i += 1 + used;
                    }
                    None => {
                        tokens.push(Token::Char('['));
                        i += 1;
                    }
                },
                c => {
                    tokens.push(Token::Char(c));
                    i += 1;
                }
            }
        }
        if !tokens.iter().any(|t| !matches!(t, Token::Char(_))) {
            // Only an unclosed `[`: a plain name after all.
            return Ok(None);
        }
        Ok(Some(Glob {
            dot: pattern.starts_with('.'),
            tokens,
        }))
    }

    /// Whether the pattern starts with `.`, so it is meant to match hidden names.
    pub fn matches_hidden(&self) -> bool {
        self.dot
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let tokens = &self.tokens;
        let (mut t, mut n) = (0, 0);
        // After the last star seen: the token after it, and where in `name` its run ends.
        let mut star: Option<(usize, usize)> = None;
        loop {
            if let Some(token) = tokens.get(t) {
                if *token == Token::Star {
                    star = Some((t + 1, n));
                    t += 1;
                    continue;
                }
                if let Some(c) = name[n..].chars().next() {
                    if token.matches(c) {
                        t += 1;
                        n += c.len_utf8();
                        continue;
                    }
                }
            } else if n == name.len() {
                return true;
            }
            // A mismatch: the last star takes one more character, or there is no match.
            let Some((after, run_end)) = star else {
                return false;
            };
            let Some(c) = name[run_end..].chars().next() else {
                return false;
            };
            let run_end = run_end + c.len_utf8();
            star = Some((after, run_end));
            t = after;
            n = run_end;
        }
    }
}

/// The class starting after a `[`: its token and the characters it used (through `]`), or
/// `None` when no `]` closes it.
fn class(chars: &[char]) -> Option<(Token, usize)> {
    let mut i = 0;
    let negated = matches!(chars.first(), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = *chars.get(i)?;
        // A `]` first in the class is an ordinary member.
        if c == ']' && !first {
            return Some((Token::Class { negated, ranges }, i + 1));
        }
        first = false;
        match (chars.get(i + 1), chars.get(i + 2)) {
            (Some('-'), Some(&hi)) if hi != ']' => {
                ranges.push((c, hi));
                i += 3;
            }
            _ => {
                ranges.push((c, c));
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(p: &str) -> Glob {
        Glob::new(p).unwrap().unwrap()
    }

    #[test]
    fn plain_names_are_not_patterns() {
        assert_eq!(Glob::new("a.txt"), Ok(None));
        assert_eq!(Glob::new("a[b"), Ok(None));
        assert!(Glob::new("a[b]").unwrap().is_some());
    }

    #[test]
    fn stars_and_question_marks() {
        let g = glob("*.txt");
        assert!(g.matches("a.txt"));
        assert!(g.matches(".txt"));
        assert!(g.matches("a.b.txt"));
        assert!(!g.matches("a.txt.gz"));
        assert!(!g.matches("atxt"));
        assert!(glob("*").matches(""));
        assert!(glob("a*b*c").matches("abc"));
        assert!(glob("a*b*c").matches("axxbyybzc"));
        assert!(!glob("a*b*c").matches("axxbyybzcd"));
        assert!(glob("?.t?t").matches("a.txt"));
        assert!(!glob("?.txt").matches("ab.txt"));
        assert!(glob("**x").matches("x"));
        // Characters, not bytes.
        assert!(glob("?é?").matches("aéb"));
        assert!(glob("*é").matches("ééé"));
        assert!(!glob("?").matches("éé"));
    }

    #[test]
    fn classes_ranges_and_negation() {
        let g = glob("file[0-9].txt");
        assert!(g.matches("file7.txt"));
        assert!(!g.matches("filex.txt"));
        assert!(glob("[!a]*").matches("b"));
        assert!(!glob("[!a]*").matches("abc"));
        assert!(glob("[^a-c]").matches("d"));
        assert!(!glob("[^a-c]").matches("b"));
        assert!(glob("[]x]").matches("]"));
        assert!(glob("[a-]").matches("-"));
        assert!(glob("[abc]").matches("c"));
        assert!(!glob("[abc]").matches("d"));
        // An unclosed class is a literal `[`.
        assert!(glob("*[x").matches("a[x"));
    }

    #[test]
    fn hidden_names_need_a_leading_dot() {
        assert!(!glob("*").matches_hidden());
        assert!(glob(".*").matches_hidden());
    }

    #[test]
    fn pattern_of_an_argument() {
        let p = ListPattern::of_argument("sub/*.txt", Some("*.txt"))
            .unwrap()
            .unwrap();
        assert_eq!(p.prefix, "sub/");
        assert!(p.glob.matches("a.txt"));
        let p = ListPattern::of_argument("/a/b*/", Some("b*"))
            .unwrap()
            .unwrap();
        assert_eq!(p.prefix, "/a/");
        assert_eq!(
            ListPattern::of_argument("*.txt", Some("*.txt"))
                .unwrap()
                .unwrap()
                .prefix,
            ""
        );
        // The wildcard was in a directory name that `..` took away.
        assert_eq!(ListPattern::of_argument("*.d/..", Some("home")), Ok(None));
        assert_eq!(ListPattern::of_argument("a.txt", Some("a.txt")), Ok(None));
        assert_eq!(
            ListPattern::of_argument(&"*".repeat(20), Some(&"*".repeat(20))),
            Err(GlobError::TooManyStars)
        );
    }

    #[test]
    fn limits() {
        assert_eq!(Glob::new(&"*".repeat(17)), Err(GlobError::TooManyStars));
        assert!(Glob::new(&"*a".repeat(16)).unwrap().is_some());
        assert_eq!(
            Glob::new(&format!("*{}", "a".repeat(255))),
            Err(GlobError::TooLong)
        );
    }

    #[test]
    fn worst_case_is_polynomial() {
        // The classic exponential case for recursive matchers: many stars that all nearly match.
        let pattern = format!("{}b", "a*".repeat(16));
        let g = glob(&pattern);
        let name = "a".repeat(255);
        let started = std::time::Instant::now();
        for _ in 0..100 {
            assert!(!g.matches(&name));
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    /// A straightforward recursive matcher, to check the iterative one against.
    fn reference(tokens: &[Token], name: &[char]) -> bool {
        match tokens.split_first() {
            None => name.is_empty(),
            Some((Token::Star, rest)) => (0..=name.len()).any(|i| reference(rest, &name[i..])),
            Some((t, rest)) => name
                .split_first()
                .is_some_and(|(c, name)| t.matches(*c) && reference(rest, name)),
        }
    }

    #[test]
    fn agrees_with_a_recursive_matcher() {
        let patterns = [
            "*", "a*", "*a", "a*a", "*a*", "?a*", "[ab]*b", "*[!a]", "a?*?b", "*ab*ba*",
        ];
        let alphabet = ['a', 'b', 'c'];
        let mut names = vec![String::new()];
        for len in 1..=5 {
            let mut next = Vec::new();
            for n in names.iter().filter(|n| n.len() == len - 1) {
                for c in alphabet {
                    next.push(format!("{n}{c}"));
                }
            }
            names.extend(next);
        }
        for p in patterns {
            let g = glob(p);
            for name in &names {
                let chars: Vec<char> = name.chars().collect();
                assert_eq!(
                    g.matches(name),
                    reference(&g.tokens, &chars),
                    "{p} vs {name}"
                );
            }
        }
    }
}
