//! The authenticator against a real OpenLDAP server (Debian's slapd, started per test on a
//! loopback port by `ftpgate_test_support::slapd`, seeded with ldapadd).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::{Duration, Instant};

use ftpgate_auth_ldap::{LdapAuthenticator, LdapSettings};
use ftpgate_core::{AuthError, Authenticator, LoginRequest, Password, Permissions, User};
use ftpgate_test_support::slapd::{
    self, BASE_DN, SERVICE_DN, SERVICE_PASSWORD, Slapd, group_ldif, user_ldif,
};

const RO: &str = "cn=ftp-ro,ou=groups,dc=example,dc=org";
const RW: &str = "cn=ftp-rw,ou=groups,dc=example,dc=org";

/// A directory with users and groups:
/// - ann (homeDirectory /srv/ann, employeeNumber 5000 as a quota), in ftp-rw;
/// - ro, in ftp-ro; both, in both groups; plain, in no group;
/// - names with filter metacharacters: `star*`, `par)(en`, `back\slash`.
fn directory() -> Slapd {
    let ldap = slapd::start();
    let mut ldif = String::new();
    ldif.push_str(&user_ldif("ann", "ann-pw", Some("/srv/ann")).replace(
        "userPassword: ann-pw\n",
        "userPassword: ann-pw\nemployeeNumber: 5000\n",
    ));
    for (name, password) in [
        ("ro", "ro-pw"),
        ("both", "both-pw"),
        ("plain", "plain-pw"),
        ("star*", "star-pw"),
        ("par)(en", "paren-pw"),
        ("back\\slash", "back-pw"),
    ] {
        ldif.push_str(&user_ldif(name, password, None));
    }
    ldif.push_str(&group_ldif("ftp-ro", &["ro", "both"]));
    ldif.push_str(&group_ldif("ftp-rw", &["ann", "both"]));
    // A group the configuration does not map.
    ldif.push_str(&group_ldif("other", &["plain"]));
    ldap.add(&ldif);
    ldap
}

fn settings(ldap: &Slapd) -> LdapSettings {
    let mut s = LdapSettings::new(&ldap.url, BASE_DN);
    s.bind = Some((SERVICE_DN.to_string(), SERVICE_PASSWORD.to_string()));
    s.home_template = Some("/srv/ftp/{user}".to_string());
    s.connect_timeout = Duration::from_secs(2);
    s.timeout = Duration::from_secs(2);
    s
}

async fn login(auth: &LdapAuthenticator, user: &str, password: &str) -> Result<User, AuthError> {
    let password = Password::new(password);
    auth.authenticate(&LoginRequest::new(user, &password)).await
}

