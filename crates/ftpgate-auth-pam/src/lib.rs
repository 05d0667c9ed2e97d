//! Logins checked against the machine's accounts through PAM.
//!
//! Each login the cache cannot answer looks the account up (`getpwnam`, through NSS), then
//! runs one PAM transaction for the configured service: `pam_authenticate` with a conversation
//! that answers the password to every hidden prompt (and the name to a visible one), then
//! `pam_acct_mgmt`. PAM calls block (and `pam_unix` sleeps about two seconds after a wrong
//! password), so they run on tokio's blocking pool, at most `concurrency` at once, and a login
//! that waits longer than the timeout (for a slot and for PAM together) is
//! [`AuthError::Unavailable`]: 421 to the client, never counted towards bans.
//!
//! What becomes of a login:
//! - no such account, or one whose uid is below the minimum (root and system accounts by
//!   default), is [`AuthError::UnknownUser`]: in a chain the next authenticator is asked;
//! - an empty password is [`AuthError::InvalidCredentials`] without asking PAM;
//! - `pam_authenticate` failing for the password (a wrong password, a locked account — `passwd
//!   -l` / `usermod -L` make the stored hash unmatchable) is [`AuthError::InvalidCredentials`];
//! - `pam_acct_mgmt` refusing the account (expired, password expired and to be changed, not
//!   allowed at this time or from here) is [`AuthError::InvalidCredentials`] too: 530 and
//!   counted like any refused login, the reason logged (FTP has no way to change a password,
//!   and the client should not learn more than "login incorrect");
//! - PAM itself failing (the service's configuration cannot be read, a module cannot reach its
//!   backend, `PAM_AUTHINFO_UNAVAIL`) is [`AuthError::Unavailable`].
//!
//! An accepted user gets the authenticator's home, permissions, quota and limits
//! ([`PamAuthenticator::with_limits`]: bandwidth, sessions, networks, validity), the same for
//! every account; the engine enforces the limits as for any user.
//!
//! With a cache time (none by default), an accepted login is remembered that long under a keyed
//! SHA-256 of the name and password (never the password itself), so a client opening several
//! connections does not run PAM for each; a rejection is never cached. PAM cannot tell when an
//! account is locked or its password changed, so for cached logins that takes effect when the
//! entry expires.
//!
//! Checking another user's password needs privileges: `pam_unix` reads `/etc/shadow`, which
//! only root can; without root it asks its helper `unix_chkpwd`, which checks the caller's own
//! password only. The daemon therefore checks logins as root (the default when started as
//! root); a server that drops to another user (`run_as`) can only use PAM modules that need no
//! privileges (an LDAP or SSSD module, say).

#![deny(missing_docs)]

use std::ffi::{OsStr, OsString};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ftpgate_core::{AuthError, Authenticator, LoginCache, LoginRequest, Permissions, User};
use nonstick::{AuthnFlags, ConversationAdapter, ErrorCode, Transaction, TransactionBuilder};
use tokio::sync::Semaphore;
use tracing::{debug, info};

/// The PAM service asked by default (`/etc/pam.d/ftpgate`).
pub const DEFAULT_SERVICE: &str = "ftpgate";
/// How long a login may wait for PAM by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How many PAM transactions may run at once by default.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// How long an accepted login is remembered by default: not at all, so that locking an
/// account or changing its password takes effect at the next login.
pub const DEFAULT_CACHE_TTL: Duration = Duration::ZERO;
/// Accounts with a lower uid are not served by default (root and system accounts).
pub const DEFAULT_MIN_UID: u32 = 1000;

/// A setting the authenticator cannot work with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The service name is empty or not a file name in `/etc/pam.d`.
    #[error("{0:?} is not a PAM service name (a file name in /etc/pam.d)")]
    Service(String),
    /// The home template is empty.
    #[error("the home template is empty")]
    HomeTemplate,
    /// Concurrency or timeout of zero.
    #[error("{0} must be more than 0")]
    Zero(&'static str),
}

