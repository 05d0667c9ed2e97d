//! The info log as an operator reads it: every file operation, done, failed or refused, is one
//! line naming the command, the user, the client, the path and what happened.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

/// A control connection that reads whole (multi-line) replies, with EPSV data connections.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    addr: SocketAddr,
}

impl Client {
    fn login(addr: SocketAddr, user: &str, password: &str) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut client = Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            addr,
        };
        assert!(client.reply().starts_with("220"));
        client.ask(&format!("USER {user}"));
        let reply = client.ask(&format!("PASS {password}"));
        assert!(reply.starts_with("230"), "{reply}");
        client.ask("TYPE I");
        client
    }

    /// How the server's log names this client.
    fn name(&self) -> String {
        format!("client={}", self.writer.local_addr().unwrap())
    }

    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            assert!(
                self.reader.read_line(&mut line).unwrap() > 0,
                "closed: {all}"
            );
            all.push_str(&line);
            if line.len() >= 4 && line.as_bytes()[3] == b' ' {
                return all;
            }
        }
    }

    fn ask(&mut self, command: &str) -> String {
        self.writer
            .write_all(format!("{command}\r\n").as_bytes())
            .unwrap();
        self.reply()
    }

    fn data(&mut self) -> TcpStream {
        let reply = self.ask("EPSV");
        let port: u16 = reply
            .split("|||")
            .nth(1)
            .unwrap()
            .split('|')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        TcpStream::connect((self.addr.ip(), port)).unwrap()
    }

    /// A command with a data connection: its final reply.
    fn download(&mut self, command: &str) -> String {
        let mut data = self.data();
        let first = self.ask(command);
        if !first.starts_with("150") {
            return first;
        }
        let mut sink = Vec::new();
        data.read_to_end(&mut sink).unwrap();
        self.reply()
    }

    fn upload(&mut self, command: &str, bytes: &[u8]) -> String {
        let mut data = self.data();
        let first = self.ask(command);
        if !first.starts_with("150") {
            return first;
        }
        // An upload refused part way may close the connection before all bytes are sent.
        let _ = data.write_all(bytes);
        drop(data);
        self.reply()
    }
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("ftpgate.log")).unwrap_or_default()
}

