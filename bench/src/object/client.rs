//! A minimal blocking FTP client that is never the bottleneck: one control connection, EPSV
//! data connections, large buffers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub(crate) struct Ftp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Ftp {
    pub(crate) fn login(addr: SocketAddr, user: &str, password: &str) -> Result<Ftp> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(600)))?;
        let mut ftp = Ftp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        ftp.expect("", "220")?;
        ftp.expect(&format!("USER {user}"), "331")?;
        ftp.expect(&format!("PASS {password}"), "230")?;
        ftp.expect("TYPE I", "200")?;
        Ok(ftp)
    }

    /// One whole reply (multi-line replies read to their last line).
    fn reply(&mut self) -> Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            bail!("the server closed the control connection");
        }
        if line.len() > 3 && line.as_bytes()[3] == b'-' {
            let code = line[..3].to_string();
            loop {
                let mut next = String::new();
                if self.reader.read_line(&mut next)? == 0 {
                    bail!("the server closed the control connection");
                }
                let last = next.starts_with(&code) && next.as_bytes().get(3) == Some(&b' ');
                line.push_str(&next);
                if last {
                    break;
                }
            }
        }
        Ok(line)
    }

    pub(crate) fn expect(&mut self, command: &str, code: &str) -> Result<String> {
        if !command.is_empty() {
            self.writer.write_all(format!("{command}\r\n").as_bytes())?;
        }
        let reply = self.reply()?;
        if !reply.starts_with(code) {
            bail!("{command:?}: expected {code}, got {reply:?}");
        }
        Ok(reply)
    }

    fn data(&mut self) -> Result<TcpStream> {
        let reply = self.expect("EPSV", "229")?;
        let port: u16 = reply
            .split("|||")
            .nth(1)
            .and_then(|r| r.split('|').next())
            .context("bad EPSV reply")?
            .parse()?;
        let stream = TcpStream::connect((self.writer.peer_addr()?.ip(), port))?;
        stream.set_read_timeout(Some(Duration::from_secs(600)))?;
        Ok(stream)
    }

    /// STOR from `source`; the time from the command to the 226.
    pub(crate) fn stor(&mut self, name: &str, source: &mut dyn Read) -> Result<Duration> {
        let mut data = self.data()?;
        let started = Instant::now();
        self.expect(&format!("STOR {name}"), "150")?;
        std::io::copy(source, &mut data)?;
        drop(data);
        self.expect("", "226")?;
        Ok(started.elapsed())
    }

    /// STOR of `bytes`, written whole.
    pub(crate) fn stor_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<Duration> {
        let mut source = bytes;
        self.stor(name, &mut source)
    }

    /// Starts a STOR (after `REST offset` when given) and returns its data connection with
    /// the 150 read; the caller writes, then calls [`Ftp::finish`] or drops the connection.
    pub(crate) fn stor_start(&mut self, name: &str, offset: Option<u64>) -> Result<TcpStream> {
        let data = self.data()?;
        if let Some(offset) = offset {
            self.expect(&format!("REST {offset}"), "350")?;
        }
        self.expect(&format!("STOR {name}"), "150")?;
        Ok(data)
    }

    /// Closes a transfer's data connection and reads its final reply.
    pub(crate) fn finish(&mut self, data: TcpStream, code: &str) -> Result<String> {
        drop(data);
        self.expect("", code)
    }

    /// RETR into `sink` (or discarded); the time and the byte count.
    pub(crate) fn retr(
        &mut self,
        name: &str,
        mut sink: Option<&mut Vec<u8>>,
    ) -> Result<(Duration, u64)> {
        let mut data = self.data()?;
        let started = Instant::now();
        self.expect(&format!("RETR {name}"), "150")?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = data.read(&mut buf)?;
            if n == 0 {
                break;
            }
            if let Some(sink) = sink.as_deref_mut() {
                sink.extend_from_slice(&buf[..n]);
            }
            total += n as u64;
        }
        self.expect("", "226")?;
        Ok((started.elapsed(), total))
    }

    /// A listing command (`LIST`, `MLSD`, `NLST`) of `path`: its time and line count.
    pub(crate) fn listing(&mut self, command: &str, path: &str) -> Result<(Duration, usize)> {
        let data = self.data()?;
        let started = Instant::now();
        self.expect(&format!("{command} {path}"), "150")?;
        let mut lines = 0;
        let mut reader = BufReader::with_capacity(1 << 20, data);
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            lines += 1;
        }
        self.expect("", "226")?;
        Ok((started.elapsed(), lines))
    }

    /// SIZE of `name`.
    pub(crate) fn size(&mut self, name: &str) -> Result<u64> {
        let reply = self.expect(&format!("SIZE {name}"), "213")?;
        reply
            .get(4..)
            .map(str::trim)
            .context("bad SIZE reply")?
            .parse()
            .context("bad SIZE reply")
    }
}
