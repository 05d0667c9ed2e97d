//! Users with password hashes, homes and permissions, checked in memory.
//!
//! Password verification is deliberately expensive (argon2id needs about 7 MiB with the
//! parameters [`hash_password`] uses, up to 19 MiB for hashes made with argon2's defaults, and
//! tens of milliseconds), so at most a few run at once, and a successful verification is remembered for
//! a bounded time (as SFTPGo does): the cache holds a keyed SHA-256 of the user, the stored hash
//! and the password, never the password itself, and entries expire.
//!
//! Passwords are stored as argon2id (recommended) or bcrypt hashes in PHC / modular-crypt form;
//! [`hash_password`] makes one. An unknown user costs the same hash verification as a wrong
//! password, so timing does not tell which names exist. Anonymous login (names `anonymous` and
//! `ftp`, any password) is off unless configured, and read-only unless configured otherwise.

#![deny(missing_docs)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use async_trait::async_trait;
use ftpgate_core::{AuthError, Authenticator, LoginRequest, PermissionMap, User};
use sha2::{Digest, Sha256};

/// How long a successful login is remembered by default.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
use rand::rngs::OsRng;

/// A configured user.
#[derive(Debug, Clone)]
pub struct UserEntry {
    /// Login name.
    pub name: String,
    /// argon2id or bcrypt hash of the password.
    pub password_hash: String,
    /// Home directory (in the storage factory's terms).
    pub home: String,
    /// Permissions.
    pub permissions: PermissionMap,
    /// Must log in over TLS and protect data connections.
    pub tls_required: bool,
    /// Most bytes the user's files may take.
    pub quota_bytes: Option<u64>,
    /// Most files the user may have.
    pub quota_files: Option<u64>,
    /// Bandwidth, sessions, networks and validity.
    pub limits: ftpgate_core::UserLimits,
}

impl UserEntry {
    /// A user with this password hash ([`hash_password`]), `permissions` everywhere in `home`,
    /// no quota and no TLS requirement; set the public fields for the rest.
    pub fn new(
        name: impl Into<String>,
        password_hash: impl Into<String>,
        home: impl Into<String>,
        permissions: ftpgate_core::Permissions,
    ) -> UserEntry {
        UserEntry {
            name: name.into(),
            password_hash: password_hash.into(),
            home: home.into(),
            permissions: PermissionMap::uniform(permissions),
            tls_required: false,
            quota_bytes: None,
            quota_files: None,
            limits: Default::default(),
        }
    }
}

/// Anonymous access.
#[derive(Debug, Clone)]
pub struct AnonymousEntry {
    /// Home directory.
    pub home: String,
    /// Permissions (read-only unless configured otherwise).
    pub permissions: PermissionMap,
}

/// A hash that is neither argon2 nor bcrypt, or is malformed.
#[derive(Debug, thiserror::Error)]
#[error("user {user:?}: password hash is not a valid argon2 or bcrypt hash")]
pub struct BadHash {
    /// The user whose hash is bad.
    pub user: String,
}

/// Authenticates against a fixed list of users.
#[derive(Debug, Clone)]
pub struct FileAuthenticator {
    users: Arc<HashMap<String, UserEntry>>,
    anonymous: Option<AnonymousEntry>,
    dummy_hash: Arc<String>,
    verifier: Arc<Verifier>,
}

/// Most verified logins remembered at once.
const CACHE_ENTRIES: usize = 10_000;

#[derive(Debug)]
struct Verifier {
    /// Password verifications allowed at once (each takes the hash's memory cost).
    slots: tokio::sync::Semaphore,
    /// Keyed digests of recently verified credentials, with their expiry.
    cache: Mutex<HashMap<[u8; 32], Instant>>,
    /// Verifications in progress, so that a burst of identical logins verifies once.
    inflight: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
    key: [u8; 32],
    ttl: Duration,
    /// argon2 working memory, kept between verifications: at most one buffer per slot, so the
    /// server's memory does not grow with logins.
    memory: Mutex<Vec<Vec<argon2::Block>>>,
}

