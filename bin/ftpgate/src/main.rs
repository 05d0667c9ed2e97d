//! `ftpgate`: the FTP server daemon.
//!
//! `ftpgate serve` runs the server from a TOML config and/or quick-start flags;
//! `ftpgate check-config FILE` validates a config; `ftpgate hash-password` prints a password
//! hash for the config; `ftpgate completions SHELL` and `ftpgate man` print shell completions
//! and the manual page.
//! hash for the config; `ftpgate status` and `ftpgate healthcheck` ask a running server's admin
//! listener; `ftpgate import cos-ftp FILE` turns another server's config into one.

mod admin;
mod cert_auth;
mod config;
mod events;
mod hooks;
mod import;
mod logging;
mod metrics;
mod settings;
mod shared_state;
mod storage;
mod tls;
mod transfer_log;

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser, Subcommand};
use ftpgate::{CancellationToken, ReloadHandle, Server, VirtualHost};
use ftpgate_auth_file::{UserEntry, hash_password};
use ftpgate_core::{PermissionMap, Permissions};
use ftpgate_storage_fs::remove_leftover_uploads;
use rand::Rng;
use rand::distributions::Alphanumeric;
use tracing::{error, info, warn};

use crate::config::{ConfigFile, S3Section, log_filter, parse_listen, parse_port_range};
use crate::settings::{Settings, create_homes, warn_unwritable_homes};

