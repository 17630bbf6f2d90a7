//! Agents steer a ticket from their mail client with short commands at the
//! very top of a reply (SPEC §6): one `#word value` per line, English or
//! Spanish (`#status resolved`, `#estado resuelto`, `#prioridad urgente`).
//! The first other line ends them; they are stripped from the relayed text.
//! An unknown command or value is reported with its line and the accepted
//! forms, and the rest still applies.
//!
//! Parsing only: what a command does is `workflow`'s.

use crate::text::fold;
use crate::ticket::{Priority, Status, TicketType};
use crate::workflow::Change;

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Status(Status),
    Priority(Priority),
    Type(TicketType),
    Assign(String),
    Take,
    Category(String),
    /// The whole mail is an internal note: nothing is relayed.
    Note,
    Duplicate(i64),
}

impl Command {
    /// The workflow change, given the agent who wrote it.
    pub fn change(&self, agent_email: &str) -> Option<Change> {
        Some(match self {
            Command::Status(s) => Change::Status(*s),
            Command::Priority(p) => Change::Priority(*p),
            Command::Type(t) => Change::Type(*t),
            Command::Assign(who) => Change::Assign(who.clone()),
            Command::Take => Change::Assign(agent_email.to_string()),
            Command::Category(c) => Change::Category(c.clone()),
            Command::Duplicate(n) => Change::DuplicateOf(*n),
            Command::Note => return None,
        })
    }
}

/// A command line that could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    /// 1-based line of the body.
    pub line: usize,
    /// The line as written.
    pub text: String,
    pub error: String,
}

/// The commands of a body and the text left to relay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commands {
    pub commands: Vec<(usize, Command)>,
    pub errors: Vec<CommandError>,
    /// The body without the command lines.
    pub text: String,
}

impl Commands {
    pub fn is_note(&self) -> bool {
        self.commands.iter().any(|(_, c)| *c == Command::Note)
    }
}

/// The accepted forms, for error mails.
pub fn accepted_forms() -> String {
    [
        format!("#status | #estado  {}", Status::accepted()),
        format!("#priority | #prioridad  {}", Priority::accepted()),
        format!("#type | #tipo  {}", TicketType::accepted()),
        "#assign | #asignar  EMAIL or NAME of an agent".to_string(),
        "#take | #tomar".to_string(),
        "#category | #categoria  NAME".to_string(),
        "#note | #nota".to_string(),
        "#duplicate | #duplicado  TICKET-NUMBER".to_string(),
    ]
    .join("\n")
}

/// Reads the commands at the top of `body`: leading blank lines are skipped,
/// then every line starting with `#` is a command, until the first other line.
pub fn parse(body: &str) -> Commands {
    let mut out = Commands::default();
    let lines: Vec<&str> = body.lines().collect();
    let mut i = 0;
    while i < lines.len() && lines[i].trim().is_empty() {
        i += 1;
    }
    while i < lines.len() {
        let line = lines[i].trim();
        let Some(rest) = line.strip_prefix('#') else {
            break;
        };
        // `#1 in the list…` or `# heading` are text, not commands.
        if !rest.starts_with(|c: char| c.is_alphabetic()) {
            break;
        }
        let (word, value) = rest
            .split_once(char::is_whitespace)
            .map_or((rest, ""), |(w, v)| (w, v.trim()));
        match parse_one(&fold(word), value) {
            Ok(command) => out.commands.push((i + 1, command)),
            Err(error) => out.errors.push(CommandError {
                line: i + 1,
                text: line.to_string(),
                error,
            }),
        }
        i += 1;
    }
    out.text = lines[i..].join("\n").trim().to_string();
    out
}

fn parse_one(word: &str, value: &str) -> Result<Command, String> {
    let need = |what: &str| {
        if value.is_empty() {
            Err(format!("#{word} needs {what}"))
        } else {
            Ok(())
        }
    };
    match word {
        "status" | "estado" => {
            need("a status")?;
            Status::parse(value)
                .map(Command::Status)
                .ok_or_else(|| format!("`{value}` is not a status ({})", Status::accepted()))
        }
        "priority" | "prioridad" => {
            need("a priority")?;
            Priority::parse(value)
                .map(Command::Priority)
                .ok_or_else(|| format!("`{value}` is not a priority ({})", Priority::accepted()))
        }
        "type" | "tipo" => {
            need("a type")?;
            TicketType::parse(value)
                .map(Command::Type)
                .ok_or_else(|| format!("`{value}` is not a type ({})", TicketType::accepted()))
        }
        "assign" | "asignar" => {
            need("an agent's e-mail or name")?;
            Ok(Command::Assign(value.to_string()))
        }
        "take" | "tomar" => no_value(word, value, Command::Take),
        "category" | "categoria" => {
            need("a category name")?;
            Ok(Command::Category(value.to_string()))
        }
        "note" | "nota" => no_value(word, value, Command::Note),
        "duplicate" | "duplicado" => {
            need("the number of the ticket it duplicates")?;
            let number = value.trim_start_matches('#').trim();
            number
                .parse::<i64>()
                .map(Command::Duplicate)
                .map_err(|_| format!("`{value}` is not a ticket number"))
        }
        _ => Err(format!("unknown command #{word}")),
    }
}

fn no_value(word: &str, value: &str, command: Command) -> Result<Command, String> {
    if value.is_empty() {
        Ok(command)
    } else {
        Err(format!("#{word} takes no value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_and_spanish_commands_and_the_text_after_them() {
        let c = parse(
            "\n#status waiting\n#prioridad urgente\n#tipo anomalía\n#assign Marta\n#tomar\n#categoría facturación\n#duplicado #12\nHola Ana,\n\n#1 es importante",
        );
        let kinds: Vec<Command> = c.commands.iter().map(|(_, c)| c.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                Command::Status(Status::Waiting),
                Command::Priority(Priority::Urgent),
                Command::Type(TicketType::Anomaly),
                Command::Assign("Marta".into()),
                Command::Take,
                Command::Category("facturación".into()),
                Command::Duplicate(12),
            ]
        );
        assert!(c.errors.is_empty());
        assert_eq!(c.text, "Hola Ana,\n\n#1 es importante");
        assert_eq!(c.commands[0].0, 2, "lines are 1-based in the body");
    }

    #[test]
    fn errors_name_the_line_and_the_rest_applies() {
        let c =
            parse("#estado volando\n#frobnicate\n#priority high\n#take now\n#duplicate x\nTexto");
        assert_eq!(c.commands, vec![(3, Command::Priority(Priority::High))]);
        let lines: Vec<usize> = c.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 2, 4, 5]);
        assert!(c.errors[0].error.contains("volando") && c.errors[0].error.contains("resolved"));
        assert_eq!(c.errors[1].text, "#frobnicate");
        assert_eq!(c.text, "Texto");
    }

    #[test]
    fn note_and_no_commands() {
        assert!(parse("#nota\nSolo para el equipo").is_note());
        assert!(parse("#note").is_note());
        let plain = parse("Hola,\n#status closed\n");
        assert!(plain.commands.is_empty() && plain.errors.is_empty());
        assert_eq!(plain.text, "Hola,\n#status closed");
    }
}
