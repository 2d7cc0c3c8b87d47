//! Outgoing email over SMTP (lettre), when `[smtp]` is configured: invites today, later
//! notifications. Air-gapped sites leave it out, and every message Tenantry would send is also
//! shown to the person who caused it (an invite link is shown once to the inviting admin).
//!
//! Bounded: a pool of at most [`POOL_MAX`] connections, and every send has a timeout
//! (`timeout_secs`, 10 s by default), so a dead mail server costs a request at most that long.

use std::time::Duration;

use crate::config::{ConfigError, SmtpConfig, SmtpTls};
use lettre::message::Mailbox;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Most open SMTP connections.
pub const POOL_MAX: u32 = 4;

/// A mail could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The message could not be built (a bad address).
    #[error("the message could not be built: {0}")]
    Build(String),
    /// The server could not be reached or refused the message.
    #[error("the SMTP server did not take the message: {0}")]
    Send(String),
}

/// A message to send: plain text.
#[derive(Clone, Debug)]
pub struct Mail {
    /// Recipient's name.
    pub to_name: String,
    /// Recipient's address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// The SMTP transport, made once at start from `[smtp]`.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from).finish()
    }
}

impl Mailer {
    /// The transport for `c` (connections open lazily, on the first send).
    ///
    /// Errors: [`ConfigError::Invalid`] for a sender that does not parse or a TLS setup that
    /// fails.
    pub fn new(c: &SmtpConfig) -> Result<Mailer, ConfigError> {
        c.validate()?;
        let bad = |e: lettre::transport::smtp::Error| {
            ConfigError::Invalid(format!("[smtp] host = \"{}\": {e}", c.host))
        };
        let builder = match c.tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&c.host)
                .map_err(bad)?
                .port(c.port.unwrap_or(587)),
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&c.host)
                .map_err(bad)?
                .port(c.port.unwrap_or(465)),
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host)
                .port(c.port.unwrap_or(25)),
        };
        let mut builder = builder
            .timeout(Some(Duration::from_secs(c.timeout_secs.unwrap_or(10))))
            .pool_config(PoolConfig::new().max_size(POOL_MAX));
        if let (Some(u), Some(p)) = (&c.username, &c.password) {
            builder = builder.credentials(Credentials::new(u.clone(), p.expose().to_string()));
        }
        Ok(Mailer {
            transport: builder.build(),
            from: c
                .from
                .parse()
                .map_err(|e| ConfigError::Invalid(format!("[smtp] from: {e}")))?,
        })
    }

    /// Sends `mail`.
    ///
    /// Errors: [`MailError::Build`] for an address that does not parse; [`MailError::Send`]
    /// when the server is unreachable, times out, or refuses.
    pub async fn send(&self, mail: Mail) -> Result<(), MailError> {
        let to = Mailbox::new(
            Some(mail.to_name.clone()),
            mail.to
                .parse()
                .map_err(|e| MailError::Build(format!("to {}: {e}", mail.to)))?,
        );
        let msg = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(mail.body)
            .map_err(|e| MailError::Build(e.to_string()))?;
        self.transport
            .send(msg)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Send(e.to_string()))
    }
}