/// An FTP server for local disks, with per-user homes and permissions.
#[derive(Parser, Debug)]
#[command(name = "ftpgate", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server. With no config and no flags, serves ./data on 127.0.0.1:2121 as user
    /// "ftpgate" with a generated password, printed at start.
    Serve(Box<ServeArgs>),
    /// Validate a config file; names the bad key if there is one.
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
    },
    /// Print an argon2id hash of a password for the config's `password_hash`. Reads the
    /// password from --password, FTPGATE_PASSWORD, or the first line of standard input.
    HashPassword {
        /// The password to hash.
        #[arg(long, env = "FTPGATE_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Print a shell completion script: `ftpgate completions bash > /etc/bash_completion.d/ftpgate`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `ftpgate man | man -l -`.
    Man,
    /// Print the live sessions of a running server (from its admin listener).
    Status {
        #[command(flatten)]
        admin: admin::client::AdminArgs,
        /// Print the JSON of /api/sessions instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 if the server's admin listener answers /healthz (or /readyz with --ready), 1 if
    /// not: for container health checks.
    Healthcheck {
        #[command(flatten)]
        admin: admin::client::AdminArgs,
        /// Check readiness (/readyz: 503 while the server drains) instead of liveness.
        #[arg(long)]
        ready: bool,
    },
    /// Turn another FTP server's configuration into an ftpgate config (checked as
    /// check-config would; nothing is written if the input has a problem).
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Subcommand, Debug)]
enum ImportCommand {
    /// Tencent COS FTP Server's conf/vsftpd.conf (INI): prints the TOML, or writes it to -o.
    CosFtp {
        /// The COS FTP Server config file.
        file: PathBuf,
        /// Write the config here instead of standard output.
        #[arg(short = 'o', long, value_name = "OUT")]
        output: Option<PathBuf>,
        /// Reach the bucket through the S3 API at this URL (type = "s3"; e.g. COS's
        /// S3-compatible https://cos.REGION.myqcloud.com, which allows resumable uploads)
        /// instead of COS's native API.
        #[arg(long, value_name = "URL")]
        s3_endpoint: Option<String>,
    },
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// TOML config file. Flags below override it.
    #[arg(long, short = 'c', value_name = "FILE", env = "FTPGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Directory to serve for the quick-start user (created if missing; default ./data), or an
    /// S3 bucket and prefix as s3://BUCKET/PREFIX (with --s3-endpoint; credentials from
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX", env = "FTPGATE_ROOT")]
    root: Option<String>,
    /// S3 endpoint URL for an s3:// root, e.g. http://127.0.0.1:3900.
    #[arg(long, value_name = "URL", env = "FTPGATE_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// S3 region for an s3:// root (default us-east-1).
    #[arg(long, value_name = "REGION", env = "FTPGATE_S3_REGION")]
    s3_region: Option<String>,
    /// Address to listen on, e.g. 0.0.0.0:21 or [::]:21; repeat for several (default 127.0.0.1:2121).
    #[arg(
        long,
        value_name = "ADDR:PORT",
        env = "FTPGATE_LISTEN",
        value_delimiter = ','
    )]
    listen: Vec<String>,
    /// Quick-start user name (default "ftpgate").
    #[arg(long, value_name = "NAME", env = "FTPGATE_USER")]
    user: Option<String>,
    /// Quick-start user's password (default: generated and printed).
    #[arg(
        long,
        env = "FTPGATE_PASSWORD",
        hide_env_values = true,
        value_name = "PASS"
    )]
    password: Option<String>,
    /// Quick-start user's permissions, as pyftpdlib's letters elradfmwMT (default: all).
    #[arg(long, value_name = "LETTERS", env = "FTPGATE_PERMISSIONS")]
    permissions: Option<String>,
    /// Port range for passive data connections, e.g. 50000-50100.
    #[arg(long, value_name = "LO-HI", env = "FTPGATE_PASSIVE_PORTS")]
    passive_ports: Option<String>,
    /// Address announced in PASV replies (IPv4 or host name), for servers behind NAT.
    #[arg(long, value_name = "HOST", env = "FTPGATE_PUBLIC_HOST")]
    public_host: Option<String>,
    /// PEM certificate chain for FTPS (AUTH TLS on the plain listeners); reloaded on SIGHUP.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        env = "FTPGATE_TLS_CERT"
    )]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        env = "FTPGATE_TLS_KEY"
    )]
    tls_key: Option<PathBuf>,
    /// Generate a self-signed certificate at start (its fingerprint is printed).
    #[arg(long, conflicts_with = "tls_cert", env = "FTPGATE_TLS_SELF_SIGNED")]
    tls_self_signed: bool,
    /// Also listen for implicit FTPS (TLS from the first byte), e.g. 0.0.0.0:990; repeatable.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        env = "FTPGATE_IMPLICIT_LISTEN",
        value_delimiter = ','
    )]
    implicit_listen: Vec<String>,
    /// Require TLS: USER before AUTH TLS gets 530, transfers without PROT P get 521.
    #[arg(long, env = "FTPGATE_TLS_REQUIRED")]
    tls_required: bool,
    /// Serve the admin endpoints (health, readiness, metrics, sessions, status page) on this
    /// address, e.g. 127.0.0.1:9100; repeatable. Replaces `admin.listen` of the file.
    #[arg(long, value_name = "ADDR:PORT")]
    admin_listen: Vec<String>,
    /// Log level: error, warn, info, debug, trace or off (any case; err, warning, information
    /// too), or TARGET=LEVEL directives such as ftpgate=debug,info; RUST_LOG overrides it.
    #[arg(long, value_name = "LEVEL", env = "FTPGATE_LOG_LEVEL")]
    log_level: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The chain of causes on one line, never a backtrace (which `main` returning the
            // error would print when RUST_BACKTRACE is set).
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::CheckConfig { file: path } => {
            let file = ConfigFile::load(&path)?;
            let settings = build_settings(Some(&path), &file, None)?;
            for warning in &settings.warnings {
                eprintln!("warning: {warning}");
            }
            println!("{}: OK ({} users)", path.display(), file.users.len());
            Ok(())
        }
        Command::HashPassword { password } => {
            let password = match password {
                Some(p) => p,
                None => {
                    if std::io::stdin().is_terminal() {
                        eprintln!("Password (input is shown):");
                    }
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            if password.is_empty() {
                bail!("empty password");
            }
            println!("{}", hash_password(&password));
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "ftpgate",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(())
        }
        Command::Status { admin, json } => admin::client::status(&admin, json),
        Command::Healthcheck { admin, ready } => admin::client::healthcheck(&admin, ready),
        Command::Import(ImportCommand::CosFtp {
            file,
            output,
            s3_endpoint,
        }) => import::cos_ftp(
            &file,
            output.as_deref(),
            &import::ImportOptions { s3_endpoint },
        ),
    }
}

/// The settings of `file` (read from `path`, if any; `quick`'s user added), built and checked
/// by [`Settings::build`] for every command alike; errors name the file.
fn build_settings(
    path: Option<&Path>,
    file: &ConfigFile,
    quick: Option<&QuickStart>,
) -> Result<Settings> {
    let settings = Settings::build(file, quick.map(|q| &q.user));
    match path {
        Some(path) => settings.with_context(|| format!("invalid config {}", path.display())),
        None => settings,
    }
}

/// Puts the command-line flags that override the config file into `file` (again on each
/// reload, so the flags keep winning).
fn apply_flags(args: &ServeArgs, quick: Option<&QuickStart>, file: &mut ConfigFile) -> Result<()> {
    if let Some(level) = &args.log_level {
        log_filter(level).context("--log-level")?;
        file.log.level = level.clone();
    }
    // The passive range and public host flags take the file's place before it is checked
    // (port sharing in the file may rely on a range given by flag).
    if let Some(text) = &args.passive_ports {
        parse_port_range(text).context("--passive-ports")?;
        file.server.passive_ports = Some(text.clone());
    }
    if let Some(host) = &args.public_host {
        file.server.public_host = Some(host.clone());
    }
    if !args.listen.is_empty() {
        for text in &args.listen {
            parse_listen(text).context("--listen")?;
        }
        file.server.listen = args.listen.clone();
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        file.tls.cert = Some(cert.clone());
        file.tls.key = Some(key.clone());
        file.tls.self_signed = false;
    }
    if args.tls_self_signed {
        file.tls.self_signed = true;
        file.tls.cert = None;
        file.tls.key = None;
    }
    if args.tls_required {
        file.tls.required = true;
    }
    if !args.implicit_listen.is_empty() {
        file.tls.implicit_listen = args.implicit_listen.clone();
    }
    if !args.admin_listen.is_empty() {
        for text in &args.admin_listen {
            parse_listen(text).context("--admin-listen")?;
        }
        file.admin.listen = args.admin_listen.clone();
    }
    if let Some(s3) = quick.and_then(|q| q.s3.clone()) {
        file.storage.s3 = Some(s3);
    }
    Ok(())
}

/// The user of the quick-start flags, made once (a generated password stays the same across
/// reloads).
struct QuickStart {
    user: UserEntry,
    /// The `[storage.s3]` an `s3://` root needs.
    s3: Option<S3Section>,
    /// What to print once the settings are known to be good: the home, and the password if
    /// it was generated.
    announcement: Vec<String>,
}

impl QuickStart {
    /// The quick-start user, if the flags ask for one or the file has no users.
    fn from_flags(args: &ServeArgs, file: &ConfigFile) -> Result<Option<QuickStart>> {
        let no_users = file.users.is_empty() && !file.anonymous.as_ref().is_some_and(|a| a.enabled);
        if !(args.user.is_some() || args.password.is_some() || args.root.is_some() || no_users) {
            return Ok(None);
        }
        let name = args.user.clone().unwrap_or_else(|| "ftpgate".to_string());
        let root = args.root.clone().unwrap_or_else(|| "data".to_string());
        let mut s3_section = None;
        let home = if let Some(rest) = root.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let endpoint = args
                .s3_endpoint
                .clone()
                .or_else(|| file.storage.s3.as_ref().map(|s| s.endpoint.clone()));
            let Some(endpoint) = endpoint else {
                bail!("--root {root} needs --s3-endpoint (or a [storage.s3] section)");
            };
            let mut s3 = file
                .storage
                .s3
                .clone()
                .unwrap_or_else(|| S3Section::new(endpoint.clone(), bucket.to_string()));
            s3.endpoint = endpoint;
            s3.bucket = bucket.to_string();
            if let Some(region) = &args.s3_region {
                s3.region = region.clone();
            }
            s3_section = Some(s3);
            format!("s3://{bucket}/{prefix}")
        } else {
            let dir = PathBuf::from(&root);
            if dir.exists() && !dir.is_dir() {
                bail!("--root {root}: not a directory");
            }
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("--root {root}: cannot create the directory"))?;
            dir.canonicalize()
                .with_context(|| format!("--root {root}: cannot open"))?
                .to_string_lossy()
                .into_owned()
        };
        let permissions = match &args.permissions {
            Some(letters) => Permissions::parse(letters).context("--permissions")?,
            None => Permissions::ALL,
        };
        let (password, generated) = match &args.password {
            Some(p) => (p.clone(), false),
            None => (
                rand::thread_rng()
                    .sample_iter(&Alphanumeric)
                    .take(16)
                    .map(char::from)
                    .collect(),
                true,
            ),
        };
        let announcement = vec![
            format!("ftpgate: serving {home} as user {name:?} ({permissions})"),
            if generated {
                format!("ftpgate: password for {name:?}: {password}")
            } else {
                format!("ftpgate: password for {name:?} as given")
            },
        ];
        Ok(Some(QuickStart {
            announcement,
            user: UserEntry {
                name,
                password_hash: hash_password(&password),
                home,
                permissions: PermissionMap::uniform(permissions),
                tls_required: false,
                quota_bytes: None,
                quota_files: None,
                limits: Default::default(),
            },
            s3: s3_section,
        }))
    }
}

