//! SMTP delivery through lettre's async transport (pooled connections,
//! rustls): `tls` (implicit), `starttls` (required) or `none` (loopback).
//! lettre's error tells 5xx (permanent) from everything else (temporary).

use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use postdesk_core::config::Security;

use super::{SendError, Transport};
use crate::delivery::CONCURRENCY;
use crate::store::OutboxRow;

pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpSender {
    pub fn new(
        host: &str,
        port: u16,
        security: Security,
        username: Option<&str>,
        password: Option<&str>,
    ) -> anyhow::Result<SmtpSender> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(Duration::from_secs(60)))
            // Room for more idle connections than mails in flight: lettre hands
            // a used connection back to the pool from a spawned task, so the
            // next send often finds the pool empty and opens one more; with
            // the cap at the concurrency, the surplus was then closed, and the
            // outbox opened a new connection every ~8 mails. Idle ones close
            // after a few seconds (not lettre's minute): a burst's 60-odd
            // connections and their buffers would otherwise keep an idle
            // daemon over its 20 MB.
            .pool_config(
                PoolConfig::new()
                    .max_size(2 * CONCURRENCY as u32)
                    .idle_timeout(Duration::from_secs(5)),
            );
        builder = match security {
            Security::None => builder.tls(Tls::None),
            Security::Starttls => builder.tls(Tls::Required(TlsParameters::new(host.to_string())?)),
            Security::Tls => builder.tls(Tls::Wrapper(TlsParameters::new(host.to_string())?)),
        };
        if let Some(user) = username {
            builder = builder.credentials(Credentials::new(
                user.to_string(),
                password.unwrap_or_default().to_string(),
            ));
        }
        Ok(SmtpSender {
            transport: builder.build(),
        })
    }
}

impl Transport for SmtpSender {
    async fn send(&self, mail: &OutboxRow) -> Result<(), SendError> {
        let from = mail
            .sender
            .parse()
            .map_err(|e| SendError::Permanent(format!("sender {}: {e}", mail.sender)))?;
        let to = mail
            .to
            .iter()
            .map(|a| {
                a.parse()
                    .map_err(|e| SendError::Permanent(format!("recipient {a}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let envelope =
            Envelope::new(Some(from), to).map_err(|e| SendError::Permanent(e.to_string()))?;
        match self.transport.send_raw(&envelope, &mail.raw).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Err(e) => Err(SendError::Temporary(e.to_string())),
        }
    }
}