fn perms(letters: &str) -> Permissions {
    Permissions::parse(letters).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn logins_by_uid_wrong_password_unknown_user_and_empty_password() {
    let ldap = directory();
    let mut s = settings(&ldap);
    s.home_attribute = Some("homeDirectory".to_string());
    s.quota_attribute = Some("employeeNumber".to_string());
    s.cache_ttl = Duration::ZERO;
    let auth = LdapAuthenticator::new(s).unwrap();

    let ann = login(&auth, "ann", "ann-pw").await.unwrap();
    assert_eq!(ann.name, "ann");
    // From the attribute; "ro" has the posixAccount placeholder "/nonexistent".
    assert_eq!(ann.home, "/srv/ann");
    assert_eq!(ann.quota_bytes, Some(5000));
    assert_eq!(
        ann.permissions.at(&ftpgate_core::VirtualPath::root()),
        Permissions::ALL
    );
    let plain = login(&auth, "plain", "plain-pw").await.unwrap();
    assert_eq!(plain.quota_bytes, None);

    assert!(matches!(
        login(&auth, "ann", "wrong").await,
        Err(AuthError::InvalidCredentials)
    ));
    assert!(matches!(
        login(&auth, "nobody", "x").await,
        Err(AuthError::UnknownUser)
    ));
    // An empty password is never a bind (it would be an unauthenticated one).
    assert!(matches!(
        login(&auth, "ann", "").await,
        Err(AuthError::InvalidCredentials)
    ));
    // An unknown name with an empty password is still unknown (the chain goes on, to the
    // anonymous user of [[users]], say).
    assert!(matches!(
        login(&auth, "anonymous", "").await,
        Err(AuthError::UnknownUser)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_passwords_never_bind_and_unknown_names_cost_a_refused_bind() {
    let ldap = directory();
    let auth = LdapAuthenticator::new(settings(&ldap)).unwrap();
    let ann_bind = format!("BIND dn=\"uid=ann,{}\"", slapd::PEOPLE_DN);
    assert!(matches!(
        login(&auth, "ann", "").await,
        Err(AuthError::InvalidCredentials)
    ));
    // Searched for, never bound as (the service account's bind is the only one).
    let log = ldap.log();
    assert!(log.contains("SRCH"), "{log}");
    assert!(!log.contains(&ann_bind), "{log}");

    assert!(matches!(
        login(&auth, "nobody", "guess").await,
        Err(AuthError::UnknownUser)
    ));
    let decoy = format!("BIND dn=\"cn=ftpgate-no-such-user,{BASE_DN}\"");
    assert!(ldap.log().contains(&decoy), "{}", ldap.log());

    assert!(login(&auth, "ann", "ann-pw").await.is_ok());
    assert!(ldap.log().contains(&ann_bind));
}

#[tokio::test(flavor = "multi_thread")]
async fn searches_reuse_one_service_bound_connection() {
    let ldap = directory();
    let mut s = settings(&ldap);
    s.cache_ttl = Duration::ZERO;
    s.group_permissions = vec![(RO.to_string(), perms("elr"))];
    let auth = LdapAuthenticator::new(s).unwrap();
    for _ in 0..3 {
        login(&auth, "ro", "ro-pw").await.unwrap();
        assert!(login(&auth, "ro", "bad").await.is_err());
    }
    let log = ldap.log();
    let service_binds = log
        .matches(&format!("BIND dn=\"{SERVICE_DN}\" method=128"))
        .count();
    let user_binds = log
        .matches(&format!(
            "BIND dn=\"uid=ro,{}\" method=128",
            slapd::PEOPLE_DN
        ))
        .count();
    // Six logins: one service bind, six user binds, each on a connection of its own.
    assert_eq!(service_binds, 1, "{log}");
    assert_eq!(user_binds, 6, "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn home_template_and_group_permissions() {
    let ldap = directory();
    let mut s = settings(&ldap);
    s.group_permissions = vec![
        (RO.to_string(), perms("elr")),
        (RW.to_string(), perms("elradfmw")),
    ];
    s.default_permissions = perms("el");
    let auth = LdapAuthenticator::new(s).unwrap();
    let root = ftpgate_core::VirtualPath::root();

    let ann = login(&auth, "ann", "ann-pw").await.unwrap();
    assert_eq!(ann.home, "/srv/ftp/ann");
    assert_eq!(ann.permissions.at(&root), perms("elradfmw"));
    // The directory ignores case; the user is named as the entry's uid spells it, so the
    // home (and the engine's per-user limits) are ann's.
    let upper = login(&auth, "ANN", "ann-pw").await.unwrap();
    assert_eq!(
        (upper.name.as_str(), upper.home.as_str()),
        ("ann", "/srv/ftp/ann")
    );
    assert_eq!(upper.permissions.at(&root), perms("elradfmw"));
    let ro = login(&auth, "ro", "ro-pw").await.unwrap();
    assert_eq!(ro.permissions.at(&root), perms("elr"));
    // Several groups add up.
    let both = login(&auth, "both", "both-pw").await.unwrap();
    assert_eq!(both.permissions.at(&root), perms("elradfmw"));
    // No mapped group: the default.
    let plain = login(&auth, "plain", "plain-pw").await.unwrap();
    assert_eq!(plain.permissions.at(&root), perms("el"));
}

#[tokio::test(flavor = "multi_thread")]
async fn filter_metacharacters_in_names_match_only_themselves() {
    let ldap = directory();
    let auth = LdapAuthenticator::new(settings(&ldap)).unwrap();
    for (name, password) in [
        ("star*", "star-pw"),
        ("par)(en", "paren-pw"),
        ("back\\slash", "back-pw"),
    ] {
        let user = login(&auth, name, password).await.unwrap();
        assert_eq!(user.name, name);
        // Someone else's password does not work for them.
        assert!(matches!(
            login(&auth, name, "ann-pw").await,
            Err(AuthError::InvalidCredentials)
        ));
    }
    // Names that would widen or break an unescaped filter find nobody, and are not errors.
    for name in [
        "*",
        "a*",
        "*)(uid=*",
        "ann)(|(uid=*",
        "ann*",
        "\\",
        "back\\",
        ")(",
        "par)(",
        "\0",
        "(",
    ] {
        let got = login(&auth, name, "ann-pw").await;
        assert!(
            matches!(got, Err(AuthError::UnknownUser)),
            "{name:?}: {got:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filter_finding_two_entries_is_refused() {
    let ldap = directory();
    let mut ldif = user_ldif("twin1", "twin-pw", None);
    ldif.push_str(&user_ldif("twin2", "twin-pw", None));
    let ldif = ldif
        .replace("cn: twin1\n", "cn: twin\n")
        .replace("cn: twin2\n", "cn: twin\n");
    ldap.add(&ldif);
    let mut s = settings(&ldap);
    s.filter = "(&(objectClass=inetOrgPerson)(cn={user}))".to_string();
    let auth = LdapAuthenticator::new(s).unwrap();
    assert!(matches!(
        login(&auth, "twin", "twin-pw").await,
        Err(AuthError::InvalidCredentials)
    ));
    // One entry by the same filter logs in.
    assert!(login(&auth, "ann", "ann-pw").await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_search_and_a_refused_service_bind() {
    let ldap = directory();
    let mut s = settings(&ldap);
    s.bind = None;
    let auth = LdapAuthenticator::new(s).unwrap();
    assert_eq!(login(&auth, "ann", "ann-pw").await.unwrap().name, "ann");

    let mut s = settings(&ldap);
    s.bind = Some((SERVICE_DN.to_string(), "not-the-password".to_string()));
    let auth = LdapAuthenticator::new(s).unwrap();
    let got = login(&auth, "ann", "ann-pw").await;
    assert!(matches!(got, Err(AuthError::Unavailable(_))), "{got:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_server_is_unavailable_and_a_restarted_one_is_used_again() {
    let mut ldap = directory();
    let mut s = settings(&ldap);
    s.cache_ttl = Duration::from_secs(60);
    let auth = LdapAuthenticator::new(s).unwrap();
    // Fills the pool and the cache.
    login(&auth, "ann", "ann-pw").await.unwrap();

    ldap.stop();
    // The cached login still works; nothing else does, and nothing is a rejection.
    assert_eq!(login(&auth, "ann", "ann-pw").await.unwrap().name, "ann");
    for (user, password) in [("ann", "wrong"), ("ro", "ro-pw"), ("nobody", "x")] {
        let started = Instant::now();
        let got = login(&auth, user, password).await;
        assert!(
            matches!(got, Err(AuthError::Unavailable(_))),
            "{user}: {got:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    ldap.restart();
    // The pooled connections died with the server; fresh ones are made.
    assert_eq!(login(&auth, "ro", "ro-pw").await.unwrap().name, "ro");
    assert!(matches!(
        login(&auth, "ann", "wrong").await,
        Err(AuthError::InvalidCredentials)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_answers_times_out() {
    // A listener that accepts and says nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut s = LdapSettings::new(format!("ldap://{addr}"), BASE_DN);
    s.bind = Some((SERVICE_DN.to_string(), SERVICE_PASSWORD.to_string()));
    s.home_template = Some("/srv/{user}".to_string());
    s.timeout = Duration::from_millis(500);
    let auth = LdapAuthenticator::new(s).unwrap();
    let started = Instant::now();
    let got = login(&auth, "ann", "ann-pw").await;
    assert!(matches!(got, Err(AuthError::Unavailable(_))), "{got:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn accepted_logins_are_cached_and_rejections_are_not() {
    let mut ldap = directory();
    let mut s = settings(&ldap);
    s.cache_ttl = Duration::from_secs(60);
    let auth: Arc<LdapAuthenticator> = LdapAuthenticator::new(s).unwrap();
    login(&auth, "ro", "ro-pw").await.unwrap();
    assert!(login(&auth, "ro", "bad").await.is_err());
    ldap.stop();
    // Only the exact name and password that succeeded are remembered.
    assert!(login(&auth, "ro", "ro-pw").await.is_ok());
    assert!(matches!(
        login(&auth, "ro", "bad").await,
        Err(AuthError::Unavailable(_))
    ));
    assert!(matches!(
        login(&auth, "RO", "ro-pw").await,
        Err(AuthError::Unavailable(_))
    ));
}

struct Ca {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn ca() -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test LDAP CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: rcgen::Issuer::new(params, key),
    }
}

fn server_tls(ca: &Ca) -> slapd::TlsFiles {
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    slapd::TlsFiles {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_and_ldaps_with_a_private_ca() {
    let ca = ca();
    let ldap = slapd::start_with_tls(&server_tls(&ca));
    ldap.add(&user_ldif("ann", "ann-pw", Some("/srv/ann")));

    let mut s = settings(&ldap);
    s.starttls = true;
    s.ca_pem = Some(ca.pem.as_bytes().to_vec());
    let auth = LdapAuthenticator::new(s).unwrap();
    assert_eq!(login(&auth, "ann", "ann-pw").await.unwrap().name, "ann");
    assert!(matches!(
        login(&auth, "ann", "nope").await,
        Err(AuthError::InvalidCredentials)
    ));

    let mut s = settings(&ldap);
    s.url = ldap.ldaps_url.clone().unwrap();
    s.ca_pem = Some(ca.pem.as_bytes().to_vec());
    let auth = LdapAuthenticator::new(s).unwrap();
    assert_eq!(login(&auth, "ann", "ann-pw").await.unwrap().name, "ann");

    // A certificate from another CA is not trusted: unavailable, not a rejection.
    let mut s = settings(&ldap);
    s.url = ldap.ldaps_url.clone().unwrap();
    s.ca_pem = Some(self::ca().pem.into_bytes());
    let auth = LdapAuthenticator::new(s).unwrap();
    let got = login(&auth, "ann", "ann-pw").await;
    assert!(matches!(got, Err(AuthError::Unavailable(_))), "{got:?}");
}
