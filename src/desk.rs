//! The loaded desk: validated config, resolved secrets, compiled templates and
//! paths. Relative paths in the config (database, attachments, templates,
//! Maildirs, the file transport) are resolved against the config file's
//! directory, so `ingest` run by an MTA from any working directory finds the
//! same database as the daemon.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use postdesk_core::config::{Config, ConfigProblem, MailboxSource, Secret, SmtpTransport};

use crate::templates::{TemplateError, Templates};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    // The source is printed by the error chain (`{:#}`), once.
    #[error("cannot read config file {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Invalid(#[from] postdesk_core::config::ConfigError),
    #[error(transparent)]
    Templates(#[from] TemplateError),
}

pub struct Desk {
    pub config: Config,
    pub templates: Templates,
    base: PathBuf,
    secrets: HashMap<String, String>,
}

impl Desk {
    pub fn load(path: &Path) -> Result<Desk, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let file = path.display().to_string();
        let config = Config::parse(&text, &file)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };

        let mut secrets = HashMap::new();
        let mut problems = Vec::new();
        let mut resolve = |owner: String, secret: &Secret, line: usize, key: &str| match secret {
            Secret::None => {}
            Secret::Inline(p) => {
                secrets.insert(owner, p.clone());
            }
            Secret::Env(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => {
                    secrets.insert(owner, v);
                }
                _ => problems.push(ConfigProblem {
                    file: file.clone(),
                    line,
                    key: format!("{key}.password_env"),
                    message: format!(
                        "environment variable {var} is not set (export it, or use password_file)"
                    ),
                }),
            },
            Secret::File(f) => match std::fs::read_to_string(base.join(f)) {
                Ok(v) => {
                    secrets.insert(owner, v.trim_end_matches(['\r', '\n']).to_string());
                }
                Err(e) => problems.push(ConfigProblem {
                    file: file.clone(),
                    line,
                    key: format!("{key}.password_file"),
                    message: format!("cannot read {f}: {e}"),
                }),
            },
        };
        for m in &config.mailboxes {
            if let MailboxSource::Imap { password, .. } = &m.source {
                resolve(
                    format!("mailbox:{}", m.name),
                    password,
                    m.line,
                    &format!("mailboxes (mailbox `{}`)", m.name),
                );
            }
        }
        if let SmtpTransport::Smtp { password, .. } = &config.smtp.transport {
            resolve("smtp".into(), password, config.smtp.line, "smtp");
        }
        if !problems.is_empty() {
            return Err(LoadError::Invalid(postdesk_core::config::ConfigError {
                problems,
            }));
        }
        let templates = Templates::load(&base.join(&config.desk.templates_dir))?;
        Ok(Desk {
            config,
            templates,
            base,
            secrets,
        })
    }

    pub fn resolve(&self, path: &str) -> PathBuf {
        self.base.join(path)
    }

    pub fn database_path(&self) -> PathBuf {
        self.resolve(&self.config.desk.database)
    }

    pub fn attachments_dir(&self) -> PathBuf {
        self.resolve(&self.config.desk.attachments_dir)
    }

    pub fn smtp_password(&self) -> Option<&str> {
        self.secrets.get("smtp").map(String::as_str)
    }

    /// The resolved password of an IMAP mailbox (`password`, `password_env`
    /// or `password_file`).
    pub fn mailbox_password(&self, mailbox: &str) -> Option<&str> {
        self.secrets
            .get(&format!("mailbox:{mailbox}"))
            .map(String::as_str)
    }
}
