//! postdesk-core: every decision of the help desk, and no I/O.
//!
//! The shell (the `postdesk` binary) reads mail, the clock and the database,
//! hands them to the functions here and applies what they return. Nothing in
//! this crate may open a file, a socket or a database, or read the system
//! clock: `now` is always an argument.

pub mod agent_commands;
pub mod body;
pub mod calendar;
pub mod config;
pub mod duplicates;
pub mod health;
pub mod intake;
pub mod machine;
pub mod mail;
pub mod outgoing;
pub mod report;
pub mod sla;
pub mod subject;
pub mod text;
pub mod ticket;
pub mod timers;
pub mod units;
pub mod view;
pub mod workflow;
