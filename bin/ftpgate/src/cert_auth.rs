//! `[[auth]] type = "certificate"`: the client certificate presented in the TLS handshake
//! (already verified against `tls.client_ca` by the TLS layer) names the user.
//!
//! The certificate names a user by its subject common name (`map = "cn"`), by one of its
//! subject alternative names, e-mail or DNS (`map = "san"`), or by its SHA-256 fingerprint in a
//! table (`map = { "AA:BB:..." = "alice" }`). The login name (USER) must be that name.
//! With `password = "none"`, that is the whole login: the user gets `home_template` (with
//! `{user}` replaced) and `permissions`. With `password = "required"`, the authenticators after
//! this one in the chain check the password as usual, and a login without a certificate naming
//! the user is refused.

use std::collections::HashMap;
use std::sync::Arc;

use ftpgate_core::async_trait;
use ftpgate_core::{AuthError, Authenticator, LoginRequest, PermissionMap, User};
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;

/// How a certificate names its user.
#[derive(Debug, Clone)]
pub(crate) enum CertMap {
    /// The subject's common name.
    CommonName,
    /// An e-mail or DNS subject alternative name.
    AltName,
    /// SHA-256 fingerprint (upper-case hex, no separators) to user.
    Fingerprints(HashMap<String, String>),
}

/// What the certificate is worth.
pub(crate) enum Then {
    /// Enough by itself: the user's home and permissions.
    Accept {
        home_template: String,
        permissions: PermissionMap,
    },
    /// Only with the password, which these check.
    Password(Arc<dyn Authenticator>),
}

/// Logins by client certificate; see the [module documentation](self).
pub(crate) struct CertificateAuthenticator {
    pub(crate) map: CertMap,
    pub(crate) then: Then,
}

impl CertificateAuthenticator {
    /// Whether the certificate chain's end entity names `user`.
    fn names(&self, certificates: &[ftpgate_core::CertificateDer<'static>], user: &str) -> bool {
        let Some(der) = certificates.first() else {
            return false;
        };
        match &self.map {
            CertMap::Fingerprints(table) => table
                .get(&fingerprint(der))
                .is_some_and(|name| name == user),
            CertMap::CommonName | CertMap::AltName => {
                let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
                    return false;
                };
                if matches!(self.map, CertMap::CommonName) {
                    cert.subject()
                        .iter_common_name()
                        .filter_map(|cn| cn.as_str().ok())
                        .any(|cn| cn == user)
                } else {
                    let Ok(Some(san)) = cert.subject_alternative_name() else {
                        return false;
                    };
                    san.value.general_names.iter().any(|name| match name {
                        GeneralName::RFC822Name(s) | GeneralName::DNSName(s) => *s == user,
                        _ => false,
                    })
                }
            }
        }
    }
}

#[async_trait]
impl Authenticator for CertificateAuthenticator {
    async fn authenticate(&self, request: &LoginRequest<'_>) -> Result<User, AuthError> {
        let user = request.username();
        let named = usable_name(user) && self.names(request.client_certificates(), user);
        match &self.then {
            Then::Accept {
                home_template,
                permissions,
            } => {
                if !named {
                    // The certificate does not speak for this name: others may know it.
                    return Err(AuthError::UnknownUser);
                }
                let mut found = User::new(
                    user,
                    home_template.replace("{user}", user),
                    ftpgate_core::Permissions::READ_ONLY,
                );
                found.permissions = permissions.clone();
                Ok(found)
            }
            Then::Password(rest) => {
                if !named {
                    return Err(AuthError::InvalidCredentials);
                }
                rest.authenticate(request).await
            }
        }
    }
}

/// Whether a name can go into a home path: not empty, no `/`, no control character, not `.`
/// or `..`.
fn usable_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\\')
        && !name.chars().any(char::is_control)
}

/// SHA-256 of a DER certificate, upper-case hex without separators.
pub(crate) fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// A fingerprint as written in the config (`AA:BB:...`, any case, colons optional), in the
/// form [`fingerprint`] gives; `None` unless it is 32 bytes of hex.
pub(crate) fn normalise_fingerprint(text: &str) -> Option<String> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftpgate_core::{CertificateDer, Password, Permissions};

    fn cert(cn: &str, sans: &[&str]) -> CertificateDer<'static> {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    fn accepting(map: CertMap) -> CertificateAuthenticator {
        CertificateAuthenticator {
            map,
            then: Then::Accept {
                home_template: "/srv/ftp/{user}".into(),
                permissions: PermissionMap::uniform(Permissions::READ_ONLY),
            },
        }
    }

    async fn login(
        auth: &CertificateAuthenticator,
        user: &str,
        certs: &[CertificateDer<'static>],
    ) -> Result<User, AuthError> {
        let password = Password::new("");
        auth.authenticate(&LoginRequest::new(user, &password).with_tls(true, certs))
            .await
    }

    #[tokio::test]
    async fn the_common_name_names_the_user() {
        let auth = accepting(CertMap::CommonName);
        let alice = [cert("alice", &["alice.example.org"])];
        let user = login(&auth, "alice", &alice).await.unwrap();
        assert_eq!(user.home, "/srv/ftp/alice");
        assert!(matches!(
            login(&auth, "bob", &alice).await,
            Err(AuthError::UnknownUser)
        ));
        assert!(matches!(
            login(&auth, "alice", &[]).await,
            Err(AuthError::UnknownUser)
        ));
        // A common name that would leave the home directory is never a user.
        let sneaky = [cert("..", &[])];
        assert!(login(&auth, "..", &sneaky).await.is_err());
    }

    #[tokio::test]
    async fn a_subject_alternative_name_names_the_user() {
        let auth = accepting(CertMap::AltName);
        let certs = [cert("Alice Liddell", &["alice.example.org"])];
        assert!(login(&auth, "alice.example.org", &certs).await.is_ok());
        assert!(login(&auth, "Alice Liddell", &certs).await.is_err());
    }

    #[tokio::test]
    async fn a_fingerprint_table_names_the_user() {
        let known = cert("whoever", &[]);
        let unknown = cert("whoever", &[]);
        let table = HashMap::from([(fingerprint(&known), "carol".to_string())]);
        let auth = accepting(CertMap::Fingerprints(table));
        assert!(login(&auth, "carol", &[known]).await.is_ok());
        assert!(matches!(
            login(&auth, "carol", &[unknown]).await,
            Err(AuthError::UnknownUser)
        ));
    }

    #[test]
    fn fingerprints_are_read_in_any_common_form() {
        let f = fingerprint(b"x");
        let colons: Vec<String> = f
            .as_bytes()
            .chunks(2)
            .map(|p| String::from_utf8_lossy(p).to_lowercase())
            .collect();
        assert_eq!(normalise_fingerprint(&colons.join(":")), Some(f.clone()));
        assert_eq!(normalise_fingerprint(&f), Some(f));
        assert_eq!(normalise_fingerprint("AA:BB"), None);
    }
}