/// The log line that contains every one of `parts`, once the daemon has written it.
fn line_with(dir: &Path, parts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = log_of(dir);
        if let Some(line) = log
            .lines()
            .find(|line| parts.iter().all(|part| line.contains(part)))
        {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no line with {parts:?} in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn info_log_says_who_did_what_where_and_how_it_ended() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join("d")).unwrap();
    std::fs::write(home.join(".hidden"), b"x").unwrap();
    let config = dir.path().join("ftpgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
max_file_size = 1000

[[users]]
name = "amy"
password_hash = "{amy}"
home = "home"

[[users]]
name = "rob"
password_hash = "{rob}"
home = "home"
permissions = "elr"
"#,
            amy = hash("amypw"),
            rob = hash("robpw"),
        ),
    )
    .unwrap();
    let (daemon, addr) = Daemon::start(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "info",
        ],
        &[],
    );
    let d = dir.path();

    let mut amy = Client::login(addr, "amy", "amypw");
    let amy_client = amy.name();
    let who = ["login{user=\"amy\"}", amy_client.as_str()];
    assert!(amy.upload("STOR f.txt", b"0123456789").starts_with("226"));
    assert!(amy.upload("APPE f.txt", b"abc").starts_with("226"));
    assert!(amy.download("NLST").starts_with("226"));
    assert!(amy.download("MLSD").starts_with("226"));
    assert!(amy.download("LIST -a").starts_with("226"));
    assert!(amy.ask("MKD d").starts_with("550"));
    assert!(amy.ask("MKD f.txt/sub").starts_with("550"));
    assert!(amy.ask("DELE missing.txt").starts_with("550"));
    assert!(
        amy.upload("STOR big.bin", &vec![7u8; 64 * 1024])
            .starts_with("552")
    );
    assert!(amy.ask("SITE CHMOD 644 f.txt").starts_with("200"));
    assert!(amy.ask("RNFR f.txt").starts_with("350"));
    assert!(amy.ask("RNTO g.txt").starts_with("250"));

    let mut rob = Client::login(addr, "rob", "robpw");
    let rob_client = rob.name();
    assert!(rob.upload("STOR ro.txt", b"no").starts_with("550"));
    assert!(rob.ask("DELE g.txt").starts_with("550"));

    let transfer = |command: &str, path: &str| {
        let command = format!("command=\"{command}\"");
        let path = format!("path=\"{path}\"");
        let line = line_with(
            d,
            &[
                &who[..],
                &[&command, &path, "result=\"ok\"", "bytes=", "secs="],
            ]
            .concat(),
        );
        assert!(line.contains(" INFO "), "{line}");
        line
    };
    transfer("STOR", "/f.txt");
    transfer("APPE", "/f.txt");
    transfer("NLST", "/");
    transfer("MLSD", "/");
    transfer("LIST", "/");

    let failed = |parts: &[&str]| line_with(d, &[&who[..], parts, &["result=\"failed\""]].concat());
    let mkd = failed(&["command=\"MKD\"", "path=\"/d\"", "code=550", "File exists"]);
    assert!(mkd.contains(" INFO "), "{mkd}");
    // The storage's own error comes with the path it concerns.
    failed(&[
        "command=\"MKD\"",
        "path=\"/f.txt/sub\"",
        "code=550",
        "error=",
        "os error",
    ]);
    failed(&[
        "command=\"DELE\"",
        "path=\"/missing.txt\"",
        "code=550",
        "No such file or directory",
    ]);
    failed(&["command=\"STOR\"", "path=\"/big.bin\"", "code=552"]);
    // The engine's warning about the refused upload names the session and the file.
    line_with(
        d,
        &[
            " WARN ",
            who[0],
            who[1],
            "transfer{command=\"STOR\" path=\"/big.bin\"}",
        ],
    );
    line_with(
        d,
        &[
            &who[..],
            &[
                "command=\"SITE CHMOD\"",
                "path=\"/f.txt\"",
                "mode=0644",
                "result=\"ok\"",
            ],
        ]
        .concat(),
    );
    line_with(
        d,
        &[
            &who[..],
            &[
                "command=\"RNTO\"",
                "path=\"/f.txt\"",
                "to=\"/g.txt\"",
                "result=\"ok\"",
            ],
        ]
        .concat(),
    );

    let rob_who = ["login{user=\"rob\"}", rob_client.as_str()];
    for (command, path) in [("STOR", "/ro.txt"), ("DELE", "/g.txt")] {
        let line = line_with(
            d,
            &[
                &rob_who[..],
                &[
                    &format!("command=\"{command}\""),
                    &format!("path=\"{path}\""),
                    "result=\"failed\"",
                    "code=550",
                    "Permission denied",
                ],
            ]
            .concat(),
        );
        assert!(line.contains(" INFO "), "{line}");
    }

    // Logins, good and bad, name the user and the client.
    line_with(d, &[amy_client.as_str(), "login", "user=\"amy\""]);
    let mut stranger = TcpStream::connect(addr).unwrap();
    let bad_client = format!("client={}", stranger.local_addr().unwrap());
    stranger.write_all(b"USER amy\r\nPASS wrong\r\n").unwrap();
    line_with(
        d,
        &[
            bad_client.as_str(),
            "login failed",
            "user=\"amy\"",
            " WARN ",
        ],
    );

    let log = log_of(d);
    for debug_form in [
        "Complete {",
        "Failed(",
        "Some(",
        "PermissionDenied",
        "NotFound",
    ] {
        assert!(
            !log.contains(debug_form),
            "{debug_form:?} in the log:\n{log}"
        );
    }
    drop((amy, rob, stranger));
    assert!(daemon.terminate().success());
}
