//! `ftpgate import cos-ftp`: Tencent COS FTP Server's `conf/vsftpd.conf` (an INI file) as an
//! ftpgate TOML config, with comments saying what became of each key.
//!
//! Reading ([`CosFtpConf::parse`]) checks every key and reports all problems with their line
//! numbers; writing ([`CosFtpConf::to_toml`]) cannot fail, so a caller writes a file only once
//! the whole config is known to be good.

use std::fmt::Write as _;

use ftpgate_core::Permissions;

use super::ini::{self, IniEntry};

/// Whether `[log] file` exists; until then `log_dir` becomes a commented-out line.
const LOG_FILE_KEY: bool = false;

/// ftpgate's smallest part for the native COS API and for the S3 API.
const MIN_COS_PART: u64 = 1 << 20;
const MIN_S3_PART: u64 = 5 << 20;

/// One of `login_users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CosUser {
    pub(crate) name: String,
    pub(crate) password: String,
    pub(crate) read_only: bool,
}

/// A COS FTP Server configuration, checked.
#[derive(Debug, Default)]
pub(crate) struct CosFtpConf {
    secret_id: String,
    secret_key: String,
    bucket: String,
    region: String,
    /// `cos_protocol` (http or https; default https).
    protocol: Option<String>,
    /// `cos_endpoint`, which newer COS FTP Server versions accept instead of the region's.
    endpoint: Option<String>,
    home_dir: Option<String>,
    pub(crate) users: Vec<CosUser>,
    masquerade: Option<String>,
    listen_port: Option<u16>,
    passive_ports: Option<(u16, u16)>,
    single_file_max_size: Option<u64>,
    min_part_size: Option<u64>,
    upload_threads: Option<usize>,
    max_connections: Option<usize>,
    max_list_file: Option<String>,
    log_level: Option<String>,
    log_dir: Option<String>,
}

/// How the bucket is reached.
#[derive(Debug, Default, Clone)]
pub(crate) struct ImportOptions {
    /// Use the S3 API at this endpoint (`type = "s3"`) instead of COS's native API.
    pub(crate) s3_endpoint: Option<String>,
}

/// The keys COS FTP Server reads, by section.
const KEYS: &[(&str, &[&str])] = &[
    (
        "COS_ACCOUNT",
        &[
            "cos_secretid",
            "cos_secretkey",
            "cos_bucket",
            "cos_region",
            "cos_protocol",
            "cos_endpoint",
            "cos_user_home_dir",
        ],
    ),
    ("FTP_ACCOUNT", &["login_users"]),
    (
        "NETWORK",
        &["masquerade_address", "listen_port", "passive_ports"],
    ),
    ("FILE_OPTION", &["single_file_max_size"]),
    (
        "OPTIONAL",
        &[
            "min_part_size",
            "upload_thread_num",
            "max_connection_num",
            "max_list_file",
            "log_level",
            "log_dir",
        ],
    ),
];

impl CosFtpConf {
    /// Reads `text`; the error lists every problem, each with its line number when it has one.
    pub(crate) fn parse(text: &str) -> Result<CosFtpConf, Vec<String>> {
        let entries = ini::parse(text)?;
        let mut conf = CosFtpConf::default();
        let mut errors = Vec::new();
        // A key written but refused is reported once, not also as missing.
        let seen = |key: &str| entries.iter().any(|e| e.key == key);
        for entry in &entries {
            if let Err(e) = conf.set(entry) {
                errors.push(format!(
                    "line {}: [{}] {}: {e}",
                    entry.line, entry.section, entry.key
                ));
            }
        }
        for (field, section, key) in [
            (&conf.secret_id, "COS_ACCOUNT", "cos_secretid"),
            (&conf.secret_key, "COS_ACCOUNT", "cos_secretkey"),
            (&conf.bucket, "COS_ACCOUNT", "cos_bucket"),
        ] {
            if field.is_empty() && !seen(key) {
                errors.push(format!("[{section}] {key} is missing"));
            }
        }
        if conf.region.is_empty() && conf.endpoint.is_none() && !seen("cos_region") {
            errors.push("[COS_ACCOUNT] cos_region is missing".to_string());
        }
        if conf.users.is_empty() && !seen("login_users") {
            errors.push("[FTP_ACCOUNT] login_users is missing (no user could log in)".to_string());
        }
        if errors.is_empty() {
            Ok(conf)
        } else {
            Err(errors)
        }
    }

