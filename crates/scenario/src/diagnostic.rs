//! Mistakes in a scenario file, shown as `file:line:column`, the line
//! itself, a caret, and a hint.

use std::fmt;

/// A position in the file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column (in characters), from 1.
    pub column: usize,
}

impl Pos {
    /// The position of a YAML value.
    pub fn of<T>(spanned: &serde_saphyr::Spanned<T>) -> Pos {
        Pos {
            line: spanned.referenced.line() as usize,
            column: spanned.referenced.column() as usize,
        }
    }
}

/// One mistake in a scenario file. Nothing runs when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name as given.
    pub file: String,
    /// Where.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
    /// The offending source line.
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at `pos` in `text`.
    pub fn at(
        file: &str,
        text: &str,
        pos: Pos,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        Diagnostic {
            file: file.to_string(),
            pos,
            message: message.into(),
            hint,
            source_line: text
                .lines()
                .nth(pos.line.saturating_sub(1))
                .map(str::to_string),
        }
    }

    /// A diagnostic from the YAML reader, with a hint for unknown keys.
    pub fn from_yaml(file: &str, text: &str, err: &serde_saphyr::Error) -> Diagnostic {
        let pos = err
            .location()
            .map(|l| Pos {
                line: l.line() as usize,
                column: l.column() as usize,
            })
            .unwrap_or(Pos { line: 1, column: 1 });
        let full = err.without_snippet().to_string();
        let first = full.lines().next().unwrap_or_default();
        // The reader's text is "error: line L column C: MESSAGE"; keep MESSAGE.
        let message = first
            .strip_prefix("error: ")
            .unwrap_or(first)
            .split_once(": ")
            .filter(|(head, _)| head.starts_with("line "))
            .map_or(first, |(_, m)| m);
        // The position is already in front; some messages repeat it.
        let message = message
            .rsplit_once(" at line ")
            .filter(|(_, at)| at.split_once(", column ").is_some())
            .map_or(message, |(m, _)| m);
        match unknown_key(message) {
            Some((message, hint)) => Diagnostic::at(file, text, pos, message, Some(hint)),
            None => Diagnostic::at(file, text, pos, message, None),
        }
    }
}

/// For "unknown field `x`, expected one of a, b": the message without
/// the list, and a hint with the nearest valid key, or the list.
fn unknown_key(message: &str) -> Option<(String, String)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest.split_once("expected ")?.1;
    let options: Vec<&str> = expected
        .trim_start_matches("one of ")
        .split(',')
        .flat_map(|s| s.split(" or "))
        .map(|s| s.trim().trim_matches('`'))
        .filter(|s| !s.is_empty())
        .collect();
    let nearest = plan::suggest::nearest(field, options.iter().copied());
    let hint = match nearest {
        Some(n) => format!("did you mean `{n}`?"),
        None => format!("valid keys here: {}", options.join(", ")),
    };
    Some((format!("unknown field `{field}`"), hint))
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.pos.line, self.pos.column, self.message
        )?;
        let width = self.pos.line.to_string().len();
        if let Some(src) = &self.source_line {
            let caret_at = src.chars().take(self.pos.column.saturating_sub(1)).count();
            write!(
                f,
                "\n{:width$} |\n{} | {src}\n{:width$} | {}^",
                "",
                self.pos.line,
                "",
                " ".repeat(caret_at)
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n{:width$} = hint: {hint}", "")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}
