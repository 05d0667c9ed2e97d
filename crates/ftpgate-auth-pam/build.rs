//! Lets the link find libpam on machines that have only its runtime library.
//!
//! The bindings link with `-lpam`, which needs `libpam.so`, a link that only the development
//! package installs (Debian: libpam0g-dev). Every Linux system with PAM has the runtime library
//! `libpam.so.0` (Debian: libpam0g, an essential package), and that is all the bindings need: no
//! headers are read at build time. So when `libpam.so` is missing but `libpam.so.0` is there, a
//! `libpam.so` link to it is made in this build's output directory and handed to the linker.

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux")
        || env::var("TARGET").ok() != env::var("HOST").ok()
    {
        return;
    }
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let multiarch = format!("{arch}-linux-gnu");
    let dirs: Vec<PathBuf> = [
        Path::new("/usr/lib").join(&multiarch),
        Path::new("/lib").join(&multiarch),
        PathBuf::from("/usr/lib64"),
        PathBuf::from("/lib64"),
        PathBuf::from("/usr/lib"),
        PathBuf::from("/lib"),
    ]
    .into_iter()
    .collect();
    if dirs.iter().any(|d| d.join("libpam.so").exists()) {
        return;
    }
    let Some(runtime) = dirs
        .iter()
        .map(|d| d.join("libpam.so.0"))
        .find(|p| p.exists())
    else {
        // Neither: the link fails and says -lpam; the README names the package to install.
        return;
    };
    let Some(out) = env::var_os("OUT_DIR").map(|o| PathBuf::from(o).join("libpam-link")) else {
        return;
    };
    let link = out.join("libpam.so");
    let made = std::fs::create_dir_all(&out).and_then(|()| {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&runtime, &link)
    });
    if made.is_ok() {
        println!("cargo:rustc-link-search=native={}", out.display());
    }
}
