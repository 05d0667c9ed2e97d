//! `ftpgate import`: configs of other FTP servers turned into ftpgate's. The result is checked
//! as `check-config` would check it before anything is written, and a file is written whole or
//! not at all (a temporary name renamed into place).

mod cos_ftp;
mod ini;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use ftpgate_auth_file::hash_password;

use cos_ftp::CosFtpConf;
pub(crate) use cos_ftp::ImportOptions;

use crate::config::ConfigFile;
use crate::settings::Settings;

/// `ftpgate import cos-ftp FILE [-o OUT]`: the TOML for COS FTP Server's `vsftpd.conf` at
/// `input`, on standard output or in `output`.
pub(crate) fn cos_ftp(input: &Path, output: Option<&Path>, options: &ImportOptions) -> Result<()> {
    let text = std::fs::read_to_string(input)
        .with_context(|| format!("cannot read {}", input.display()))?;
    let conf = CosFtpConf::parse(&text).map_err(|errors| {
        anyhow!(
            "{}: {} problem{}:\n  {}",
            input.display(),
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            errors.join("\n  ")
        )
    })?;
    let toml = conf.to_toml(options, &hash_password);
    // What `check-config` would say of the result; a failure here is the importer's fault.
    let file = ConfigFile::parse(&toml).context("the imported config does not parse")?;
    Settings::build(&file, None).context("the imported config does not check")?;
    match output {
        None => print!("{toml}"),
        Some(path) => write_whole(path, &toml)?,
    }
    Ok(())
}

/// Writes `text` to `path` through a temporary file in the same folder, so `path` is never
/// left half-written.
fn write_whole(path: &Path, text: &str) -> Result<()> {
    let Some(name) = path.file_name() else {
        bail!("{}: not a file name", path.display());
    };
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp: PathBuf = path.with_file_name(temp_name);
    let written = std::fs::write(&temp, text).and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(anyhow!("cannot write {}: {e}", path.display()));
    }
    Ok(())
}