/// Where a PAM user's home is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Home {
    /// The account's home directory (from the passwd entry).
    Account,
    /// A template in the storage's terms; `{user}` is replaced by the login name.
    Template(String),
}

/// Checks logins against the machine's accounts through PAM; see the
/// [crate documentation](crate).
#[derive(Debug)]
pub struct PamAuthenticator {
    service: Arc<str>,
    home: Home,
    permissions: Permissions,
    quota_bytes: Option<u64>,
    quota_files: Option<u64>,
    limits: ftpgate_core::UserLimits,
    min_uid: u32,
    timeout: Duration,
    slots: Arc<Semaphore>,
    cache: LoginCache<String>,
    cache_ttl: Duration,
}

impl PamAuthenticator {
    /// An authenticator asking PAM service `service`, with homes from the accounts, all
    /// permissions, no quota, and the defaults above.
    pub fn new(service: &str) -> Result<PamAuthenticator, ConfigError> {
        let valid = !service.is_empty()
            && service.len() <= 255
            && !matches!(service, "." | "..")
            && !service.contains(['/', '\0'])
            && !service.chars().any(char::is_whitespace);
        if !valid {
            return Err(ConfigError::Service(service.to_string()));
        }
        Ok(PamAuthenticator {
            service: service.into(),
            home: Home::Account,
            permissions: Permissions::ALL,
            quota_bytes: None,
            quota_files: None,
            limits: ftpgate_core::UserLimits::default(),
            min_uid: DEFAULT_MIN_UID,
            timeout: DEFAULT_TIMEOUT,
            slots: Arc::new(Semaphore::new(DEFAULT_CONCURRENCY)),
            cache: LoginCache::new(),
            cache_ttl: DEFAULT_CACHE_TTL,
        })
    }

    /// Where users' homes are.
    pub fn with_home(mut self, home: Home) -> Result<Self, ConfigError> {
        if matches!(&home, Home::Template(t) if t.trim().is_empty()) {
            return Err(ConfigError::HomeTemplate);
        }
        self.home = home;
        Ok(self)
    }

    /// What users may do (everywhere in their homes).
    pub fn with_permissions(mut self, permissions: Permissions) -> Self {
        self.permissions = permissions;
        self
    }

    /// Each user's limits: bandwidth, sessions, networks, validity (none by default).
    pub fn with_limits(mut self, limits: ftpgate_core::UserLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Each user's quota: most bytes and most files.
    pub fn with_quota(mut self, bytes: Option<u64>, files: Option<u64>) -> Self {
        self.quota_bytes = bytes;
        self.quota_files = files;
        self
    }

    /// Accounts with a uid below `uid` are not served (unknown to this authenticator).
    pub fn with_min_uid(mut self, uid: u32) -> Self {
        self.min_uid = uid;
        self
    }

    /// Longest a login may wait for a free slot and PAM's answer together.
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::Zero("the timeout"));
        }
        self.timeout = timeout;
        Ok(self)
    }

    /// How many PAM transactions may run at once.
    pub fn with_concurrency(mut self, slots: usize) -> Result<Self, ConfigError> {
        if slots == 0 {
            return Err(ConfigError::Zero("the concurrency"));
        }
        self.slots = Arc::new(Semaphore::new(slots));
        Ok(self)
    }

    /// How long an accepted login is remembered (zero turns the cache off).
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// The PAM service asked.
    pub fn service(&self) -> &str {
        &self.service
    }

    fn user(&self, name: &str, account_home: String) -> User {
        let home = match &self.home {
            Home::Account => account_home,
            Home::Template(t) => t.replace("{user}", name),
        };
        let mut user = User::new(name, home, self.permissions);
        user.quota_bytes = self.quota_bytes;
        user.quota_files = self.quota_files;
        user.limits = self.limits.clone();
        user
    }

    /// One PAM check on the blocking pool, bounded by the slots and the timeout.
    async fn check(&self, name: &str, password: &str) -> Verdict {
        let (service, name_owned, password) =
            (self.service.clone(), name.to_string(), password.to_string());
        let min_uid = self.min_uid;
        let slots = self.slots.clone();
        let job = async move {
            let permit = slots
                .acquire_owned()
                .await
                .map_err(|_| "PAM: the authenticator is closed".to_string())?;
            tokio::task::spawn_blocking(move || {
                // Held until PAM returns, even when the login stopped waiting: the slots bound
                // the threads PAM occupies.
                let _permit = permit;
                check_blocking(&service, &name_owned, &password, min_uid)
            })
            .await
            .map_err(|e| format!("PAM check failed: {e}"))
        };
        match tokio::time::timeout(self.timeout, job).await {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(why)) => Verdict::Unavailable(why),
            Err(_) => Verdict::Unavailable(format!(
                "PAM service {:?} did not answer within {:?}",
                self.service, self.timeout
            )),
        }
    }
}

