//! The parser-directive block at the top of the file (`# syntax=`,
//! `# escape=`, `# check=`).

use super::grammar;
use super::source::Source;
use crate::error::ParseError;
use crate::node::Directive;

const KNOWN: [&str; 3] = ["syntax", "escape", "check"];

/// State of the directive block while lines are read.
pub(crate) struct DirectiveBlock {
    pub directives: Vec<Directive>,
    pub escape: char,
    /// Set by the first line that is not a known directive.
    done: bool,
}

impl DirectiveBlock {
    pub fn new() -> Self {
        DirectiveBlock {
            directives: Vec::new(),
            escape: '\\',
            done: false,
        }
    }

    /// Looks at a left-trimmed line at file offset `offset`. Returns true
    /// when it was a directive (and so is consumed); any other line ends the
    /// block for good.
    pub fn observe(
        &mut self,
        line: &str,
        offset: usize,
        source: &Source<'_>,
    ) -> Result<bool, ParseError> {
        if self.done {
            return Ok(false);
        }
        let Some(m) = grammar::directive(line) else {
            self.done = true;
            return Ok(false);
        };
        let name = line[m.key.0..m.key.1].to_ascii_lowercase();
        if !KNOWN.contains(&name.as_str()) {
            self.done = true;
            return Ok(false);
        }
        let span = source.span(offset, offset + line.len());
        if self.directives.iter().any(|d| d.name == name) {
            return Err(ParseError::new(
                format!("only one {name} parser directive can be used"),
                span,
            )
            .with_hint("remove the repeated directive"));
        }
        let value = &line[m.value.0..m.value.1];
        if name == "escape" {
            self.escape = match value {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    let vspan = source.span(offset + m.value.0, offset + m.value.1);
                    return Err(ParseError::new(
                        format!("invalid escape token '{value}' does not match ` or \\"),
                        vspan,
                    )
                    .with_hint("use `# escape=\\` or `# escape=`"));
                }
            };
        }
        self.directives.push(Directive {
            name,
            value: value.to_owned(),
            span,
        });
        Ok(true)
    }
}
