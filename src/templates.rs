//! Mail templates: `templates/<lang>/<name>.txt`, a `Subject:` first line and
//! the body, rendered with minijinja. Every template of SPEC §8 is loaded and
//! compiled at start, so a missing or broken template is a configuration
//! error found by `check-config`, not a failure at 3 a.m.

use std::path::Path;

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior};

/// Every template name of SPEC §8.
pub const NAMES: &[&str] = &[
    "ack",
    "agent_new_ticket",
    "agent_follow_up",
    "agent_reply",
    "status_changed",
    "assigned",
    "resolved",
    "reopened",
    "cancelled",
    "duplicate_notice",
    "contract_inactive",
    "unknown_sender",
    "message_rejected",
    "validation_reminder",
    "sla_warning",
    "sla_breach",
    "escalation",
    "command_error",
];

pub const LANGUAGES: &[&str] = &["es", "en"];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {path}: {message}")]
    Load { path: String, message: String },
    #[error("template {name} ({lang}): {message}")]
    Render {
        name: String,
        lang: String,
        message: String,
    },
}

pub struct Templates {
    env: Environment<'static>,
}

/// A rendered mail text.
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

impl Templates {
    /// Loads and compiles every template for every language from `dir`.
    pub fn load(dir: &Path) -> Result<Templates, TemplateError> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .map_err(|e| TemplateError::Load {
                path: dir.display().to_string(),
                message: e.to_string(),
            })?;
        env.set_syntax(syntax);
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        for lang in LANGUAGES {
            for name in NAMES {
                let path = dir.join(lang).join(format!("{name}.txt"));
                let source = std::fs::read_to_string(&path).map_err(|e| TemplateError::Load {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                if !source.starts_with("Subject:") {
                    return Err(TemplateError::Load {
                        path: path.display().to_string(),
                        message: "the first line must be `Subject: …`".into(),
                    });
                }
                env.add_template_owned(format!("{lang}/{name}"), source)
                    .map_err(|e| TemplateError::Load {
                        path: path.display().to_string(),
                        message: e.to_string(),
                    })?;
            }
        }
        Ok(Templates { env })
    }

    /// Renders template `name` in `lang` with `context`: a
    /// [`minijinja::Value`], or anything serde can serialize wrapped in
    /// [`minijinja::value::Serde`].
    pub fn render(
        &self,
        lang: &str,
        name: &str,
        context: impl Into<minijinja::Value>,
    ) -> Result<Rendered, TemplateError> {
        let err = |message: String| TemplateError::Render {
            name: name.into(),
            lang: lang.into(),
            message,
        };
        let mut text = self
            .env
            .get_template(&format!("{lang}/{name}"))
            .and_then(|t| t.render(context))
            .map_err(|e| err(format!("{e:#}")))?;
        let (first, body_at) = match text.find('\n') {
            Some(i) => (&text[..i], i + 1),
            None => (text.as_str(), text.len()),
        };
        let first = first.strip_prefix("Subject:").unwrap_or(first).trim();
        let mut subject = String::with_capacity(first.len());
        for word in first.split_whitespace() {
            if !subject.is_empty() {
                subject.push(' ');
            }
            subject.push_str(word);
        }
        // The body is the rest of the text: moved to the front, not copied.
        let body_at = body_at + text[body_at..].len()
            - text[body_at..].trim_start_matches(['\r', '\n']).len();
        text.drain(..body_at);
        Ok(Rendered {
            subject,
            body: text,
        })
    }
}