/// The engine's server for `settings` (`tls` and `implicit_tls_listen` are the running ones),
/// and the cleanup tasks of its object stores.
fn engine_server(settings: Settings) -> (Server, Vec<tokio::task::JoinHandle<()>>) {
    let mut cleanups = settings.backends.spawn_cleanup();
    let mut server = Server::new(settings.server, settings.auth, Arc::new(settings.backends));
    for host in settings.hosts {
        cleanups.extend(host.backends.spawn_cleanup());
        server = server.with_virtual_host(
            &host.name,
            VirtualHost {
                auth: Arc::new(host.auth),
                storage: Arc::new(host.backends),
                banner: host.banner,
            },
        );
    }
    (server, cleanups)
}

fn serve(args: ServeArgs) -> Result<()> {
    let mut file = match &args.config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    apply_flags(&args, None, &mut file)?;
    let quick = QuickStart::from_flags(&args, &file)?;
    apply_flags(&args, quick.as_ref(), &mut file)?;
    let mut settings = build_settings(args.config.as_deref(), &file, quick.as_ref())?;
    let logging = logging::init(&file.log, std::mem::take(&mut settings.log_filter))?;
    for line in quick.iter().flat_map(|q| &q.announcement) {
        println!("{line}");
    }
    for warning in &settings.warnings {
        warn!("{warning}");
    }
    create_homes(&settings.homes)?;

    let tls = settings.tls.take();
    let certs = tls.as_ref().map(|t| t.certs.clone());
    if let Some(tls) = tls {
        let kind = if tls.self_signed {
            " (self-signed)"
        } else {
            ""
        };
        println!(
            "ftpgate: TLS certificate{kind} SHA-256 fingerprint: {}",
            tls.certs.fingerprint()
        );
        settings.server.implicit_tls_listen = tls.implicit_listen;
        settings.server.tls = Some(tls.config);
    }
    let explicit = if settings.server.tls.is_some() {
        " (FTP and explicit FTPS)"
    } else {
        " (FTP)"
    };

    // Upload files older than this are leftovers of an earlier run. File systems stamp files
    // with a coarse clock (up to a scheduler tick behind `SystemTime::now`), so the start is
    // taken a little early: a file made just after the start is never taken for a leftover.
    let started = std::time::SystemTime::now() - std::time::Duration::from_millis(50);
    let homes = std::mem::take(&mut settings.homes);
    let admin_settings = settings.admin.take();
    let state_settings = settings.state.take();
    let run_as = file.server.run_as.clone();
    let log_reopener = logging.reopener();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut reloader = Reloader {
            tls: settings.server.tls.clone(),
            implicit_tls_listen: settings.server.implicit_tls_listen.clone(),
            started: file,
            args,
            quick,
            handle: None,
            cleanups: Vec::new(),
        };
        let (server, cleanups) = engine_server(settings);
        reloader.cleanups = cleanups;
        let transfer_log = match &reloader.started.log.transfer_log {
            Some(path) => Some(
                transfer_log::TransferLog::start(path.clone(), reloader.started.log.transfer_log_format)
                    .with_context(|| format!("log.transfer_log: cannot open {}", path.display()))?,
            ),
            None => None,
        };
        let hooks = hooks::Hooks::start(&reloader.started.hooks)?;
        let reopen = Reopen {
            logging: log_reopener,
            transfer_log: transfer_log.clone(),
        };
        // Metrics are always counted; the admin listener serves them when it is on.
        let (registry, engine_metrics) = metrics::registry();
        let server = match &state_settings {
            Some(state) => {
                info!(redis = %state.shown, prefix = %state.key_prefix, "failed logins, bans and quota usage are shared in Redis");
                server.with_shared_state(
                    Arc::new(shared_state::RedisState::new(state)),
                    state.timeout,
                )
            }
            None => server,
        };
        let server = server
            .with_events(Arc::new(events::DaemonEvents { transfer_log, hooks }))
            .with_metrics(engine_metrics)
            .bind()
            .await?;
        let admin_listeners = match &admin_settings {
            Some(admin) => admin::bind(&admin.listen).await?,
            None => Vec::new(),
        };
        reloader.handle = Some(server.reload_handle());
        if let Some(user) = &run_as {
            drop_privileges(user)?;
            println!("ftpgate: running as user {user:?}");
        } else if nix::unistd::Uid::effective().is_root() {
            warn!(
                "running as root: set server.run_as to an unprivileged user so that sessions do not run with root's rights"
            );
        }
        warn_unwritable_homes(&homes);
        // Installed before "listening" is printed, so a signal sent as soon as the server is up
        // is handled, not fatal.
        let signals = Signals::install();
        // Temporary files of uploads cut short by a crash are removed in the background.
        tokio::task::spawn_blocking(move || {
            for home in homes.iter().map(|h| &h.path).filter(|p| p.is_dir()) {
                match remove_leftover_uploads(home, started) {
                    Ok(0) => {}
                    Ok(n) => info!(home = %home.display(), removed = n, "removed leftover temporary upload files"),
                    Err(e) => warn!(home = %home.display(), error = %e, "cannot clean leftover temporary upload files"),
                }
            }
        });
        let shutdown = CancellationToken::new();
        if let Some(settings) = admin_settings {
            // Up until the drain is over: /readyz says 503 from the signal on. Announced before
            // the FTP listeners, whose line says the server is up.
            admin::spawn(
                admin_listeners,
                Arc::new(admin::Admin {
                    token: settings.token,
                    draining: shutdown.clone(),
                    registry: Arc::new(registry),
                    sessions: server.sessions(),
                }),
            );
        }
        for addr in server.local_addrs() {
            println!("ftpgate: listening on {addr}{explicit}");
            info!(%addr, "listening{}", explicit);
        }
        for addr in server.implicit_tls_addrs() {
            println!("ftpgate: listening on {addr} (implicit FTPS)");
            info!(%addr, "listening (implicit FTPS)");
        }
        tokio::spawn(wait_for_signal(signals, shutdown.clone(), certs, reloader, reopen));
        server.run(shutdown).await;
        Ok(())
    })
}