    /// Takes one entry in; the error says what is wrong with its value (or key).
    fn set(&mut self, entry: &IniEntry) -> Result<(), String> {
        let Some((section, keys)) = KEYS
            .iter()
            .find(|(s, _)| s.eq_ignore_ascii_case(&entry.section))
        else {
            let known: Vec<_> = KEYS.iter().map(|(s, _)| format!("[{s}]")).collect();
            return Err(format!("unknown section (known: {})", known.join(" ")));
        };
        if !keys.contains(&entry.key.as_str()) {
            return Err(format!(
                "unknown key in [{section}] (known: {})",
                keys.join(", ")
            ));
        }
        let value = entry.value.as_str();
        let is_default = value.eq_ignore_ascii_case("default");
        let number = |what: &str| -> Result<u64, String> {
            value
                .parse::<u64>()
                .map_err(|_| format!("{value:?} is not {what}"))
        };
        let text = || Some(value.to_string()).filter(|v| !v.is_empty());
        let required = [
            "cos_secretid",
            "cos_secretkey",
            "cos_bucket",
            "cos_region",
            "login_users",
        ];
        if value.is_empty() && required.contains(&entry.key.as_str()) {
            return Err("must not be empty".to_string());
        }
        match entry.key.as_str() {
            "cos_secretid" => self.secret_id = value.to_string(),
            "cos_secretkey" => self.secret_key = value.to_string(),
            "cos_bucket" => self.bucket = value.to_string(),
            "cos_region" => self.region = value.to_string(),
            "cos_protocol" => match value.to_ascii_lowercase().as_str() {
                "" => {}
                p @ ("http" | "https") => self.protocol = Some(p.to_string()),
                _ => return Err(format!("{value:?} is neither http nor https")),
            },
            "cos_endpoint" => self.endpoint = text(),
            "cos_user_home_dir" => self.home_dir = text(),
            "login_users" => {
                self.users = parse_users(value)?;
                if self.users.is_empty() {
                    return Err("no user in it".to_string());
                }
            }
            "masquerade_address" => self.masquerade = text(),
            "listen_port" => {
                self.listen_port = Some(
                    value
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| format!("{value:?} is not a port from 1 to 65535"))?,
                )
            }
            "passive_ports" => {
                let bad = || format!("{value:?} is not a port range LOW,HIGH such as 60000,65535");
                let (lo, hi) = value.split_once(',').ok_or_else(bad)?;
                let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
                let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
                if lo == 0 || lo > hi {
                    return Err(bad());
                }
                self.passive_ports = Some((lo, hi));
            }
            _ if is_default => {}
            "single_file_max_size" => {
                self.single_file_max_size = Some(number("a size in bytes")?);
            }
            "min_part_size" => self.min_part_size = Some(number("a size in bytes or default")?),
            "upload_thread_num" => {
                let n = number("a number of threads or default")?;
                if n == 0 {
                    return Err("must be at least 1".to_string());
                }
                self.upload_threads = Some(usize::try_from(n).unwrap_or(usize::MAX));
            }
            "max_connection_num" => {
                let n = number("a number of connections (0: unlimited)")?;
                self.max_connections = Some(usize::try_from(n).unwrap_or(usize::MAX));
            }
            "max_list_file" => self.max_list_file = Some(value.to_string()),
            "log_level" => {
                self.log_level = Some(
                    match value.to_ascii_uppercase().as_str() {
                        "CRITICAL" | "FATAL" | "ERROR" => "error",
                        "WARNING" | "WARN" => "warn",
                        "INFO" => "info",
                        "DEBUG" | "NOTSET" => "debug",
                        _ => {
                            return Err(format!(
                                "{value:?} is not a Python log level (DEBUG, INFO, WARNING, ERROR, CRITICAL)"
                            ));
                        }
                    }
                    .to_string(),
                )
            }
            "log_dir" => self.log_dir = text(),
            other => return Err(format!("{other} is known but not handled")),
        }
        Ok(())
    }

    /// The ftpgate config, commented; `hash` makes a password's `password_hash`.
    pub(crate) fn to_toml(&self, options: &ImportOptions, hash: &dyn Fn(&str) -> String) -> String {
        let mut out = String::new();
        let o = &mut out;
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let _ = writeln!(
            o,
            "# ftpgate config imported from a COS FTP Server vsftpd.conf by `ftpgate import cos-ftp`.\n\
             # Check it with `ftpgate check-config FILE`; run it with `ftpgate serve -c FILE`.\n"
        );

        let _ = writeln!(o, "[server]");
        let port = self.listen_port.unwrap_or(2121);
        let _ = writeln!(
            o,
            "listen = [{}]   # listen_port (COS FTP Server listens on every IPv4 address)",
            q(&format!("0.0.0.0:{port}"))
        );
        if let Some((lo, hi)) = self.passive_ports {
            let _ = writeln!(
                o,
                "passive_ports = {}   # passive_ports",
                q(&format!("{lo}-{hi}"))
            );
        }
        if let Some(host) = &self.masquerade {
            let _ = writeln!(
                o,
                "public_host = {}   # masquerade_address: the address PASV announces",
                q(host)
            );
        }
        if let Some(size) = self.single_file_max_size {
            let _ = writeln!(
                o,
                "max_file_size = {size}   # single_file_max_size: the largest file an upload may make, in bytes"
            );
        }
        match self.max_connections {
            Some(0) => {
                let _ = writeln!(
                    o,
                    "# max_connection_num = 0 meant unlimited; ftpgate always has a cap (each session holds\n\
                     # sockets and memory), so a high one is set: keep it under the open-file limit (ulimit -n).\n\
                     max_connections = 100000"
                );
            }
            Some(n) => {
                let _ = writeln!(o, "max_connections = {n}   # max_connection_num");
            }
            None => {}
        }
        if self.max_connections.is_some() {
            let _ = writeln!(
                o,
                "# COS FTP Server had no per-address cap; ftpgate's default is 32 connections per client IP.\n\
                 # max_connections_per_ip = 32"
            );
        }
        if let Some(limit) = &self.max_list_file {
            let _ = writeln!(
                o,
                "# max_list_file = {limit}: not needed. ftpgate streams listings page by page from the\n\
                 # bucket, so a directory of any size is listed whole in constant memory."
            );
        }
        let _ = writeln!(o);

        self.write_storage(o, options);

        if self.log_level.is_some() || self.log_dir.is_some() {
            let _ = writeln!(o, "[log]");
            if let Some(level) = &self.log_level {
                let _ = writeln!(o, "level = {}   # log_level", q(level));
            }
            if let Some(dir) = &self.log_dir {
                let file = format!("{}/ftpgate.log", dir.trim_end_matches('/'));
                if LOG_FILE_KEY {
                    let _ = writeln!(o, "file = {}   # log_dir", q(&file));
                } else {
                    let _ = writeln!(
                        o,
                        "# log_dir = {dir}: ftpgate logs to standard error (journald under systemd); to a\n\
                         # file once this version has the key:\n\
                         # [log] file = {}",
                        q(&file)
                    );
                }
            }
            let _ = writeln!(o);
        }

        let _ = writeln!(
            o,
            "# login_users: every COS FTP Server user saw the whole bucket, so each home is its root.\n\
             # RW became all of ftpgate's permission letters, R the read-only ones."
        );
        for user in &self.users {
            let letters = if user.read_only {
                Permissions::READ_ONLY
            } else {
                Permissions::ALL
            };
            let _ = writeln!(
                o,
                "\n[[users]]\nname = {}\npassword_hash = {}\nhome = \"/\"\npermissions = {}   # {}",
                q(&user.name),
                q(&hash(&user.password)),
                q(&letters.to_string()),
                if user.read_only { "R" } else { "RW" }
            );
        }
        out
    }

    fn write_storage(&self, o: &mut String, options: &ImportOptions) {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        if let Some(dir) = &self.home_dir {
            let _ = writeln!(
                o,
                "# cos_user_home_dir = {dir}: not needed. COS FTP Server staged uploads in this local\n\
                 # directory; ftpgate streams them to the bucket in parts as they arrive."
            );
        }
        let protocol = self.protocol.as_deref().unwrap_or("https");
        let cos_endpoint = self
            .endpoint
            .clone()
            .map(|e| {
                if e.contains("://") {
                    e
                } else {
                    format!("{protocol}://{e}")
                }
            })
            .unwrap_or_else(|| format!("{protocol}://cos.{}.myqcloud.com", self.region));
        let (kind, min_part) = if options.s3_endpoint.is_some() {
            ("s3", MIN_S3_PART)
        } else {
            ("cos", MIN_COS_PART)
        };
        let _ = writeln!(o, "[storage]\ntype = {}", q(kind));
        let _ = writeln!(o);
        match &options.s3_endpoint {
            None => {
                let _ = writeln!(
                    o,
                    "# The bucket through COS's native API (ftpgate's `cos` storage, OpenDAL's COS service):\n\
                     # COS request signing and virtual-host addressing (BUCKET.cos.REGION.myqcloud.com),\n\
                     # the API COS FTP Server itself used, so the same SecretId/SecretKey work unchanged.\n\
                     # Uploads stream and commit on 226, and an interrupted one never becomes an object;\n\
                     # resuming one (REST + STOR) needs the S3 API: re-run the import with\n\
                     # --s3-endpoint {cos_endpoint}\n\
                     # for type = \"s3\" (COS's S3-compatible API, virtual-host style) and set\n\
                     # keep_partial_uploads = true under [storage].\n\
                     [storage.cos]\n\
                     endpoint = {}   # cos_region\n\
                     bucket = {}   # cos_bucket",
                    q(&cos_endpoint),
                    q(&self.bucket)
                );
                let _ = writeln!(
                    o,
                    "# Better kept out of this file: remove the two keys below and set\n\
                     # TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY in the service's environment.\n\
                     secret_id = {}   # cos_secretid\n\
                     secret_key = {}   # cos_secretkey",
                    q(&self.secret_id),
                    q(&self.secret_key)
                );
            }
            Some(endpoint) => {
                let virtual_host = url::Url::parse(endpoint)
                    .ok()
                    .and_then(|u| u.host_str().map(|h| h.ends_with(".myqcloud.com")))
                    .unwrap_or(false);
                let _ = writeln!(
                    o,
                    "# The bucket through the S3 API at {endpoint} (COS's S3-compatible API takes the\n\
                     # SecretId/SecretKey as access key and secret). Interrupted uploads can be resumed\n\
                     # with REST + STOR once keep_partial_uploads = true is set under [storage].\n\
                     [storage.s3]\n\
                     endpoint = {}\n\
                     region = {}   # cos_region\n\
                     bucket = {}   # cos_bucket",
                    q(endpoint),
                    q(&self.region),
                    q(&self.bucket)
                );
                if virtual_host {
                    let _ = writeln!(
                        o,
                        "path_style = false   # COS serves buckets by virtual host: BUCKET.cos.REGION.myqcloud.com"
                    );
                }
                let _ = writeln!(
                    o,
                    "# Better kept out of this file: remove the two keys below and set\n\
                     # AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the service's environment.\n\
                     access_key = {}   # cos_secretid\n\
                     secret_key = {}   # cos_secretkey",
                    q(&self.secret_id),
                    q(&self.secret_key)
                );
            }
        }
        if let Some(size) = self.min_part_size {
            if size < min_part {
                let _ = writeln!(
                    o,
                    "# min_part_size = {size} is below this API's smallest part, {} MiB: raised.\n\
                     part_size = {min_part}",
                    min_part >> 20
                );
            } else {
                let _ = writeln!(
                    o,
                    "part_size = {size}   # min_part_size: bytes per uploaded part"
                );
            }
        }
        if let Some(n) = self.upload_threads {
            let _ = writeln!(
                o,
                "parts_in_flight = {n}   # upload_thread_num: parts of one upload sent at once"
            );
        }
        let _ = writeln!(o);
    }
}