impl Verifier {
    fn new(ttl: Duration) -> Self {
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut OsRng, &mut key);
        Verifier {
            slots: tokio::sync::Semaphore::new(parallel),
            cache: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            key,
            ttl,
            // One buffer up front, sized for the parameters hashes are made with, so the first
            // login does not grow the process.
            memory: Mutex::new(vec![vec![
                argon2::Block::default();
                hash_params().block_count()
            ]]),
        }
    }

    fn digest(&self, user: &str, hash: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [
            &self.key[..],
            user.as_bytes(),
            hash.as_bytes(),
            password.as_bytes(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.finalize().into()
    }

    fn cached(&self, digest: &[u8; 32]) -> bool {
        let now = Instant::now();
        self.cache
            .lock()
            .ok()
            .and_then(|c| c.get(digest).copied())
            .is_some_and(|expiry| expiry > now)
    }

    fn remember(&self, digest: [u8; 32]) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_ENTRIES {
                cache.retain(|_, expiry| *expiry > now);
                if cache.len() >= CACHE_ENTRIES {
                    return;
                }
            }
            cache.insert(digest, now + self.ttl);
        }
    }

    /// Checks a known user's credentials: from the cache, or by one verification shared with
    /// any identical login arriving meanwhile.
    async fn check(
        &self,
        digest: [u8; 32],
        hash: String,
        password: String,
    ) -> Result<bool, AuthError> {
        if self.cached(&digest) {
            return Ok(true);
        }
        let gate = match self.inflight.lock() {
            Ok(mut inflight) => inflight.entry(digest).or_default().clone(),
            Err(_) => Arc::default(),
        };
        let turn = gate.lock().await;
        let result = if self.cached(&digest) {
            Ok(true)
        } else {
            let ok = self.verify(hash, password).await;
            if matches!(ok, Ok(true)) {
                self.remember(digest);
            }
            ok
        };
        drop(turn);
        if let Ok(mut inflight) = self.inflight.lock() {
            // The map's reference and ours: nobody else is waiting.
            if inflight
                .get(&digest)
                .is_some_and(|g| Arc::strong_count(g) <= 2)
            {
                inflight.remove(&digest);
            }
        }
        result
    }

    /// Verifies with a bounded number of verifications running at once.
    async fn verify(&self, hash: String, password: String) -> Result<bool, AuthError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        let mut memory = self
            .memory
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_default();
        let (ok, memory) = tokio::task::spawn_blocking(move || {
            let ok = verify_password_with(&hash, &password, &mut memory);
            (ok, memory)
        })
        .await
        .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        if let Ok(mut pool) = self.memory.lock() {
            pool.push(memory);
        }
        Ok(ok)
    }
}

/// The login names that mean anonymous access.
pub const ANONYMOUS_NAMES: [&str; 2] = ["anonymous", "ftp"];

/// argon2id's memory cost for new hashes, in KiB: 7 MiB with 5 passes, one of the settings
/// OWASP's password storage guide lists as equal in defence to its first choice (19 MiB with
/// 2 passes, argon2's default) for about the same CPU time. A password check then holds
/// 7 MiB where the default holds 19, per check running at once and in the buffer kept for the
/// next one. Hashes made with other parameters (argon2's defaults, bcrypt) keep working.
pub const HASH_MEMORY_KIB: u32 = 7 * 1024;

/// argon2id's passes for new hashes (see [`HASH_MEMORY_KIB`]).
pub const HASH_PASSES: u32 = 5;

fn hash_params() -> argon2::Params {
    // Constants within argon2's bounds: the default is unreachable.
    argon2::Params::new(HASH_MEMORY_KIB, HASH_PASSES, 1, None).unwrap_or_default()
}

/// Hashes a password with argon2id (7 MiB, 5 passes, see [`HASH_MEMORY_KIB`]) and a random
/// salt, in PHC string form.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    let hasher = Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        hash_params(),
    );
    match hasher.hash_password(password.as_bytes(), &salt) {
        Ok(hash) => hash.to_string(),
        // Only reachable with invalid parameters, which the defaults are not.
        Err(e) => panic!("argon2 hashing failed: {e}"),
    }
}

/// Whether `hash` is a supported, well-formed password hash.
pub fn is_valid_hash(hash: &str) -> bool {
    if is_bcrypt(hash) {
        hash.len() == 60
    } else {
        PasswordHash::new(hash).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
    }
}

fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$", "$2x$"]
        .iter()
        .any(|p| hash.starts_with(p))
}

/// Checks `password` against `hash` (argon2 or bcrypt).
pub fn verify_password(hash: &str, password: &str) -> bool {
    verify_password_with(hash, password, &mut Vec::new())
}

