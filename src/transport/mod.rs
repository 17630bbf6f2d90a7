//! Transports hand a rendered outbox mail to the world: SMTP (lettre) or the
//! `file` transport (one `.eml` per mail). A failure says whether retrying can
//! help ([`SendError::Temporary`]: 4xx, connection trouble) or not
//! ([`SendError::Permanent`]: 5xx).
//!
//! Transports never touch the store; delivery records the outcome.

mod file;
mod smtp;

use postdesk_core::config::SmtpTransport;

use crate::desk::Desk;
use crate::store::OutboxRow;

pub use file::FileTransport;
pub use smtp::SmtpSender;

#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    #[error("temporary: {0}")]
    Temporary(String),
    #[error("permanent: {0}")]
    Permanent(String),
}

/// Delivers one mail.
pub trait Transport: Send + Sync {
    fn send(
        &self,
        mail: &OutboxRow,
    ) -> impl std::future::Future<Output = Result<(), SendError>> + Send;
}

/// The transport the config names.
pub enum Configured {
    File(FileTransport),
    Smtp(SmtpSender),
}

impl Configured {
    pub fn from_desk(desk: &Desk) -> anyhow::Result<Configured> {
        Ok(match &desk.config.smtp.transport {
            SmtpTransport::File { dir } => Configured::File(FileTransport::new(desk.resolve(dir))),
            SmtpTransport::Smtp {
                host,
                port,
                security,
                username,
                ..
            } => Configured::Smtp(SmtpSender::new(
                host,
                *port,
                *security,
                username.as_deref(),
                desk.smtp_password(),
            )?),
        })
    }
}

impl Transport for Configured {
    async fn send(&self, mail: &OutboxRow) -> Result<(), SendError> {
        match self {
            Configured::File(t) => t.send(mail).await,
            Configured::Smtp(t) => t.send(mail).await,
        }
    }
}
