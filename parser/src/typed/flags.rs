//! Reading an instruction's `--name[=value]` flags against the set it allows.

use crate::error::ParseError;
use crate::instruction::Flag;
use crate::node::Word;
use crate::span::Span;

/// One flag as written: its name (without `--`), value and place.
pub(crate) struct RawFlag<'a> {
    pub name: &'a str,
    pub value: Option<&'a str>,
    pub span: Span,
}

/// The flags of one instruction, checked against `allowed`.
pub(crate) struct Flags<'a> {
    items: Vec<RawFlag<'a>>,
}

impl<'a> Flags<'a> {
    /// Splits each word at its first `=`; a flag not in `allowed` is an error
    /// naming it and listing the ones this instruction knows.
    pub fn read(keyword: &str, words: &'a [Word], allowed: &[&str]) -> Result<Self, ParseError> {
        let mut items = Vec::with_capacity(words.len());
        for word in words {
            let body = word.text.strip_prefix("--").unwrap_or(&word.text);
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            if !allowed.contains(&name) {
                let upper = keyword.to_ascii_uppercase();
                let err = ParseError::new(format!("unknown flag for {upper}: --{name}"), word.span);
                return Err(if allowed.is_empty() {
                    err.with_hint(format!("{upper} takes no flags"))
                } else {
                    let list: Vec<String> = allowed.iter().map(|a| format!("--{a}")).collect();
                    err.with_hint(format!("{upper} accepts {}", list.join(", ")))
                });
            }
            items.push(RawFlag {
                name,
                value,
                span: word.span,
            });
        }
        Ok(Flags { items })
    }

    /// The last occurrence of a flag that takes a value (`--from=x`).
    pub fn value(&self, name: &str) -> Result<Option<(&'a str, Span)>, ParseError> {
        match self.items.iter().rev().find(|f| f.name == name) {
            None => Ok(None),
            Some(RawFlag {
                value: Some(v),
                span,
                ..
            }) => Ok(Some((v, *span))),
            Some(f) => Err(ParseError::new(format!("--{name} needs a value"), f.span)
                .with_hint(format!("write --{name}=VALUE"))),
        }
    }

    /// Every occurrence of a repeatable flag (`--mount`, `--exclude`).
    pub fn values(&self, name: &str) -> Result<Vec<(&'a str, Span)>, ParseError> {
        self.items
            .iter()
            .filter(|f| f.name == name)
            .map(|f| match f.value {
                Some(v) => Ok((v, f.span)),
                None => Err(ParseError::new(format!("--{name} needs a value"), f.span)),
            })
            .collect()
    }

    /// A flag whose value is one of a fixed set of words, e.g.
    /// `--network=none`; anything else is an error listing the choices.
    pub fn choice<T: Copy>(
        &self,
        name: &str,
        what: &str,
        options: &[(&str, T)],
    ) -> Result<Option<Flag<T>>, ParseError> {
        let Some((text, span)) = self.value(name)? else {
            return Ok(None);
        };
        if let Some((_, value)) = options.iter().find(|(word, _)| *word == text) {
            return Ok(Some(Flag {
                value: *value,
                span,
            }));
        }
        let words: Vec<&str> = options.iter().map(|(word, _)| *word).collect();
        let listed = match words.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        Err(
            ParseError::new(format!("unsupported {what} {text:?}"), span)
                .with_hint(format!("use --{name}={listed}")),
        )
    }

    /// A boolean flag: `--link`, `--link=true` or `--link=false`.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ParseError> {
        match self.items.iter().rev().find(|f| f.name == name) {
            None => Ok(None),
            Some(f) => match f.value {
                None | Some("true") => Ok(Some(true)),
                Some("false") => Ok(Some(false)),
                Some(other) => Err(ParseError::new(
                    format!("--{name} expects true or false, not {other:?}"),
                    f.span,
                )),
            },
        }
    }
}