/// Checks `password` against `hash`, computing argon2 in `memory` (grown to the hash's memory
/// cost if needed), so callers can keep one buffer instead of allocating it each time.
fn verify_password_with(hash: &str, password: &str, memory: &mut Vec<argon2::Block>) -> bool {
    if is_bcrypt(hash) {
        return bcrypt::verify(password, hash).unwrap_or(false);
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let (Ok(params), Some(salt), Some(expected)) =
        (argon2::Params::try_from(&parsed), parsed.salt, parsed.hash)
    else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, argon2::Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params);
    if argon2
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..blocks])
        .is_err()
    {
        return false;
    }
    // Output's comparison takes the same time whatever the bytes.
    argon2::password_hash::Output::new(&out).is_ok_and(|out| out == expected)
}

impl FileAuthenticator {
    /// An authenticator for `users`, with optional anonymous access.
    pub fn new(users: Vec<UserEntry>, anonymous: Option<AnonymousEntry>) -> Result<Self, BadHash> {
        let mut map = HashMap::new();
        for user in users {
            if !is_valid_hash(&user.password_hash) {
                return Err(BadHash { user: user.name });
            }
            map.insert(user.name.clone(), user);
        }
        Ok(FileAuthenticator {
            users: Arc::new(map),
            anonymous,
            dummy_hash: Arc::new(hash_password("ftpgate dummy password for unknown users")),
            verifier: Arc::new(Verifier::new(DEFAULT_CACHE_TTL)),
        })
    }

    /// How long a successful login is remembered (0 turns the cache off); default 5 minutes.
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        // Unshared until the authenticator is cloned: keep its hashing memory.
        match Arc::get_mut(&mut self.verifier) {
            Some(verifier) => verifier.ttl = ttl,
            None => self.verifier = Arc::new(Verifier::new(ttl)),
        }
        self
    }

    /// The configured user names.
    pub fn user_names(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }
}

