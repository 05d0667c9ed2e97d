//! `serve` and `check-config` read a config file through the same checks: every file one
//! refuses, the other refuses with the same message (and `serve` never starts listening), and
//! a good file is accepted by both.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// `ftpgate ARGS` in `dir`, without the environment that could change the outcome, killed
/// if it is still running after 30 seconds.
fn run(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "RUST_LOG",
        "FTPGATE_PASSWORD",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AZURE_STORAGE_ACCOUNT",
        "AZURE_STORAGE_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
        "FTPGATE_WEBDAV_PASSWORD",
        "FTPGATE_WEBDAV_TOKEN",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let mut stdout = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut stdout)
                .unwrap();
            panic!("ftpgate {args:?} still running after 30 s; stdout: {stdout}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn serve_refuses_every_config_check_config_refuses_with_the_same_error() {
    let dir = tempfile::tempdir().unwrap();
    let user = |extra: &str| {
        format!(
            "[[users]]\nname = \"amy\"\npassword_hash = \"{}\"\nhome = \"/tmp\"\n{extra}\n",
            hash("pw")
        )
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown key",
            "[server]\nlisten_typo = 1\n".into(),
            "listen_typo",
        ),
        ("not TOML", "[server\n".into(), "invalid config"),
        (
            "a key of the wrong type",
            "[server]\nmax_connections = \"many\"\n".into(),
            "max_connections",
        ),
        (
            "bad permission letters",
            user("permissions = \"elrx\""),
            "users[0].permissions",
        ),
        (
            "bad directory permissions",
            user("[[users.dirs]]\npath = \"/pub\"\npermissions = \"q\""),
            "users[0].dirs[0].permissions",
        ),
        (
            "bad password hash",
            "[[users]]\nname = \"amy\"\npassword_hash = \"plain\"\nhome = \"/tmp\"\n".into(),
            "users[0].password_hash",
        ),
        (
            "bad port range",
            "[server]\npassive_ports = \"100-50\"\n".into(),
            "server.passive_ports",
        ),
        (
            "port sharing without a range",
            "[server]\npassive_port_sharing = true\n".into(),
            "server.passive_port_sharing",
        ),
        (
            "duplicate virtual host",
            "[[hosts]]\nname = \"ftp.example\"\n\n[[hosts]]\nname = \"FTP.example\"\n".into(),
            "hosts[1].name: host \"FTP.example\" is defined twice",
        ),
        (
            "tls_required without [tls]",
            user("tls_required = true"),
            "users: tls_required needs a [tls] certificate",
        ),
        (
            "TLS required without a certificate",
            "[tls]\nrequired = true\n".into(),
            "tls: requiring TLS",
        ),
        (
            "a self-signed certificate with a bad minimum version",
            "[tls]\nself_signed = true\nmin_version = \"1.1\"\n".into(),
            "tls.min_version",
        ),
        (
            "a self-signed certificate and a certificate file",
            "[tls]\nself_signed = true\ncert = \"cert.pem\"\n".into(),
            "tls: give either cert and key, or self_signed, not both",
        ),
        (
            "a missing certificate file",
            "[tls]\ncert = \"missing.pem\"\nkey = \"missing.key\"\n".into(),
            "tls.cert / tls.key",
        ),
        (
            "bad log level",
            "[log]\nlevel = \"verbose\"\n".into(),
            "log.level: unknown log level \"verbose\"",
        ),
        (
            "unknown time zone",
            "[server]\nlisting_time_zone = \"Mars/Olympus\"\n".into(),
            "server.listing_time_zone",
        ),
        (
            "site_chmod = \"ignore\" on local storage",
            "[storage]\nsite_chmod = \"ignore\"\n".into(),
            "storage: site_chmod = \"ignore\" is for object storage",
        ),
        (
            "bad size string",
            "[server]\nmax_file_size = \"10X\"\n".into(),
            "server.max_file_size",
        ),
        (
            "bad quota of a virtual host's user",
            format!(
                "[[hosts]]\nname = \"ftp.example\"\n{}",
                user("quota = \"lots\"").replace("[[users]]", "[[hosts.users]]")
            ),
            "hosts[0].users[0].quota",
        ),
        ("zero upload rate", user("upload_rate = 0"), "users[0].upload_rate"),
        ("bad download rate", user("download_rate = \"fast\""), "users[0].download_rate"),
        ("zero sessions", user("max_sessions = 0"), "users[0].max_sessions"),
        (
            "bad allowed network",
            user("allowed_networks = [\"10.0.0.0/33\"]"),
            "users[0].allowed_networks",
        ),
        (
            "bad denied network",
            user("denied_networks = [\"lan\"]"),
            "users[0].denied_networks",
        ),
        ("bad expiry", user("expires_at = \"next year\""), "users[0].expires_at"),
        (
            "bad network rate",
            user("[[users.network_rates]]\nnetwork = \"10.0.0.0/8\"\nupload_rate = 0"),
            "users[0].network_rates[0].upload_rate",
        ),
        (
            "bad transfer type",
            "[features]\ndefault_transfer_type = \"ebcdic\"\n".into(),
            "features.default_transfer_type",
        ),
        (
            "s3 storage without [storage.s3]",
            "[storage]\ntype = \"s3\"\n".into(),
            "storage: type = \"s3\" needs a [storage.s3] section",
        ),
        (
            "s3 storage without credentials",
            "[storage]\ntype = \"s3\"\n\n[storage.s3]\nendpoint = \"http://127.0.0.1:1\"\nbucket = \"b\"\n"
                .into(),
            "storage.s3: credentials missing",
        ),
        (
            "a user's s3 storage with a bad part size",
            user(
                "[users.storage]\ntype = \"s3\"\n[users.storage.s3]\nendpoint = \"http://127.0.0.1:1\"\nbucket = \"b\"\naccess_key = \"k\"\nsecret_key = \"s\"\npart_size = \"1M\"",
            ),
            "users.amy.storage.s3.part_size must be at least 5M",
        ),
        (
            "partial uploads kept on Azure",
            "[storage]\ntype = \"azure\"\nkeep_partial_uploads = true\n\n[storage.azure]\naccount = \"acct\"\nkey = \"a2V5\"\ncontainer = \"c\"\n"
                .into(),
            "keep_partial_uploads",
        ),
        (
            "an [[auth]] type not known",
            "[[auth]]\ntype = \"kerberos\"\n".into(),
            "kerberos",
        ),
        (
            "an http [[auth]] without a url",
            "[[auth]]\ntype = \"http\"\n".into(),
            "url",
        ),
        (
            "an http [[auth]] with an ftp:// url",
            "[[auth]]\ntype = \"http\"\nurl = \"ftp://127.0.0.1/\"\n".into(),
            "auth[0].url",
        ),
        (
            "an http [[auth]] with a zero timeout",
            "[[auth]]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/\"\ntimeout_secs = 0\n"
                .into(),
            "auth[0].timeout_secs",
        ),
        (
            "an http [[auth]] with a bad header",
            "[[auth]]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/\"\nheaders = { \"Bad Name\" = \"x\" }\n"
                .into(),
            "auth[0].headers",
        ),
        (
            "an unknown key in an [[auth]]",
            "[[auth]]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/\"\nfallthrough = true\n"
                .into(),
            "fallthrough",
        ),
        (
            "the file users listed twice",
            "[[auth]]\ntype = \"file\"\n\n[[auth]]\ntype = \"file\"\n".into(),
            "auth[1].type",
        ),
        (
            "a certificate [[auth]] without tls.client_ca",
            "[[auth]]\ntype = \"certificate\"\nmap = \"cn\"\nhome_template = \"/srv/{user}\"\n".into(),
            "needs tls.client_ca",
        ),
        (
            "a certificate [[auth]] with a bad map",
            "[tls]\nself_signed = true\nclient_ca = \"/dev/null\"\n\n[[auth]]\ntype = \"certificate\"\nmap = \"email\"\nhome_template = \"/srv/{user}\"\n".into(),
            "auth[0].map",
        ),
        (
            "a certificate [[auth]] with a bad fingerprint",
            "[tls]\nself_signed = true\nclient_ca = \"/dev/null\"\n\n[[auth]]\ntype = \"certificate\"\nmap = { \"AA:BB\" = \"amy\" }\nhome_template = \"/srv/{user}\"\n".into(),
            "auth[0].map",
        ),
        (
            "a certificate [[auth]] alone without a home",
            "[tls]\nself_signed = true\nclient_ca = \"/dev/null\"\n\n[[auth]]\ntype = \"certificate\"\nmap = \"cn\"\n".into(),
            "auth[0].home_template",
        ),
        (
            "a certificate [[auth]] requiring a password nobody checks",
            "[tls]\nself_signed = true\nclient_ca = \"/dev/null\"\n\n[[auth]]\ntype = \"certificate\"\nmap = \"cn\"\npassword = \"required\"\n".into(),
            "auth[0].password",
        ),
        (
            "an ldap [[auth]] without a base_dn",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nhome_template = \"/srv/{user}\"\n".into(),
            "base_dn",
        ),
        (
            "an ldap [[auth]] with an http:// url",
            "[[auth]]\ntype = \"ldap\"\nurl = \"http://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\n".into(),
            "auth[0].url",
        ),
        (
            "an ldap [[auth]] with StartTLS on ldaps://",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldaps://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\nstarttls = true\n".into(),
            "auth[0].starttls",
        ),
        (
            "an ldap [[auth]] without a home",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\n".into(),
            "auth[0].home_template",
        ),
        (
            "an ldap [[auth]] filter without {user}",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\nfilter = \"(uid=amy)\"\n".into(),
            "auth[0].filter",
        ),
        (
            "an ldap [[auth]] filter that does not parse",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\nfilter = \"(uid={user}\"\n".into(),
            "auth[0].filter",
        ),
        (
            "an ldap [[auth]] with bad group permissions",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\ngroup_permissions = { \"cn=ro,dc=example,dc=org\" = \"elrq\" }\n".into(),
            "auth[0].group_permissions",
        ),
        (
            "an ldap [[auth]] with bad default permissions",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\npermissions = \"x\"\n".into(),
            "auth[0].permissions",
        ),
        (
            "an ldap [[auth]] bind_dn without a password",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\nbind_dn = \"cn=svc,dc=example,dc=org\"\n".into(),
            "auth[0].bind_password",
        ),
        (
            "an ldap [[auth]] ca_file without TLS",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\nca_file = \"/dev/null\"\n".into(),
            "auth[0].ca_file: is for ldaps://",
        ),
        (
            "an ldap [[auth]] with a missing ca_file",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldaps://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\nca_file = \"no-such-ca.pem\"\n".into(),
            "auth[0].ca_file: cannot read",
        ),
        (
            "an ldap [[auth]] with a ca_file holding no certificate",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldaps://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\nca_file = \"/dev/null\"\n".into(),
            "auth[0].ca_file",
        ),
        (
            "an ldap [[auth]] with a zero timeout",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\ntimeout_secs = 0\n".into(),
            "auth[0].timeout_secs",
        ),
        (
            "an ldap [[auth]] with a negative connect timeout",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\nconnect_timeout_secs = -1.0\n".into(),
            "auth[0].connect_timeout_secs",
        ),
        (
            "an ldap [[auth]] with no pool",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\npool_size = 0\n".into(),
            "auth[0].pool_size",
        ),
        (
            "an ldap [[auth]] caching for a week",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\ncache_secs = 604800\n".into(),
            "auth[0].cache_secs",
        ),
        (
            "an ldap [[auth]] with an empty name_attribute",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\nname_attribute = \"\"\n".into(),
            "auth[0].name_attribute",
        ),
        (
            "an ldap [[auth]] with an unknown key",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\ngroup_attribute = \"memberOf\"\n".into(),
            "group_attribute",
        ),
        (
            "an ldap [[auth]] with s3:// homes and no [storage.s3]",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"s3://bucket/{user}\"\n".into(),
            "auth[0].home_template: an s3:// home needs a [storage.s3] section",
        ),
        (
            "a PAM service that is no file name",
            "[[auth]]\ntype = \"pam\"\nservice = \"../shadow\"\n".into(),
            "auth[0].service",
        ),
        (
            "a PAM entry with an empty home template",
            "[[auth]]\ntype = \"pam\"\nhome_template = \" \"\n".into(),
            "auth[0].home_template",
        ),
        (
            "a PAM entry with bad permissions",
            "[[auth]]\ntype = \"pam\"\npermissions = \"elrq\"\n".into(),
            "auth[0].permissions",
        ),
        (
            "a PAM entry with no concurrency",
            "[[auth]]\ntype = \"pam\"\nconcurrency = 0\n".into(),
            "auth[0].concurrency",
        ),
        (
            "a PAM entry with a zero timeout",
            "[[auth]]\ntype = \"pam\"\ntimeout_secs = 0\n".into(),
            "auth[0].timeout_secs",
        ),
        (
            "a PAM entry with an unknown key",
            "[[auth]]\ntype = \"pam\"\nservise = \"ftp\"\n".into(),
            "servise",
        ),
        (
            "a PAM entry with a quota of no files",
            "[[auth]]\ntype = \"pam\"\nquota_files = 0\n".into(),
            "auth[0].quota_files",
        ),
        (
            "a user's session count that is no number",
            user("max_sessions = \"one\""),
            "max_sessions: invalid type",
        ),
        (
            "a PAM entry that is disabled by a word",
            "[[auth]]\ntype = \"pam\"\ndisabled = \"yes\"\n".into(),
            "disabled: invalid type",
        ),
        (
            "a PAM entry with no sessions",
            "[[auth]]\ntype = \"pam\"\nmax_sessions = 0\n".into(),
            "auth[0].max_sessions",
        ),
        (
            "a PAM entry denying a network that is none",
            "[[auth]]\ntype = \"pam\"\ndenied_networks = [\"lan\"]\n".into(),
            "auth[0].denied_networks",
        ),
        (
            "a PAM entry expiring at no time",
            "[[auth]]\ntype = \"pam\"\nexpires_at = \"soon\"\n".into(),
            "auth[0].expires_at",
        ),
        (
            "a PAM entry with a misspelt limit key",
            "[[auth]]\ntype = \"pam\"\nmax_session = 1\n".into(),
            "max_session",
        ),
        (
            "an ldap [[auth]] with an upload rate of 0",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\nupload_rate = 0\n".into(),
            "auth[0].upload_rate",
        ),
        (
            "an ldap [[auth]] with a download rate that is no size",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\ndownload_rate = \"fast\"\n".into(),
            "auth[0].download_rate",
        ),
        (
            "an ldap [[auth]] allowing a network that is none",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\nallowed_networks = [\"10.0.0.0/33\"]\n".into(),
            "auth[0].allowed_networks",
        ),
        (
            "an ldap [[auth]] with a session attribute that is no attribute name",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\nmax_sessions_attribute = \"ftp sessions\"\n".into(),
            "auth[0].max_sessions_attribute",
        ),
        (
            "an ldap [[auth]] with an empty rate attribute",
            "[[auth]]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\nhome_template = \"/srv/{user}\"\nupload_rate_attribute = \"\"\n".into(),
            "auth[0].upload_rate_attribute",
        ),
        (
            "a user's quota of no files",
            user("quota_files = 0"),
            "users[0].quota_files",
        ),
        (
            "a user's quota of files that is no number",
            user("quota_files = \"many\""),
            "quota_files",
        ),
        (
            "unknown log format",
            "[log]\nformat = \"xml\"\n".into(),
            "unknown variant `xml`",
        ),
        (
            "log rotation without a file",
            "[log]\nrotate = \"daily\"\n".into(),
            "log.rotate: rotation needs log.file",
        ),
        (
            "a transfer log the rotated log would prune",
            "[log]\nfile = \"/tmp/ftpgate.log\"\nrotate = \"daily\"\ntransfer_log = \"/tmp/ftpgate-xfer.log\"\n".into(),
            "log.transfer_log: \"ftpgate-xfer.log\" would be pruned",
        ),
        (
            "unknown hook event",
            "[[hooks]]\nevents = [\"uploaded\"]\ncommand = [\"/bin/true\"]\n".into(),
            "hooks[0].events: unknown event \"uploaded\"",
        ),
        (
            "hook with both a command and a url",
            "[[hooks]]\nevents = [\"upload\"]\ncommand = [\"/bin/true\"]\nurl = \"http://127.0.0.1:1/\"\n".into(),
            "hooks[0]: give command or url, not both",
        ),
        (
            "hook with an unknown placeholder",
            "[[hooks]]\nevents = [\"upload\"]\ncommand = [\"/bin/echo\", \"{file}\"]\n".into(),
            "hooks[0].command: unknown placeholder {file}",
        ),
        (
            "hook with a bad url",
            "[[hooks]]\nevents = [\"upload\"]\nurl = \"ftp://127.0.0.1/\"\n".into(),
            "hooks[0].url",
        ),
        (
            "hook with no concurrency",
            "[[hooks]]\nevents = [\"upload\"]\ncommand = [\"/bin/true\"]\nmax_concurrent = 0\n".into(),
            "hooks[0].max_concurrent",
        ),
        (
            "webdav storage without its section",
            "[storage]\ntype = \"webdav\"\n".into(),
            "storage: type = \"webdav\" needs a [storage.webdav] section",
        ),
        (
            "webdav endpoint that is not http",
            "[storage]\ntype = \"webdav\"\n[storage.webdav]\nendpoint = \"ftp://127.0.0.1/\"\n"
                .into(),
            "storage.webdav.endpoint",
        ),
        (
            "webdav user without a password",
            "[storage]\ntype = \"webdav\"\n[storage.webdav]\nendpoint = \"http://127.0.0.1:1\"\nusername = \"u\"\n"
                .into(),
            "storage.webdav: username needs a password",
        ),
        (
            "webdav basic and bearer together",
            "[storage]\ntype = \"webdav\"\n[storage.webdav]\nendpoint = \"http://127.0.0.1:1\"\nusername = \"u\"\npassword = \"p\"\ntoken = \"t\"\n"
                .into(),
            "not both",
        ),
        (
            "webdav with kept partial uploads",
            "[storage]\ntype = \"webdav\"\nkeep_partial_uploads = true\n[storage.webdav]\nendpoint = \"http://127.0.0.1:1\"\n"
                .into(),
            "keep_partial_uploads",
        ),
        (
            "an OpenDAL service not compiled in",
            "[storage]\ntype = \"opendal\"\n[storage.opendal]\nscheme = \"nosuch\"\n".into(),
            "storage.opendal.scheme: \"nosuch\" is not compiled into this ftpgate",
        ),
        (
            "a bad OpenDAL read chunk",
            "[storage]\ntype = \"opendal\"\n[storage.opendal]\nscheme = \"fs\"\noptions = { root = \"/tmp\" }\nread_chunk = \"1K\"\n".into(),
            "storage.opendal.read_chunk must be between 64K and 256M",
        ),
        (
            "run_as an unknown user",
            "[server]\nrun_as = \"no-such-user-ftpgate\"\n".into(),
            "server.run_as",
        ),
        (
            "a bad admin listen address",
            "[admin]\nlisten = [\"127.0.0.1\"]\n".into(),
            "admin.listen[0]",
        ),
        (
            "an admin token and a token file",
            "[admin]\nlisten = [\"127.0.0.1:9100\"]\ntoken = \"0123456789abcdef\"\ntoken_file = \"t\"\n"
                .into(),
            "admin: set token or token_file, not both",
        ),
        (
            "a short admin token",
            "[admin]\nlisten = [\"127.0.0.1:9100\"]\ntoken = \"short\"\n".into(),
            "admin.token: the token is too short",
        ),
        (
            "an admin token with a space",
            "[admin]\nlisten = [\"127.0.0.1:9100\"]\ntoken = \"0123456789 abcdef\"\n".into(),
            "admin.token: the token must be printable ASCII",
        ),
        (
            "a missing admin token file",
            "[admin]\nlisten = [\"127.0.0.1:9100\"]\ntoken_file = \"no-such-token-file\"\n"
                .into(),
            "admin.token_file: cannot read",
        ),
        (
            "an admin token without a listener",
            "[admin]\ntoken = \"0123456789abcdef\"\n".into(),
            "admin.listen is empty",
        ),
        (
            "an unknown admin key",
            "[admin]\nlisten = [\"127.0.0.1:9100\"]\nbind = 1\n".into(),
            "bind",
        ),
        (
            "a drain past its limit",
            "[server]\ndrain_secs = 3600\n".into(),
            "server.drain_secs must be at most 300",
        ),
        (
            "PROXY protocol without trusted networks",
            "[server.proxy_protocol]\ntrusted = []\n".into(),
            "server.proxy_protocol: trusted: name at least one network",
        ),
        (
            "PROXY protocol with a bad trusted network",
            "[server.proxy_protocol]\ntrusted = [\"10.0.0.0/40\"]\n".into(),
            "server.proxy_protocol: trusted[0]",
        ),
        (
            "PROXY protocol with an unknown data mode",
            "[server.proxy_protocol]\ntrusted = [\"10.0.0.1\"]\ndata = \"sometimes\"\n".into(),
            "server.proxy_protocol: data: must be \"required\" or \"off\"",
        ),
        (
            "PROXY protocol with a zero header timeout",
            "[server.proxy_protocol]\ntrusted = [\"10.0.0.1\"]\nheader_timeout_ms = 0\n".into(),
            "server.proxy_protocol: header_timeout_ms must be greater than zero",
        ),
        (
            "PROXY protocol with a tiny header cap",
            "[server.proxy_protocol]\ntrusted = [\"10.0.0.1\"]\nmax_header_bytes = 100\n".into(),
            "server.proxy_protocol: max_header_bytes must be from 232 to 65551",
        ),
        (
            "PROXY protocol with an unknown key",
            "[server.proxy_protocol]\ntrusted = [\"10.0.0.1\"]\nversion = 2\n".into(),
            "version",
        ),
        (
            "PROXY protocol with passive port sharing",
            "[server]\npassive_ports = \"40000-40010\"\npassive_port_sharing = true\n\n[server.proxy_protocol]\ntrusted = [\"10.0.0.1\"]\n".into(),
            "server.passive_port_sharing cannot be used with server.proxy_protocol",
        ),
        (
            "a state URL that is no URL",
            "[state]\nredis = \"127.0.0.1:6379\"\n".into(),
            "state.redis",
        ),
        (
            "a state URL of another scheme",
            "[state]\nredis = \"http://127.0.0.1:6379\"\n".into(),
            "state.redis: unknown scheme",
        ),
        (
            "a state URL over TLS",
            "[state]\nredis = \"rediss://127.0.0.1:6379\"\n".into(),
            "state.redis: rediss://",
        ),
        (
            "a state timeout of zero",
            "[state]\nredis = \"redis://127.0.0.1:6379/0\"\ntimeout_ms = 0\n".into(),
            "state.timeout_ms",
        ),
        (
            "a state timeout too long",
            "[state]\nredis = \"redis://127.0.0.1:6379/0\"\ntimeout_ms = 60000\n".into(),
            "state.timeout_ms",
        ),
        (
            "a state key prefix with a space",
            "[state]\nredis = \"redis://127.0.0.1:6379/0\"\nkey_prefix = \"a b\"\n".into(),
            "state.key_prefix",
        ),
        (
            "state settings without Redis",
            "[state]\ntimeout_ms = 100\n".into(),
            "need state.redis",
        ),
        (
            "an unknown state key",
            "[state]\nredis = \"redis://127.0.0.1:6379/0\"\npool = 4\n".into(),
            "pool",
        ),
    ];
    for (i, (what, text, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap();

        let check = run(dir.path(), &["check-config", path]);
        let check_err = String::from_utf8_lossy(&check.stderr);
        assert!(!check.status.success(), "check-config accepted {what}");
        assert!(
            check_err.contains(expected),
            "{what}: check-config does not say {expected:?}: {check_err}"
        );

        let serve = run(
            dir.path(),
            &["serve", "--config", path, "--listen", "127.0.0.1:0"],
        );
        let serve_out = String::from_utf8_lossy(&serve.stdout);
        let serve_err = String::from_utf8_lossy(&serve.stderr);
        assert_eq!(serve.status.code(), Some(1), "{what}: {serve_err}");
        assert!(
            !serve_out.contains("listening"),
            "{what}: serve listened: {serve_out}"
        );
        assert_eq!(
            serve_err.trim(),
            check_err.trim(),
            "{what}: serve and check-config disagree"
        );
        assert!(serve_err.starts_with("error: "), "{what}: {serve_err}");
    }
}

#[test]
fn a_good_config_is_accepted_by_both() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ftpgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
passive_ports = "40000-40100"
max_file_size = "1G"
listing_time_zone = "UTC"
drain_secs = 1

[server.proxy_protocol]
trusted = ["10.0.0.10", "fd00::/64"]
data = "off"
header_timeout_ms = 2000
max_header_bytes = 8192

[log]
level = "warn"

[state]
# Nothing listens there: a node starts, and logs in, without its Redis.
redis = "redis://127.0.0.1:1/0"
timeout_ms = 100

[tls]
self_signed = true
min_version = "1.3"

[[auth]]
type = "file"

# Asked only for names the [[users]] do not have; nothing listens there.
[[auth]]
type = "ldap"
url = "ldap://127.0.0.1:1"
base_dn = "dc=example,dc=org"
home_template = "/srv/ftp/{{user}}"
max_sessions = 2
download_rate = "1M"
denied_networks = ["192.0.2.0/24"]
max_sessions_attribute = "ftpMaxSessions"
allowed_networks_attribute = "ftpAllowedNetwork"

[[users]]
name = "amy"
password_hash = "{hash}"
home = "amy"
create_home = true
permissions = "elr"
quota = "10M"
max_sessions = 3
upload_rate = "2M"

[[users.dirs]]
path = "/incoming"
permissions = "elrw"

[[hosts]]
name = "ftp.example"

[[hosts.users]]
name = "ben"
password_hash = "{hash}"
home = "ben"
create_home = true
"#,
            hash = hash("pw")
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let check = run(dir.path(), &["check-config", config]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let (daemon, addr) = Daemon::start(
        dir.path(),
        &["--config", config, "--listen", "127.0.0.1:0"],
        &[],
    );
    assert!(login(addr, "amy", "pw").starts_with("230"));
    assert!(daemon.terminate().success());
}