#[async_trait]
impl Authenticator for PamAuthenticator {
    async fn authenticate(&self, request: &LoginRequest<'_>) -> Result<User, AuthError> {
        let name = request.username();
        let password = request.password().expose();
        if name.is_empty() || name.len() > 256 || name.contains('\0') {
            return Err(AuthError::UnknownUser);
        }
        let key = self.cache.key(&[name, password]);
        if let Some(home) = self.cache.get(&key) {
            return Ok(self.user(name, home));
        }
        match self.check(name, password).await {
            Verdict::Accepted { home } => {
                self.cache.put(key, &home, self.cache_ttl);
                Ok(self.user(name, home))
            }
            Verdict::Unknown => Err(AuthError::UnknownUser),
            Verdict::Rejected(reason) => {
                info!(user = name, service = %self.service, reason = %reason, "PAM refused the login");
                Err(AuthError::InvalidCredentials)
            }
            Verdict::Unavailable(why) => Err(AuthError::Unavailable(why)),
        }
    }
}

/// What one PAM check decided.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// The account's home directory.
    Accepted {
        home: String,
    },
    Unknown,
    Rejected(String),
    Unavailable(String),
}

/// Looks the account up and runs the PAM transaction (blocking).
fn check_blocking(service: &str, name: &str, password: &str, min_uid: u32) -> Verdict {
    let account = match nix::unistd::User::from_name(name) {
        Ok(Some(account)) => account,
        Ok(None) => return Verdict::Unknown,
        Err(e) => return Verdict::Unavailable(format!("looking up account {name:?}: {e}")),
    };
    if account.uid.as_raw() < min_uid {
        debug!(
            user = name,
            uid = account.uid.as_raw(),
            min_uid,
            "account below the minimum uid: not served through PAM"
        );
        return Verdict::Unknown;
    }
    if password.is_empty() {
        return Verdict::Rejected("empty password".into());
    }
    if password.contains('\0') {
        return Verdict::Rejected("password with a NUL byte".into());
    }
    let Some(home) = account.dir.to_str().map(str::to_string) else {
        return Verdict::Unavailable(format!("the home of {name:?} is not UTF-8"));
    };
    let answers = Answers {
        name: name.into(),
        password: password.into(),
    };
    let mut txn = match TransactionBuilder::new_with_service(service)
        .username(name)
        .build(answers.into_conversation())
    {
        Ok(txn) => txn,
        Err(e) => {
            return Verdict::Unavailable(format!("PAM service {service:?} cannot start: {e}"));
        }
    };
    let flags = AuthnFlags::DISALLOW_NULL_AUTHTOK;
    if let Err(e) = txn.authenticate(flags) {
        return classify(service, "authentication", e);
    }
    if let Err(e) = txn.account_management(flags) {
        return classify(service, "account", e);
    }
    Verdict::Accepted { home }
}

