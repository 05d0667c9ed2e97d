//! The daemon's own log: text or JSON lines, on standard error or in a file that the daemon
//! rotates itself (`rotate = "daily"`/`"hourly"`, through `tracing-appender`) or that an
//! external tool such as logrotate moves away (SIGHUP reopens it).
//!
//! Lines for a file go through `tracing-appender`'s non-blocking writer: a session's task only
//! queues the line, a writer thread writes it, and if the disk stalls long enough to fill the
//! queue, lines are dropped rather than sessions slowed.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LogSection, Rotate, file_parts};

/// The running log: what SIGHUP reopens, and the writer thread to flush at exit.
pub(crate) struct Logging {
    file: Option<Arc<LogFile>>,
    /// Flushes the queued lines when dropped (at the end of `serve`).
    _guard: Option<WorkerGuard>,
}

impl Logging {
    /// What SIGHUP uses to reopen the log file.
    pub(crate) fn reopener(&self) -> LogReopener {
        LogReopener(self.file.clone())
    }
}

/// Reopens the log file.
pub(crate) struct LogReopener(Option<Arc<LogFile>>);

impl LogReopener {
    /// Reopens the log file (after logrotate moved it away, say): lines go to a file at the
    /// configured path again.
    pub(crate) fn reopen(&self) -> io::Result<()> {
        match &self.0 {
            Some(file) => file.reopen(),
            None => Ok(()),
        }
    }
}

/// Installs the log of `section` with `filter` (RUST_LOG, when set, replaces it).
pub(crate) fn init(section: &LogSection, filter: EnvFilter) -> Result<Logging> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::try_new(env).context("RUST_LOG")?,
        _ => filter,
    };
    let (writer, file, guard) = match &section.file {
        None => (None, None, None),
        Some(path) => {
            let file = Arc::new(LogFile::open(path.clone(), section.rotate, section.keep)?);
            let (writer, guard) = tracing_appender::non_blocking(SharedFile(file.clone()));
            (Some(writer), Some(file), Some(guard))
        }
    };
    let ansi = writer.is_none() && io::stderr().is_terminal();
    let layer = tracing_subscriber::fmt::layer().with_ansi(ansi);
    let layer = match (section.format, writer) {
        (LogFormat::Text, None) => layer.with_writer(io::stderr).boxed(),
        (LogFormat::Text, Some(w)) => layer.with_writer(w).boxed(),
        // Fields at the top level next to timestamp, level, target and message; the spans
        // (session, login, transfer) as a list of objects with their fields.
        (LogFormat::Json, None) => layer
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_writer(io::stderr)
            .boxed(),
        (LogFormat::Json, Some(w)) => layer
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_writer(w)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init()
        .context("cannot install the log")?;
    Ok(Logging {
        file,
        _guard: guard,
    })
}

/// A log file that can be reopened, rotating or not.
struct LogFile {
    path: PathBuf,
    rotate: Rotate,
    keep: usize,
    current: Mutex<RollingFileAppender>,
}

impl LogFile {
    fn open(path: PathBuf, rotate: Rotate, keep: usize) -> Result<LogFile> {
        let current = Mutex::new(
            appender(&path, rotate, keep)
                .with_context(|| format!("log.file: cannot open {}", path.display()))?,
        );
        Ok(LogFile {
            path,
            rotate,
            keep,
            current,
        })
    }

    fn reopen(&self) -> io::Result<()> {
        let fresh = appender(&self.path, self.rotate, self.keep)?;
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let _ = current.flush();
        *current = fresh;
        Ok(())
    }
}

/// The appender writing `path`: the file itself (`never`), or `STEM.DATE.EXT` files of which
/// the newest `keep + 1` are kept.
fn appender(
    path: &std::path::Path,
    rotate: Rotate,
    keep: usize,
) -> io::Result<RollingFileAppender> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let (stem, ext) = file_parts(path);
    let mut builder = RollingFileAppender::builder().filename_prefix(stem);
    if let Some(ext) = ext {
        builder = builder.filename_suffix(ext);
    }
    builder = match rotate {
        Rotate::Never => builder.rotation(Rotation::NEVER),
        Rotate::Hourly => builder.rotation(Rotation::HOURLY).max_log_files(keep + 1),
        Rotate::Daily => builder.rotation(Rotation::DAILY).max_log_files(keep + 1),
    };
    builder.build(dir).map_err(io::Error::other)
}

/// The writer thread's handle on the log file.
struct SharedFile(Arc<LogFile>);

impl Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut current = self.0.current.lock().unwrap_or_else(|e| e.into_inner());
        current.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut current = self.0.current.lock().unwrap_or_else(|e| e.into_inner());
        current.flush()
    }
}
