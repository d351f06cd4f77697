//! Scenario files: user journeys in YAML.
//!
//! [`compile`] reads a scenario's text in two stages, as ripgrep does with
//! its arguments: the YAML into the raw types of `raw.rs` (shapes and known
//! keys, positions kept), then those into a validated [`plan::Scenario`],
//! with templates compiled once. Every mistake is a [`Diagnostic`] with
//! `file:line:column`, the offending line and a hint. Reads no files and no
//! environment: the caller hands in the text and the variables.
//! [`json_schema`] describes the format for editors.

mod compile;
mod diagnostic;
mod har;
mod raw;

#[cfg(test)]
mod tests;

pub use compile::{compile, Compiled, Options, ReadData};
pub use diagnostic::{Diagnostic, Pos};
pub use har::{
    import_har, import_recording, HarError, HarOptions, RecordedRequest, RecordedRule,
    RecordedSession,
};

/// The JSON Schema of scenario files, for editors (yaml-language-server).
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(raw::RawScenario);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