/// Reloads the config file on SIGHUP with the command line's flags applied again.
struct Reloader {
    /// The file as the server started with it (flags applied), to tell what needs a restart.
    started: ConfigFile,
    args: ServeArgs,
    quick: Option<QuickStart>,
    /// The running TLS settings, which a reload keeps (only the certificate files are read
    /// again).
    tls: Option<ftpgate::TlsConfig>,
    implicit_tls_listen: Vec<std::net::SocketAddr>,
    handle: Option<ReloadHandle>,
    /// The object stores' cleanup tasks, replaced with the stores.
    cleanups: Vec<tokio::task::JoinHandle<()>>,
}

impl Reloader {
    /// Reads, checks and applies the config file; nothing changes if any of it is wrong.
    fn reload(&mut self) -> Result<()> {
        let (Some(path), Some(handle)) = (&self.args.config, &self.handle) else {
            info!("SIGHUP: no config file; the users and settings stay as they are");
            return Ok(());
        };
        let mut file = ConfigFile::load(path)?;
        apply_flags(&self.args, self.quick.as_ref(), &mut file)?;
        let mut settings = build_settings(Some(path), &file, self.quick.as_ref())?;
        create_homes(&settings.homes)?;
        for warning in &settings.warnings {
            warn!("{warning}");
        }
        let homes = std::mem::take(&mut settings.homes);
        settings.server.tls = self.tls.clone();
        settings.server.implicit_tls_listen = self.implicit_tls_listen.clone();
        let (server, cleanups) = engine_server(settings);
        let mut restart = match handle.reload(server) {
            Ok(restart) => restart,
            Err(e) => {
                for task in cleanups {
                    task.abort();
                }
                return Err(anyhow::anyhow!("server: {e}"));
            }
        };
        for task in std::mem::replace(&mut self.cleanups, cleanups) {
            task.abort();
        }
        if file.tls != self.started.tls {
            restart.push("tls");
        }
        if file.log != self.started.log {
            restart.push("log");
        }
        if file.hooks != self.started.hooks {
            restart.push("hooks");
        }
        if file.server.run_as != self.started.server.run_as {
            restart.push("server.run_as");
        }
        if file.admin != self.started.admin {
            restart.push("admin");
        }
        if file.state != self.started.state {
            restart.push("state");
        }
        if !restart.is_empty() {
            warn!(
                settings = %restart.join(", "),
                "SIGHUP: these settings changed but take effect only after a restart; the running values are kept"
            );
        }
        warn_unwritable_homes(&homes);
        info!(config = %path.display(), "SIGHUP: configuration reloaded; new connections and logins use it");
        Ok(())
    }
}