/// `user:pass:RW;user2:pass2:R` (a password may hold `:`; names may not).
fn parse_users(value: &str) -> Result<Vec<CosUser>, String> {
    let mut users: Vec<CosUser> = Vec::new();
    for (i, item) in value.split(';').map(str::trim).enumerate() {
        if item.is_empty() {
            continue;
        }
        let n = i + 1;
        let (Some((name, rest)), Some((_, perm))) = (item.split_once(':'), item.rsplit_once(':'))
        else {
            return Err(format!(
                "user {n} is not NAME:PASSWORD:RW or NAME:PASSWORD:R"
            ));
        };
        let Some((password, _)) = rest.rsplit_once(':') else {
            return Err(format!(
                "user {n} ({name:?}) is not NAME:PASSWORD:RW or NAME:PASSWORD:R"
            ));
        };
        let read_only = match perm.trim().to_ascii_uppercase().as_str() {
            "RW" | "WR" => false,
            "R" => true,
            other => {
                return Err(format!(
                    "user {n} ({name:?}): permission {other:?} is neither RW nor R"
                ));
            }
        };
        let name = name.trim();
        if name.is_empty() || password.is_empty() {
            return Err(format!("user {n}: empty name or password"));
        }
        if users.iter().any(|u| u.name == name) {
            return Err(format!("user {name:?} is listed twice"));
        }
        users.push(CosUser {
            name: name.to_string(),
            password: password.to_string(),
            read_only,
        });
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "[COS_ACCOUNT]
cos_secretid = XXXXXX
cos_secretkey = XXXXXX
cos_bucket = mybucket-125888888888
cos_region = ap-guangzhou
cos_user_home_dir = /home/cos_ftp/data
[FTP_ACCOUNT]
login_users = user1:pass1:RW;user2:pass2:RW
[NETWORK]
masquerade_address = 203.0.113.7
listen_port = 2121
passive_ports = 60000,65535
[FILE_OPTION]
single_file_max_size = 21474836480
[OPTIONAL]
min_part_size       = default
upload_thread_num   = default
max_connection_num  = 512
max_list_file       = 10000
log_level           = INFO
log_dir             = log
";

    fn fake_hash(p: &str) -> String {
        format!("hash-of-{p}")
    }

    #[test]
    fn the_example_maps_every_key() {
        let conf = CosFtpConf::parse(EXAMPLE).unwrap();
        let text = conf.to_toml(&ImportOptions::default(), &fake_hash);
        let doc: toml::Table = toml::from_str(&text).unwrap();
        let server = doc["server"].as_table().unwrap();
        assert_eq!(
            server["listen"].as_array().unwrap()[0].as_str(),
            Some("0.0.0.0:2121")
        );
        assert_eq!(server["passive_ports"].as_str(), Some("60000-65535"));
        assert_eq!(server["public_host"].as_str(), Some("203.0.113.7"));
        assert_eq!(server["max_file_size"].as_integer(), Some(21474836480));
        assert_eq!(server["max_connections"].as_integer(), Some(512));
        let storage = doc["storage"].as_table().unwrap();
        assert_eq!(storage["type"].as_str(), Some("cos"));
        let cos = storage["cos"].as_table().unwrap();
        assert_eq!(
            cos["endpoint"].as_str(),
            Some("https://cos.ap-guangzhou.myqcloud.com")
        );
        assert_eq!(cos["bucket"].as_str(), Some("mybucket-125888888888"));
        assert!(!cos.contains_key("part_size"), "default keeps ftpgate's");
        assert_eq!(doc["log"]["level"].as_str(), Some("info"));
        assert!(
            text.contains("# [log] file = \"log/ftpgate.log\""),
            "{text}"
        );
        assert!(text.contains("max_list_file = 10000: not needed"));
        assert!(text.contains("cos_user_home_dir = /home/cos_ftp/data: not needed"));
        let users = doc["users"].as_array().unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[1]["name"].as_str(), Some("user2"));
        assert_eq!(users[1]["password_hash"].as_str(), Some("hash-of-pass2"));
        assert_eq!(users[1]["permissions"].as_str(), Some("elradfmwMT"));
    }

    #[test]
    fn read_only_users_numbers_and_the_s3_api() {
        let text = EXAMPLE
            .replace("user2:pass2:RW", "user2:pa:ss:R")
            .replace("min_part_size       = default", "min_part_size = 2097152")
            .replace("upload_thread_num   = default", "upload_thread_num = 3")
            .replace("max_connection_num  = 512", "max_connection_num = 0");
        let conf = CosFtpConf::parse(&text).unwrap();
        assert_eq!(conf.users[1].password, "pa:ss");
        let cos: toml::Table =
            toml::from_str(&conf.to_toml(&ImportOptions::default(), &fake_hash)).unwrap();
        assert_eq!(cos["users"][1]["permissions"].as_str(), Some("elr"));
        assert_eq!(
            cos["storage"]["cos"]["part_size"].as_integer(),
            Some(2097152)
        );
        assert_eq!(
            cos["storage"]["cos"]["parts_in_flight"].as_integer(),
            Some(3)
        );
        assert_eq!(cos["server"]["max_connections"].as_integer(), Some(100000));

        let options = ImportOptions {
            s3_endpoint: Some("https://cos.ap-guangzhou.myqcloud.com".to_string()),
        };
        let s3: toml::Table = toml::from_str(&conf.to_toml(&options, &fake_hash)).unwrap();
        let s3 = s3["storage"]["s3"].as_table().unwrap();
        assert_eq!(
            s3["part_size"].as_integer(),
            Some(5 << 20),
            "raised to S3's minimum"
        );
        assert_eq!(s3["path_style"].as_bool(), Some(false));
        assert_eq!(s3["region"].as_str(), Some("ap-guangzhou"));
        assert_eq!(s3["access_key"].as_str(), Some("XXXXXX"));
    }

    #[test]
    fn bad_values_and_unknown_keys_are_reported_by_line() {
        let text = EXAMPLE
            .replace("listen_port = 2121", "listen_port = 21x")
            .replace(
                "passive_ports = 60000,65535",
                "passive_ports = 65535,60000\nbogus = 1",
            )
            .replace(":pass1:RW", ":pass1:X");
        let errors = CosFtpConf::parse(&text).unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(
            errors[0].starts_with("line 8: [FTP_ACCOUNT] login_users"),
            "{errors:?}"
        );
        assert!(
            errors[1].starts_with("line 11: [NETWORK] listen_port"),
            "{errors:?}"
        );
        assert!(
            errors[2].starts_with("line 12: [NETWORK] passive_ports"),
            "{errors:?}"
        );
        assert!(
            errors[3].starts_with("line 13: [NETWORK] bogus: unknown key"),
            "{errors:?}"
        );
        let errors = CosFtpConf::parse("[COS_ACCOUNT]\ncos_region = x\n").unwrap_err();
        assert!(
            errors.iter().any(|e| e.contains("cos_bucket is missing")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("login_users is missing")),
            "{errors:?}"
        );
    }
}
