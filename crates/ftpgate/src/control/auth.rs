//! Logging in: the authenticator, the login guard, the virtual host chosen with HOST, and the
//! user's storage and quota opened at login.

use std::io;

use ftpgate_core::{AuthError, LoginRequest};
use ftpgate_proto::Step;
use ftpgate_proto::hostport::canonical;
use ftpgate_proto::session::{LoginFailure, SessionUser};
use tracing::{error, info, info_span, warn};

use super::Control;
use crate::events::Event;

impl Control {
    /// USER/PASS: authenticates, then tells the login guard (a rejection waits its delay, and
    /// may ban the address: the session's reply and its closing reply go out, and nothing is
    /// left to perform). An authenticator that could not decide is no rejection: the guard
    /// is not told, and the session closes with 421.
    pub(super) async fn login(
        &mut self,
        user: &str,
        password: &ftpgate_proto::Password,
    ) -> io::Result<Step> {
        let began = std::time::Instant::now();
        let result = self.authenticate(user, password).await;
        if let Some(metrics) = &self.ctx.metrics {
            let anonymous = ["anonymous", "ftp"]
                .iter()
                .any(|a| a.eq_ignore_ascii_case(user));
            metrics.login(result.is_ok(), anonymous, began.elapsed());
        }
        let ip = canonical(self.client.ip());
        Ok(match result {
            Ok(_) => {
                self.ctx.login_guard.succeeded(ip).await;
                let step = self.session.handle_auth_result(result);
                if let Some(user) = self.session.user_name() {
                    self.login_span = info_span!("login", user);
                }
                self.entry.set_user(self.session.user_name());
                step
            }
            // Neither a failure nor a success: the guard's count for the address stays.
            Err(LoginFailure::Unavailable) => self.session.handle_auth_result(result),
            Err(LoginFailure::Rejected) => {
                let decision = self
                    .ctx
                    .login_guard
                    .failed_login(ip, std::time::Instant::now())
                    .await;
                tokio::time::sleep(decision.delay).await;
                let step = self.session.handle_auth_result(result);
                if decision.banned {
                    warn!("address banned after repeated failed logins");
                    if let Step::Reply(reply) = step {
                        self.send(&[reply]).await?;
                    }
                    let reply = self.session.handle_ban();
                    self.send(&[reply]).await?;
                    return Ok(Step::Nothing);
                }
                step
            }
        })
    }

    async fn authenticate(
        &mut self,
        user: &str,
        password: &ftpgate_proto::Password,
    ) -> Result<SessionUser, LoginFailure> {
        // A login takes the users and settings in force now (a reload may have come since
        // the connection was made), and keeps them.
        self.live = self.ctx.live.load_full();
        if let Some((name, host)) = &mut self.host {
            match self.live.hosts.get(name.as_str()) {
                Some(current) => *host = current.clone(),
                None => {
                    warn!(user, host = %name, "login failed: the virtual host was removed by a reload");
                    return Err(LoginFailure::Rejected);
                }
            }
        }
        let (auth, storage, host) = match &self.host {
            Some((name, host)) => (host.auth.clone(), host.storage.clone(), name.as_str()),
            None => (self.live.auth.clone(), self.live.storage.clone(), ""),
        };
        let request = LoginRequest::new(user, password)
            .with_addresses(self.client, self.dialled)
            .with_tls(
                matches!(self.stream, crate::tls::Stream::Tls(_)),
                &self.client_certificates,
            )
            .with_host(self.host.as_ref().map(|(name, _)| name.as_str()))
            .with_session_id(self.entry.id.as_u64());
        match auth.authenticate(&request).await {
            Ok(found) => match storage.open(&found) {
                Ok(storage) => {
                    let client = self.client.ip();
                    if let Some(reason) = found.limits.refusal(client, std::time::SystemTime::now())
                    {
                        warn!(user = found.name.as_str(), reason, "login refused");
                        return Err(LoginFailure::Rejected);
                    }
                    let Some(slot) = self.ctx.policy.enter(host, &found) else {
                        warn!(
                            user = found.name.as_str(),
                            reason = "the user has its most sessions already",
                            "login refused"
                        );
                        return Err(LoginFailure::Rejected);
                    };
                    self.user_slot = Some(slot);
                    self.throttles = self.ctx.policy.throttles(host, &found, client);
                    info!(user = found.name.as_str(), "login");
                    let (name, client) = (found.name.clone(), self.client.ip());
                    let session = self.entry.id;
                    self.ctx.events.emit(|| Event::Login {
                        session,
                        user: name,
                        client,
                    });
                    if let Some(tls) = &self.tls {
                        tls.logged_in(&found.name);
                    }
                    self.quota = self
                        .ctx
                        .quotas
                        .for_user(host, &found, storage.as_ref())
                        .await;
                    let mut capabilities = storage.capabilities();
                    // With a quota of bytes, the space left is known whatever the storage can tell.
                    capabilities.available_space |=
                        self.quota.as_ref().is_some_and(|q| q.limit().is_some());
                    self.storage = Some(storage);
                    Ok(SessionUser {
                        name: found.name,
                        permissions: found.permissions,
                        tls_required: found.tls_required,
                        capabilities,
                    })
                }
                Err(e) => {
                    error!(user = found.name.as_str(), home = found.home.as_str(), error = %e, "cannot open the user's home");
                    Err(LoginFailure::Rejected)
                }
            },
            Err(AuthError::Unavailable(why)) => {
                error!(user, reason = %why, "login not decided: the authenticator is unavailable");
                let client = self.client.ip();
                let session = self.entry.id;
                self.ctx.events.emit(|| Event::LoginUnavailable {
                    session,
                    user: user.to_string(),
                    client,
                    reason: why,
                });
                Err(LoginFailure::Unavailable)
            }
            Err(e) => {
                warn!(user, reason = %e, "login failed");
                let client = self.client.ip();
                let session = self.entry.id;
                self.ctx.events.emit(|| Event::LoginFailed {
                    session,
                    user: user.to_string(),
                    client,
                });
                Err(LoginFailure::Rejected)
            }
        }
    }

    /// HOST: the virtual host of the coming login.
    pub(super) fn select_host(&mut self, name: String) -> Step {
        let found = self.live.hosts.get(&name).cloned();
        let banner = found.as_ref().map(|h| h.banner.clone());
        if found.is_some() {
            info!(host = %name, "virtual host chosen");
        }
        self.host = found.map(|h| (name, h));
        self.session.handle_host_selected(banner)
    }
}
