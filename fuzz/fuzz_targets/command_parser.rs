//! `command::parse_line` on arbitrary UTF-8.
//!
//! Checks that parsing never panics and that
//! - every path or name argument of a parsed command is free of control characters (NUL, C0,
//!   DEL, C1), and path arguments that are required are not empty;
//! - the spec returned is the one for the verb given (any case), and the verb is case-insensitive;
//! - errors are syntax (500, 501), not-implemented-for-parameter (504) or RFC 2428/2228
//!   refusals (522, 536), and encode as one well-formed reply line;
//! - a password never shows in `Debug` output.

#![no_main]

use ftpgate_proto::command::{Command, parse_line};
use libfuzzer_sys::fuzz_target;

fn clean(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

fn assert_path(s: &str, required: bool) {
    assert!(clean(s), "control character in path argument {s:?}");
    if required {
        assert!(!s.is_empty(), "empty required path");
    }
}

fn check_command(command: &Command) {
    match command {
        Command::User(name) => assert_path(name, true),
        Command::Cwd(p)
        | Command::Mkd(p)
        | Command::Rmd(p)
        | Command::Dele(p)
        | Command::Rnfr(p)
        | Command::Rnto(p)
        | Command::Retr(p)
        | Command::Stor(p)
        | Command::Appe(p)
        | Command::Size(p)
        | Command::Mdtm(p) => assert_path(p, true),
        Command::Mfmt { path, .. } => assert_path(path, true),
        Command::Stou(p) | Command::Mlsd(p) | Command::Mlst(p) | Command::Stat(p) => {
            if let Some(p) = p {
                assert_path(p, true);
            }
        }
        Command::List(args) | Command::Nlst(args) => {
            if let Some(p) = &args.path {
                assert_path(p, true);
            }
        }
        Command::Clnt(name) => {
            assert!(clean(name));
            assert!(name.chars().count() <= 128);
        }
        Command::Pass(password) => {
            assert_eq!(format!("{command:?}"), "Pass(****)");
            assert_eq!(format!("{password}"), "****");
        }
        Command::Port(addr) => assert!(format!("{addr}").parse::<std::net::SocketAddrV4>().is_ok()),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let result = parse_line(line);
    let verb = line.split_once(' ').map_or(line, |(v, _)| v);
    match &result {
        Ok((spec, command)) => {
            assert!(spec.verb.eq_ignore_ascii_case(verb));
            check_command(command);
        }
        Err(reply) => {
            let code = reply.code.number();
            assert!(
                matches!(code, 500 | 501 | 504 | 522 | 536),
                "unexpected error code {code} for {line:?}"
            );
            let wire = reply.encode();
            assert!(wire.ends_with(b"\r\n"));
            let body = &wire[..wire.len() - 2];
            assert!(!body.contains(&b'\r') && !body.contains(&b'\n'));
            assert!(
                std::str::from_utf8(body).is_ok_and(clean),
                "control character in error reply {body:?}"
            );
        }
    }
    // Verbs are case-insensitive: the same line with the verb in upper case parses the same.
    let upper = format!("{}{}", verb.to_ascii_uppercase(), &line[verb.len()..]);
    let again = parse_line(&upper);
    match (&result, &again) {
        (Ok((a, ca)), Ok((b, cb))) => {
            assert!(std::ptr::eq(*a, *b));
            assert_eq!(ca, cb);
        }
        (Err(a), Err(b)) => assert_eq!(a.code, b.code),
        _ => panic!("verb case changed the outcome of {line:?}"),
    }
});