/// What a PAM error means for the login.
fn classify(service: &str, step: &str, e: ErrorCode) -> Verdict {
    match e {
        ErrorCode::UserUnknown if step == "authentication" => Verdict::Unknown,
        ErrorCode::AuthenticationError
        | ErrorCode::UserUnknown
        | ErrorCode::CredentialsInsufficient
        | ErrorCode::MaxTries
        | ErrorCode::PermissionDenied
        | ErrorCode::AccountExpired
        | ErrorCode::NewAuthTokRequired
        | ErrorCode::AuthTokExpired => Verdict::Rejected(format!("{step}: {e}")),
        other => Verdict::Unavailable(format!("PAM service {service:?}, {step}: {other}")),
    }
}

/// The conversation: the password for hidden prompts, the name for visible ones.
struct Answers {
    name: OsString,
    password: OsString,
}

impl ConversationAdapter for Answers {
    fn prompt(&self, _request: impl AsRef<OsStr>) -> nonstick::Result<OsString> {
        Ok(self.name.clone())
    }

    fn masked_prompt(&self, _request: impl AsRef<OsStr>) -> nonstick::Result<OsString> {
        Ok(self.password.clone())
    }

    fn error_msg(&self, message: impl AsRef<OsStr>) {
        debug!(message = %message.as_ref().to_string_lossy(), "PAM error message");
    }

    fn info_msg(&self, message: impl AsRef<OsStr>) {
        debug!(message = %message.as_ref().to_string_lossy(), "PAM message");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_must_be_file_names() {
        for bad in ["", "a/b", "..", "with space", "nul\0"] {
            assert!(
                matches!(PamAuthenticator::new(bad), Err(ConfigError::Service(_))),
                "{bad:?}"
            );
        }
        assert_eq!(PamAuthenticator::new("ftp").unwrap().service(), "ftp");
    }

    #[test]
    fn homes_come_from_the_account_or_the_template() {
        let auth = PamAuthenticator::new("ftp").unwrap();
        assert_eq!(auth.user("ann", "/home/ann".into()).home, "/home/ann");
        let auth = auth
            .with_home(Home::Template("/srv/ftp/{user}".into()))
            .unwrap()
            .with_quota(Some(10), Some(2));
        let user = auth.user("ann", "/home/ann".into());
        assert_eq!(user.home, "/srv/ftp/ann");
        assert_eq!((user.quota_bytes, user.quota_files), (Some(10), Some(2)));
        assert!(matches!(
            PamAuthenticator::new("ftp")
                .unwrap()
                .with_home(Home::Template(" ".into())),
            Err(ConfigError::HomeTemplate)
        ));
    }

    #[tokio::test]
    async fn unknown_accounts_and_system_accounts_go_on_in_the_chain() {
        let auth = PamAuthenticator::new("ftpgate-no-such-service").unwrap();
        let password = ftpgate_core::Password::new("x");
        let nobody = "ftpgate-no-such-account-7f3a";
        assert!(matches!(
            auth.authenticate(&LoginRequest::new(nobody, &password))
                .await,
            Err(AuthError::UnknownUser)
        ));
        // root exists everywhere and is below the default minimum uid.
        assert!(matches!(
            auth.authenticate(&LoginRequest::new("root", &password))
                .await,
            Err(AuthError::UnknownUser)
        ));
    }

    #[test]
    fn pam_errors_are_rejections_or_unavailable() {
        assert!(matches!(
            classify("s", "authentication", ErrorCode::AuthenticationError),
            Verdict::Rejected(_)
        ));
        assert!(matches!(
            classify("s", "account", ErrorCode::AccountExpired),
            Verdict::Rejected(_)
        ));
        assert_eq!(
            classify("s", "authentication", ErrorCode::UserUnknown),
            Verdict::Unknown
        );
        assert!(matches!(
            classify("s", "authentication", ErrorCode::AuthInfoUnavailable),
            Verdict::Unavailable(_)
        ));
    }
}
