//! Per-user limits read from the user's entry, over the defaults the settings give.

use ftpgate_core::{AuthError, UserLimits};
use ldap3::SearchEntry;
use tracing::warn;

/// Which attributes of a user's entry hold limits; an attribute the entry lacks leaves the
/// default of [`LdapSettings::limits`](crate::LdapSettings::limits).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LimitAttributes {
    /// Upload bytes per second (a whole number above 0).
    pub upload_rate: Option<String>,
    /// Download bytes per second (a whole number above 0).
    pub download_rate: Option<String>,
    /// Most sessions at once (a whole number above 0).
    pub max_sessions: Option<String>,
    /// Networks the user may log in from, one CIDR (or address) per value.
    pub allowed_networks: Option<String>,
}

impl LimitAttributes {
    /// The attribute names, to ask the search for.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        [
            &self.upload_rate,
            &self.download_rate,
            &self.max_sessions,
            &self.allowed_networks,
        ]
        .into_iter()
        .filter_map(|a| a.as_deref())
    }

    /// `defaults` with what `entry` says: a value that is not what its attribute should hold
    /// makes the login unavailable (logged), never a user without the limit.
    pub(crate) fn apply(
        &self,
        entry: &SearchEntry,
        defaults: &UserLimits,
    ) -> Result<UserLimits, AuthError> {
        let mut limits = defaults.clone();
        let bad = |attr: &str, value: &str, what: &str| {
            let message = format!(
                "LDAP entry {}: {attr} is not {what}: {value:?}; login refused",
                entry.dn
            );
            warn!("{message}");
            AuthError::Unavailable(message)
        };
        let number = |attr: &Option<String>| -> Result<Option<u64>, AuthError> {
            let Some(attr) = attr else { return Ok(None) };
            match values(entry, attr).first() {
                None => Ok(None),
                Some(value) => match value.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => Err(bad(attr, value, "a whole number above 0")),
                },
            }
        };
        if let Some(rate) = number(&self.upload_rate)? {
            limits.upload_rate = Some(rate);
        }
        if let Some(rate) = number(&self.download_rate)? {
            limits.download_rate = Some(rate);
        }
        if let Some(n) = number(&self.max_sessions)? {
            let attr = self.max_sessions.as_deref().unwrap_or_default();
            limits.max_sessions =
                Some(u32::try_from(n).map_err(|_| bad(attr, &n.to_string(), "a session count"))?);
        }
        if let Some(attr) = &self.allowed_networks {
            let found = values(entry, attr);
            if !found.is_empty() {
                limits.allowed_networks = found
                    .iter()
                    .map(|v| {
                        ftpgate_core::parse_network(v.trim())
                            .map_err(|_| bad(attr, v, "a network (10.0.0.0/8) or an address"))
                    })
                    .collect::<Result<_, _>>()?;
            }
        }
        Ok(limits)
    }
}

/// Every value of `attr` in `entry` (names compared without regard to case).
fn values<'e>(entry: &'e SearchEntry, attr: &str) -> &'e [String] {
    entry
        .attrs
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(attr))
        .map_or(&[], |(_, values)| values.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn entry(attrs: &[(&str, &[&str])]) -> SearchEntry {
        SearchEntry {
            dn: "uid=ann,dc=example,dc=org".into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect::<HashMap<_, _>>(),
            bin_attrs: HashMap::new(),
        }
    }

    fn mapping() -> LimitAttributes {
        LimitAttributes {
            upload_rate: Some("ftpUploadRate".into()),
            download_rate: Some("ftpDownloadRate".into()),
            max_sessions: Some("ftpMaxSessions".into()),
            allowed_networks: Some("ftpAllowedNetwork".into()),
        }
    }

    #[test]
    fn attributes_override_the_defaults_and_absent_ones_keep_them() {
        let defaults = UserLimits {
            max_sessions: Some(5),
            download_rate: Some(1000),
            ..UserLimits::default()
        };
        let got = mapping()
            .apply(
                &entry(&[
                    ("ftpmaxsessions", &["1"]),
                    ("ftpAllowedNetwork", &["10.0.0.0/8", "192.0.2.7"]),
                ]),
                &defaults,
            )
            .unwrap();
        assert_eq!(got.max_sessions, Some(1));
        assert_eq!(got.download_rate, Some(1000));
        assert_eq!(got.upload_rate, None);
        assert_eq!(got.allowed_networks.len(), 2);
    }

    #[test]
    fn a_bad_value_is_unavailable_never_unlimited() {
        for attrs in [
            &[("ftpMaxSessions", &["0"][..])][..],
            &[("ftpMaxSessions", &["many"][..])][..],
            &[("ftpUploadRate", &["-5"][..])][..],
            &[("ftpAllowedNetwork", &["10.0.0.0/8", "nowhere"][..])][..],
        ] {
            let got = mapping().apply(&entry(attrs), &UserLimits::default());
            assert!(matches!(got, Err(AuthError::Unavailable(_))), "{attrs:?}");
        }
    }
}
