//! `ftpgate status` and `ftpgate healthcheck`: the admin listener's client side, for a
//! terminal and for container health checks. One HTTP/1 request with hyper's client
//! connection over a TCP stream (plain HTTP: the admin listener speaks nothing else).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{AUTHORIZATION, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use url::Url;

use crate::config::ConfigFile;

/// The default admin address (the example config's).
pub(crate) const DEFAULT_URL: &str = "http://127.0.0.1:9100";

/// GETs `path` on the admin listener at `base`: status and body.
pub(crate) fn get(base: &str, path: &str, token: Option<&str>) -> Result<(StatusCode, String)> {
    let url = Url::parse(base).with_context(|| format!("bad admin URL {base:?}"))?;
    if url.scheme() != "http" {
        bail!("admin URL {base:?}: only http:// is served");
    }
    let host = url
        .host_str()
        .ok_or_else(|| anyhow!("admin URL {base:?} has no host"))?
        .to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.clone(),
    };
    let connect_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let path = path.to_string();
    let token = token.map(str::to_string);
    runtime.block_on(async move {
        let request = async {
            let stream = tokio::net::TcpStream::connect((connect_host.as_str(), port))
                .await
                .with_context(|| format!("cannot connect to {base}"))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .context("HTTP handshake")?;
            tokio::spawn(conn);
            let mut req = Request::get(path.as_str()).header(HOST, authority.as_str());
            if let Some(token) = &token {
                req = req.header(AUTHORIZATION, format!("Bearer {token}"));
            }
            let response = sender
                .send_request(req.body(Empty::<Bytes>::new())?)
                .await
                .with_context(|| format!("GET {base}{path}"))?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>((status, String::from_utf8_lossy(&body).into_owned()))
        };
        tokio::time::timeout(Duration::from_secs(10), request)
            .await
            .map_err(|_| anyhow!("no answer from {base} within 10 s"))?
    })
}

fn human(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut n, mut i) = (n, 0);
    while n >= 1024.0 && i < UNITS.len() - 1 {
        n /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n:.0} {}", UNITS[i])
    } else {
        format!("{n:.1} {}", UNITS[i])
    }
}

/// The table `ftpgate status` prints, from `/api/sessions`'s document.
pub(crate) fn table(doc: &Value) -> String {
    let mut rows =
        vec![["ID", "USER", "CLIENT", "TLS", "SINCE", "LAST", "TRANSFER"].map(String::from)];
    let empty = Vec::new();
    for s in doc["sessions"].as_array().unwrap_or(&empty) {
        let tls = match (
            s["tls"]["control"].as_bool().unwrap_or(false),
            s["tls"]["data"].as_bool().unwrap_or(false),
        ) {
            (true, true) => "control+data",
            (true, false) => "control",
            (false, true) => "data",
            (false, false) => "-",
        };
        let transfer = match s.get("transfer").filter(|t| !t.is_null()) {
            Some(t) => {
                let bytes = t["bytes"].as_f64().unwrap_or(0.0);
                let amount = match t["size"].as_f64() {
                    Some(size) if size > 0.0 => format!(
                        "{} of {} ({:.0}%)",
                        human(bytes),
                        human(size),
                        100.0 * bytes / size
                    ),
                    _ => human(bytes),
                };
                format!(
                    "{} {} {} at {}/s",
                    t["command"].as_str().unwrap_or("?"),
                    t["path"].as_str().unwrap_or("?"),
                    amount,
                    human(t["rate"].as_f64().unwrap_or(0.0))
                )
            }
            None => String::new(),
        };
        rows.push([
            s["id"].to_string(),
            s["user"].as_str().unwrap_or("-").to_string(),
            s["client"].as_str().unwrap_or("?").to_string(),
            tls.to_string(),
            s["since"].as_str().unwrap_or("?").to_string(),
            s["last_command"].as_str().unwrap_or("-").to_string(),
            transfer,
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    let totals = &doc["totals"];
    out.push_str(&format!(
        "{} sessions, {} logged in, {} transfers, {}/s\n",
        totals["sessions"],
        totals["logged_in"],
        totals["transfers"],
        human(totals["rate"].as_f64().unwrap_or(0.0))
    ));
    out
}

/// Where the admin listener is, for `status` and `healthcheck`.
#[derive(clap::Args, Debug)]
pub(crate) struct AdminArgs {
    /// The admin listener's URL (default: the first `admin.listen` of --config, else
    /// http://127.0.0.1:9100).
    #[arg(long, value_name = "URL")]
    admin: Option<String>,
    /// The admin token (default: the config's `admin.token` or `admin.token_file`).
    #[arg(
        long,
        env = "FTPGATE_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// Take the admin address and token from this config file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
}

impl AdminArgs {
    /// The admin URL and token: the flags, else the config file's `[admin]`, else the default.
    pub(crate) fn resolve(&self) -> Result<(String, Option<String>)> {
        let mut url = self.admin.clone();
        let mut token = self.token.clone();
        if let Some(path) = &self.config {
            let file = ConfigFile::load(path)?;
            let (settings, _) = file.admin.build().context("admin")?;
            if let Some(settings) = settings {
                if url.is_none() {
                    url = settings.listen.first().map(|addr| {
                        let ip = match addr.ip() {
                            ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
                            ip if ip.is_unspecified() => "[::1]".to_string(),
                            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                            ip => ip.to_string(),
                        };
                        format!("http://{ip}:{}", addr.port())
                    });
                }
                if token.is_none() {
                    token = settings.token;
                }
            }
        }
        Ok((url.unwrap_or_else(|| DEFAULT_URL.to_string()), token))
    }
}

/// `ftpgate status`: the live sessions as a table (or the JSON).
pub(crate) fn status(admin: &AdminArgs, json: bool) -> Result<()> {
    let (url, token) = admin.resolve()?;
    let (status, body) = get(&url, "/api/sessions", token.as_deref())?;
    if status == hyper::StatusCode::UNAUTHORIZED {
        bail!("{url}: the admin token is missing or wrong (--token or FTPGATE_ADMIN_TOKEN)");
    }
    if !status.is_success() {
        bail!("{url}/api/sessions: HTTP {status}");
    }
    if json {
        println!("{body}");
    } else {
        let doc: serde_json::Value =
            serde_json::from_str(&body).with_context(|| format!("{url}/api/sessions: not JSON"))?;
        print!("{}", table(&doc));
    }
    Ok(())
}

/// `ftpgate healthcheck`: exit 0 if /healthz (or /readyz) answers 2xx.
pub(crate) fn healthcheck(admin: &AdminArgs, ready: bool) -> Result<()> {
    let (url, token) = admin.resolve()?;
    let path = if ready { "/readyz" } else { "/healthz" };
    let (status, body) = get(&url, path, token.as_deref())?;
    if !status.is_success() {
        bail!("{url}{path}: HTTP {status} {}", body.trim());
    }
    println!("{}", body.trim());
    Ok(())
}