#[async_trait]
impl Authenticator for FileAuthenticator {
    async fn authenticate(&self, request: &LoginRequest<'_>) -> Result<User, AuthError> {
        let (username, password) = (request.username(), request.password());
        if let Some(anon) = &self.anonymous {
            if ANONYMOUS_NAMES.contains(&username.to_ascii_lowercase().as_str())
                && !self.users.contains_key(username)
            {
                return Ok(User {
                    name: username.to_string(),
                    home: anon.home.clone(),
                    permissions: anon.permissions.clone(),
                    tls_required: false,
                    quota_bytes: None,
                    quota_files: None,
                    limits: Default::default(),
                });
            }
        }
        let entry = self.users.get(username).cloned();
        let hash = entry
            .as_ref()
            .map(|e| e.password_hash.clone())
            .unwrap_or_else(|| self.dummy_hash.to_string());
        let digest = self.verifier.digest(username, &hash, password.expose());
        let ok = if entry.is_some() {
            self.verifier
                .check(digest, hash, password.expose().to_string())
                .await?
        } else {
            // Unknown users cost one verification against a dummy hash, like a wrong password.
            self.verifier
                .verify(hash, password.expose().to_string())
                .await?
        };
        match (entry, ok) {
            (Some(entry), true) => Ok(User {
                name: entry.name,
                home: entry.home,
                permissions: entry.permissions,
                tls_required: entry.tls_required,
                quota_bytes: entry.quota_bytes,
                quota_files: entry.quota_files,
                limits: entry.limits,
            }),
            (Some(_), false) => Err(AuthError::InvalidCredentials),
            // After the same work as a wrong password: the client sees no difference.
            (None, _) => Err(AuthError::UnknownUser),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftpgate_core::{Password, Permissions};

    async fn login(auth: &FileAuthenticator, name: &str, pw: &str) -> Result<User, AuthError> {
        let password = Password::new(pw);
        auth.authenticate(&LoginRequest::new(name, &password)).await
    }

    fn user(name: &str, hash: String) -> UserEntry {
        UserEntry::new(name, hash, "/tmp", Permissions::ALL)
    }

    #[tokio::test]
    async fn argon2_and_bcrypt_users() {
        let bcrypt_hash = bcrypt::hash("pw2", 4).unwrap();
        let auth = FileAuthenticator::new(
            vec![user("a", hash_password("pw1")), user("b", bcrypt_hash)],
            None,
        )
        .unwrap();
        assert!(login(&auth, "a", "pw1").await.is_ok());
        assert!(login(&auth, "a", "pw2").await.is_err());
        assert!(login(&auth, "b", "pw2").await.is_ok());
        assert!(login(&auth, "b", "pw1").await.is_err());
        assert!(matches!(
            login(&auth, "a", "pw2").await,
            Err(AuthError::InvalidCredentials)
        ));
        assert!(matches!(
            login(&auth, "nobody", "pw1").await,
            Err(AuthError::UnknownUser)
        ));
        assert!(login(&auth, "anonymous", "x@y").await.is_err());
    }

    #[tokio::test]
    async fn anonymous_when_enabled() {
        let anon = AnonymousEntry {
            home: "/pub".into(),
            permissions: PermissionMap::uniform(Permissions::READ_ONLY),
        };
        let auth = FileAuthenticator::new(vec![], Some(anon)).unwrap();
        let user = login(&auth, "anonymous", "me@example.com").await.unwrap();
        assert_eq!(user.home, "/pub");
        assert_eq!(
            user.permissions,
            PermissionMap::uniform(Permissions::READ_ONLY)
        );
        assert!(login(&auth, "FTP", "").await.is_ok());
    }

    #[tokio::test]
    async fn verified_logins_are_cached_without_the_password() {
        let auth = FileAuthenticator::new(vec![user("a", hash_password("pw"))], None).unwrap();
        let start = std::time::Instant::now();
        assert!(login(&auth, "a", "pw").await.is_ok());
        let cold = start.elapsed();
        let start = std::time::Instant::now();
        for _ in 0..20 {
            assert!(login(&auth, "a", "pw").await.is_ok());
        }
        assert!(
            start.elapsed() < cold,
            "20 cached logins took longer than one verification"
        );
        // A wrong password is never served from the cache.
        assert!(login(&auth, "a", "pw2").await.is_err());
        let cache = auth.verifier.cache.lock().unwrap();
        assert_eq!(cache.len(), 1);
        assert!(cache.keys().all(|k| !k.windows(2).any(|w| w == b"pw")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_identical_logins_verifies_once() {
        let auth = FileAuthenticator::new(vec![user("a", hash_password("pw"))], None).unwrap();
        let start = std::time::Instant::now();
        let logins: Vec<_> = (0..50)
            .map(|_| {
                let auth = auth.clone();
                tokio::spawn(async move { login(&auth, "a", "pw").await.is_ok() })
            })
            .collect();
        for login in logins {
            assert!(login.await.unwrap());
        }
        let burst = start.elapsed();
        let start = std::time::Instant::now();
        let _ = verify_password(&hash_password("x"), "x");
        let one = start.elapsed();
        assert!(
            burst < one * 10,
            "50 identical logins took {burst:?}; one verification takes {one:?}"
        );
        assert!(auth.verifier.inflight.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_cache_can_be_turned_off() {
        let auth = FileAuthenticator::new(vec![user("a", hash_password("pw"))], None)
            .unwrap()
            .with_cache_ttl(Duration::ZERO);
        assert!(login(&auth, "a", "pw").await.is_ok());
        assert!(auth.verifier.cache.lock().unwrap().is_empty());
    }

    #[test]
    fn verification_in_reused_memory_matches_any_argon2_parameters() {
        let mut memory = Vec::new();
        for (algorithm, m, t, p) in [
            (argon2::Algorithm::Argon2id, 19_456, 2, 1),
            (argon2::Algorithm::Argon2i, 8_192, 3, 2),
            (argon2::Algorithm::Argon2d, 4_096, 1, 1),
        ] {
            let params = argon2::Params::new(m, t, p, None).unwrap();
            let hasher = Argon2::new(algorithm, argon2::Version::V0x13, params);
            let salt = SaltString::generate(&mut OsRng);
            let hash = hasher.hash_password(b"right", &salt).unwrap().to_string();
            assert!(verify_password_with(&hash, "right", &mut memory), "{hash}");
            assert!(!verify_password_with(&hash, "wrong", &mut memory), "{hash}");
        }
        assert!(!verify_password_with(
            "$argon2id$v=19$garbage",
            "x",
            &mut memory
        ));
    }

    #[test]
    fn bad_hashes_are_refused() {
        assert!(FileAuthenticator::new(vec![user("a", "plaintext".into())], None).is_err());
        assert!(!is_valid_hash("$2b$short"));
        assert!(is_valid_hash(&hash_password("x")));
        assert!(hash_password("x").starts_with("$argon2id$v=19$m=7168,t=5,p=1$"));
    }
}