/// The signals the daemon handles.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Takes over the signals (from now on they are queued for [`wait_for_signal`]).
    fn install() -> Option<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Some(Signals {
            term: signal(SignalKind::terminate()).ok()?,
            int: signal(SignalKind::interrupt()).ok()?,
            hup: signal(SignalKind::hangup()).ok()?,
        })
    }
}

/// SIGTERM and SIGINT start a graceful shutdown; SIGHUP reloads the config file and the TLS
/// certificate files (running sessions keep going with what they have; new connections and
/// logins, and new handshakes, use the new ones).
async fn wait_for_signal(
    signals: Option<Signals>,
    shutdown: CancellationToken,
    certs: Option<Arc<tls::CertificateStore>>,
    mut reloader: Reloader,
    reopen: Reopen,
) {
    let Some(Signals {
        mut term,
        mut int,
        mut hup,
    }) = signals
    else {
        warn!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM received"); break; }
            _ = int.recv() => { info!("SIGINT received"); break; }
            _ = hup.recv() => {
                reopen.reopen();
                match certs.as_ref().map(|c| c.reload()) {
                    Some(Ok(true)) => info!(fingerprint = %certs.as_ref().map(|c| c.fingerprint()).unwrap_or_default(), "SIGHUP: TLS certificate reloaded"),
                    Some(Ok(false)) => info!("SIGHUP: the self-signed certificate is kept"),
                    Some(Err(e)) => error!(error = %format!("{e:#}"), "SIGHUP: certificate reload failed; keeping the current one"),
                    None => {}
                }
                if let Err(e) = reloader.reload() {
                    error!(error = %format!("{e:#}"), "SIGHUP: configuration not reloaded; keeping the current settings");
                }
            }
        }
    }
    shutdown.cancel();
}

