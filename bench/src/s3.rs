//! The `s3` comparison: one large file up and down through ftpgate to a real S3 store (Garage,
//! started here), next to rclone talking to the same store directly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ftpgate_test_support::garage;

/// A running ftpgate daemon.
struct Daemon {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn start(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Daemon> {
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines.next().context("ftpgate exited before listening")??;
            if let Some(rest) = line.strip_prefix("ftpgate: listening on ") {
                break rest
                    .split_whitespace()
                    .next()
                    .context("bad listening line")?
                    .parse()?;
            }
        };
        Ok(Daemon { child, addr })
    }

    /// Peak resident memory (VmHWM) in MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    }
}

/// A minimal FTP client that is never the bottleneck: one control connection, large buffers.
struct Ftp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Ftp {
    fn login(addr: SocketAddr, user: &str, password: &str) -> Result<Ftp> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
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

    fn reply(&mut self) -> Result<String> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        Ok(line)
    }

    fn expect(&mut self, command: &str, code: &str) -> Result<String> {
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
        Ok(TcpStream::connect((self.writer.peer_addr()?.ip(), port))?)
    }

    fn stor(&mut self, name: &str, file: &Path) -> Result<Duration> {
        let mut data = self.data()?;
        let started = Instant::now();
        self.expect(&format!("STOR {name}"), "150")?;
        let mut source = std::fs::File::open(file)?;
        std::io::copy(&mut source, &mut data)?;
        drop(data);
        self.expect("", "226")?;
        Ok(started.elapsed())
    }

    fn retr(&mut self, name: &str) -> Result<(Duration, u64)> {
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
            total += n as u64;
        }
        self.expect("", "226")?;
        Ok((started.elapsed(), total))
    }
}

/// Runs rclone with a remote named `store` configured from the environment (no config file).
fn rclone(g: &garage::Garage, args: &[&str]) -> Result<Duration> {
    let started = Instant::now();
    let output = Command::new("rclone")
        .args(args)
        .args(["--config", "/dev/null"])
        .env_remove("AWS_CA_BUNDLE")
        .env("RCLONE_CONFIG_STORE_TYPE", "s3")
        .env("RCLONE_CONFIG_STORE_PROVIDER", "Other")
        .env("RCLONE_CONFIG_STORE_ENDPOINT", &g.endpoint)
        .env("RCLONE_CONFIG_STORE_REGION", &g.region)
        .env("RCLONE_CONFIG_STORE_ACCESS_KEY_ID", &g.access_key)
        .env("RCLONE_CONFIG_STORE_SECRET_ACCESS_KEY", &g.secret_key)
        .env("RCLONE_CONFIG_STORE_FORCE_PATH_STYLE", "true")
        .output()
        .context("rclone is not installed")?;
    if !output.status.success() {
        bail!(
            "rclone {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(started.elapsed())
}

fn mb_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}

/// Runs the comparison and writes its results under `results`.
pub(crate) fn run(size_mib: u64, ftpgate: &Path, results: &Path) -> Result<()> {
    let work = tempfile_dir()?;
    let file = work.join("payload.bin");
    let bytes = size_mib * 1024 * 1024;
    {
        // Incompressible content, written once, then read from the page cache by both clients.
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&file)?);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut block = vec![0u8; 1 << 20];
        for _ in 0..size_mib {
            for chunk in block.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
            }
            out.write_all(&block)?;
        }
        out.flush()?;
    }
    let g = garage::start();
    let remote = format!("store:{}", g.bucket);
    // ftpgate in front of the store.
    let root = format!("s3://{}/bench/", g.bucket);
    let daemon = Daemon::start(
        ftpgate,
        &[
            "--listen",
            "127.0.0.1:0",
            "--password",
            "bench",
            "--root",
            &root,
            "--s3-endpoint",
            &g.endpoint,
            "--s3-region",
            &g.region,
        ],
        &[
            ("AWS_ACCESS_KEY_ID", &g.access_key),
            ("AWS_SECRET_ACCESS_KEY", &g.secret_key),
            ("RUST_LOG", "warn"),
        ],
    )?;
    let mut ftp = Ftp::login(daemon.addr, "ftpgate", "bench")?;
    let stor = ftp.stor("payload.bin", &file)?;
    let (retr, got) = ftp.retr("payload.bin")?;
    if got != bytes {
        bail!("RETR returned {got} bytes, expected {bytes}");
    }
    let peak = daemon.peak_rss_mib();
    drop(daemon);
    // The same store, directly.
    let direct_up = rclone(
        &g,
        &[
            "copyto",
            file.to_str().context("path")?,
            &format!("{remote}/direct/payload.bin"),
        ],
    )?;
    let back = work.join("back.bin");
    let direct_down = rclone(
        &g,
        &[
            "copyto",
            &format!("{remote}/direct/payload.bin"),
            back.to_str().context("path")?,
        ],
    )?;
    let rows = [
        ("STOR (upload)", mb_s(bytes, stor), mb_s(bytes, direct_up)),
        (
            "RETR (download)",
            mb_s(bytes, retr),
            mb_s(bytes, direct_down),
        ),
    ];
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%dT%H:%M:%SZ")
        .output()?;
    let date = String::from_utf8_lossy(&date.stdout).trim().to_string();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut md = format!(
        "## S3: {size_mib} MiB through ftpgate vs direct (rclone), Garage on loopback\n\n{date}, {cpus} CPUs\n\n\
         | transfer | ftpgate MB/s | direct rclone MB/s | ratio |\n|---|---:|---:|---:|\n"
    );
    for (name, ours, direct) in rows {
        md.push_str(&format!(
            "| {name} | {ours:.0} | {direct:.0} | {:.2} |\n",
            ours / direct
        ));
    }
    md.push_str(&format!(
        "\nftpgate peak RSS during both transfers: {peak:.1} MiB\n"
    ));
    println!("{md}");
    std::fs::create_dir_all(results)?;
    let stamp = date.replace(':', "");
    std::fs::write(results.join(format!("s3-{stamp}.md")), &md)?;
    let json = format!(
        "{{\"scenario\":\"s3\",\"date\":\"{date}\",\"cpus\":{cpus},\"size_mib\":{size_mib},\
         \"ftpgate_stor_mb_s\":{:.1},\"ftpgate_retr_mb_s\":{:.1},\"direct_upload_mb_s\":{:.1},\
         \"direct_download_mb_s\":{:.1},\"ftpgate_peak_rss_mib\":{peak:.1}}}\n",
        rows[0].1, rows[1].1, rows[0].2, rows[1].2
    );
    std::fs::write(results.join(format!("s3-{stamp}.json")), json)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ftpgate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
