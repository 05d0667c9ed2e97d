//! `VirtualPath::resolve`, from the root and from an arbitrary normalised working directory.
//!
//! Checks that every result
//! - starts with `/`, has no empty, `.` or `..` component and no trailing slash (but the root);
//! - is a fixed point: resolving its string again, from the root or from any directory, gives
//!   the same path;
//! - never leaves the root: joined onto a real directory, its relative form is made of plain
//!   names only (no `..`, no root, no `.`), so a backend cannot be walked out of its root;
//! - agrees with resolving `cwd + "/" + arg` from the root, for relative arguments;
//! - stays under the working directory when the argument is relative and has no `..`;
//! - is consistent with `parent`, `file_name`, `join`, `components` and `starts_with`.
//!
//! Arguments with a control character must be refused, all others accepted.

#![no_main]

use std::path::{Component, Path};

use arbitrary::Arbitrary;
use ftpgate_proto::path::{PathError, VirtualPath};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    cwd: String,
    arg: String,
}

fn check_normal(p: &VirtualPath) {
    let s = p.as_str();
    assert!(s.starts_with('/'), "{s:?} is not absolute");
    assert!(!s.contains("//"), "{s:?} has an empty component");
    assert!(p.is_root() == (s == "/"));
    if !p.is_root() {
        assert!(!s.ends_with('/'), "{s:?} has a trailing slash");
    }
    for c in s[1..].split('/').filter(|_| !p.is_root()) {
        assert!(
            !c.is_empty() && c != "." && c != "..",
            "{s:?} has component {c:?}"
        );
        assert!(!c.chars().any(char::is_control));
    }
    assert_eq!(p.relative(), &s[1..]);
    assert_eq!(
        p.components().count(),
        if p.is_root() {
            0
        } else {
            s.matches('/').count()
        }
    );

    // Never leaves the root on a real file system.
    let jail = Path::new("/srv/jail");
    let real = jail.join(p.relative());
    assert!(real.starts_with(jail), "{s:?} escapes to {real:?}");
    for c in Path::new(p.relative()).components() {
        assert!(matches!(c, Component::Normal(_)), "{s:?} has {c:?} on disk");
    }

    // Fixed point, from the root and from itself.
    let root = VirtualPath::root();
    assert_eq!(root.resolve(s).as_ref(), Ok(p));
    assert_eq!(p.resolve(s).as_ref(), Ok(p));
    assert_eq!(VirtualPath::parse_absolute(s).as_ref(), Ok(p));
    assert_eq!(p.resolve("").as_ref(), Ok(p));
    assert_eq!(p.resolve(".").as_ref(), Ok(p));
    assert!(p.starts_with(&root));
    assert!(p.starts_with(p));

    // Parent, name and join agree.
    let parent = p.parent();
    assert_eq!(p.resolve("..").as_ref(), Ok(&parent));
    match p.file_name() {
        None => {
            assert!(p.is_root());
            assert!(parent.is_root());
        }
        Some(name) => {
            assert!(!name.is_empty() && !name.contains('/'));
            assert_eq!(&parent.join(name), p);
            assert!(p.starts_with(&parent));
            assert!(!parent.starts_with(p));
            assert_eq!(parent.components().count() + 1, p.components().count());
        }
    }
}

fuzz_target!(|input: Input| {
    let root = VirtualPath::root();
    let cwd = match root.resolve(&input.cwd) {
        Ok(cwd) => cwd,
        Err(e) => {
            assert_eq!(e, PathError::ControlCharacter);
            assert!(input.cwd.chars().any(char::is_control));
            root.clone()
        }
    };
    check_normal(&cwd);

    let resolved = cwd.resolve(&input.arg);
    if input.arg.chars().any(char::is_control) {
        assert_eq!(resolved, Err(PathError::ControlCharacter));
        return;
    }
    let p = resolved.expect("an argument without control characters is accepted");
    check_normal(&p);

    let from_root = root
        .resolve(&input.arg)
        .expect("accepted from the root too");
    check_normal(&from_root);
    if input.arg.starts_with('/') {
        // Absolute arguments ignore the working directory.
        assert_eq!(p, from_root);
    } else {
        assert_eq!(
            root.resolve(&format!("{}/{}", cwd.as_str(), input.arg))
                .as_ref(),
            Ok(&p)
        );
        if !input.arg.split('/').any(|c| c == "..") {
            assert!(p.starts_with(&cwd), "{p:?} is not under {cwd:?}");
        }
    }
});