/// The log files SIGHUP reopens (after logrotate moved them away, say).
struct Reopen {
    logging: logging::LogReopener,
    transfer_log: Option<Arc<transfer_log::TransferLog>>,
}

impl Reopen {
    fn reopen(&self) {
        if let Err(e) = self.logging.reopen() {
            error!(error = %e, "SIGHUP: cannot reopen the log file; writing to the old one");
        }
        if let Some(log) = &self.transfer_log {
            log.reopen();
        }
    }
}

/// Switches the whole process to an unprivileged user (after the listen ports are bound), and
/// checks that root cannot be regained.
fn drop_privileges(name: &str) -> Result<()> {
    use nix::unistd::{Uid, User, setgid, setgroups, setuid};
    let user =
        User::from_name(name)?.ok_or_else(|| anyhow::anyhow!("run_as: no such user {name:?}"))?;
    setgroups(&[user.gid]).context("run_as: setgroups")?;
    setgid(user.gid).context("run_as: setgid")?;
    setuid(user.uid).context("run_as: setuid")?;
    if user.uid != Uid::from_raw(0) && setuid(Uid::from_raw(0)).is_ok() {
        bail!("run_as: root privileges could be regained");
    }
    info!(
        user = name,
        uid = user.uid.as_raw(),
        gid = user.gid.as_raw(),
        "dropped privileges"
    );
    Ok(())
}
