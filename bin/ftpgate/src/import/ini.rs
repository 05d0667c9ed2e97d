//! A reader for the INI files of Python's `configparser` (the format of COS FTP Server's
//! `conf/vsftpd.conf`), keeping each key's line number.
//!
//! Hand-written rather than taken from `rust-ini` or `configparser`: both return sections of
//! key/value maps that forget where a key was written, so an unknown or bad key could not be
//! reported with its line, which is what a migration tool owes its user. The subset read is
//! `configparser`'s defaults: `[SECTION]` headers, `key = value` or `key: value` with
//! whitespace around either trimmed, whole-line comments starting with `#` or `;`, blank lines,
//! keys case-insensitive. Continuation lines (indented) are refused: COS FTP Server's values
//! are single words.

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IniEntry {
    /// The section, as written (`COS_ACCOUNT`).
    pub(crate) section: String,
    /// The key, lowercased as `configparser` does.
    pub(crate) key: String,
    pub(crate) value: String,
    /// 1-based.
    pub(crate) line: usize,
}

/// The entries of `text` in order, or every malformed line as `line N: what`.
pub(crate) fn parse(text: &str) -> Result<Vec<IniEntry>, Vec<String>> {
    let mut entries: Vec<IniEntry> = Vec::new();
    let mut errors = Vec::new();
    let mut section: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            errors.push(format!(
                "line {line}: indented line (a continuation of the previous value is not supported): {trimmed:?}"
            ));
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            match rest.strip_suffix(']') {
                Some(name) if !name.trim().is_empty() => section = Some(name.trim().to_string()),
                _ => errors.push(format!("line {line}: bad section header {trimmed:?}")),
            }
            continue;
        }
        let Some(at) = trimmed.find(['=', ':']) else {
            errors.push(format!(
                "line {line}: expected `key = value` or `[SECTION]`, got {trimmed:?}"
            ));
            continue;
        };
        let key = trimmed[..at].trim().to_ascii_lowercase();
        let value = trimmed[at + 1..].trim().to_string();
        let Some(section) = &section else {
            errors.push(format!("line {line}: key {key:?} before any [SECTION]"));
            continue;
        };
        if key.is_empty() {
            errors.push(format!("line {line}: empty key in {trimmed:?}"));
            continue;
        }
        if let Some(first) = entries
            .iter()
            .find(|e| e.section.eq_ignore_ascii_case(section) && e.key == key)
        {
            errors.push(format!(
                "line {line}: [{section}] {key} is set twice (first on line {})",
                first.line
            ));
            continue;
        }
        entries.push(IniEntry {
            section: section.clone(),
            key,
            value,
            line,
        });
    }
    if errors.is_empty() {
        Ok(entries)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_configparser_syntax_with_line_numbers() {
        let text = "# comment\n[A]\nkey = v 1\n; other\nOther:x\n\n[B]\nempty =\n";
        let entries = parse(text).unwrap();
        let got: Vec<_> = entries
            .iter()
            .map(|e| (e.section.as_str(), e.key.as_str(), e.value.as_str(), e.line))
            .collect();
        assert_eq!(
            got,
            [
                ("A", "key", "v 1", 3),
                ("A", "other", "x", 5),
                ("B", "empty", "", 8)
            ]
        );
    }

    #[test]
    fn malformed_lines_are_all_reported_by_number() {
        let text = "k = 1\n[A]\njust words\n[B\n  indented\nk = 1\nK = 2\n";
        let errors = parse(text).unwrap_err();
        assert_eq!(errors.len(), 5, "{errors:?}");
        for (error, line) in errors.iter().zip([1, 3, 4, 5, 7]) {
            assert!(error.starts_with(&format!("line {line}:")), "{error}");
        }
        assert!(errors[4].contains("first on line 6"), "{}", errors[4]);
    }
}
