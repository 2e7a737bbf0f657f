//! Shell-word expansion as Docker (BuildKit's `frontend/dockerfile/shell`)
//! documents it: quotes, escapes, `$VAR`, `${VAR...}` modifiers and, in
//! multi-word mode, field splitting on unquoted whitespace.
//!
//! Pure: the caller supplies the variable scope through [`Env`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A variable scope: looks a variable up by name.
pub trait Env {
    /// The value of `name`, or `None` when it is unset.
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl Env for HashMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// Pairs; the last definition of a name wins.
impl Env for [(String, String)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Pairs; the last definition of a name wins.
impl Env for [(&str, &str)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
}

/// `KEY=VALUE` strings; the last definition wins, entries without `=` are ignored.
impl Env for [String] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter().rev().find_map(|kv| lookup_kv(kv, name))
    }
}

/// `KEY=VALUE` strings; the last definition wins, entries without `=` are ignored.
impl Env for [&str] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter().rev().find_map(|kv| lookup_kv(kv, name))
    }
}

fn lookup_kv<'a>(kv: &'a str, name: &str) -> Option<&'a str> {
    let (k, v) = kv.split_once('=')?;
    (k == name).then_some(v)
}

/// Why an expansion failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// A `${` without its closing brace.
    #[error("missing '}}' in \"{word}\"")]
    MissingBrace {
        /// The whole word being expanded.
        word: String,
    },
    /// A `${...}` whose name is empty or not a valid name.
    #[error("bad substitution in \"{word}\"")]
    BadSubstitution {
        /// The whole word being expanded.
        word: String,
    },
    /// A modifier Docker does not support, such as `:=` or `:#`.
    #[error("unsupported modifier ({modifier}) in substitution")]
    UnsupportedModifier {
        /// The modifier as written.
        modifier: String,
    },
    /// `${VAR?msg}` or `${VAR:?msg}` with `VAR` unset (or empty for `:?`).
    #[error("{name}: {message}")]
    Required {
        /// The variable's name.
        name: String,
        /// The expanded message, or a default one.
        message: String,
    },
    /// A quote that is never closed.
    #[error("unexpected end of input looking for matching {quote} in \"{word}\"")]
    UnterminatedQuote {
        /// The quote character.
        quote: char,
        /// The whole word being expanded.
        word: String,
    },
}

/// The result of an expansion, with the variables it looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The resulting words (exactly one in single-word mode).
    pub words: Vec<String>,
    /// Variables referenced that were set.
    pub matched: BTreeSet<String>,
    /// Variables referenced that were unset.
    pub unmatched: BTreeSet<String>,
}

/// A shell-word lexer for one escape character (`\` or `` ` ``).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
}

impl Default for Lexer {
    fn default() -> Self {
        Self::new('\\')
    }
}

impl Lexer {
    /// A lexer using `escape` as the escape character.
    pub fn new(escape: char) -> Self {
        Self { escape }
    }

    /// Single-word mode: quotes removed, escapes applied, variables
    /// expanded, whitespace kept.
    pub fn process_word<E: Env + ?Sized>(
        &self,
        word: &str,
        env: &E,
    ) -> Result<String, ExpandError> {
        let mut exp = self.expand(word, env, false)?;
        Ok(exp.words.pop().unwrap_or_default())
    }

    /// Multi-word mode: like [`Lexer::process_word`], then split into words
    /// on unquoted whitespace (including whitespace from variable values).
    pub fn process_words<E: Env + ?Sized>(
        &self,
        word: &str,
        env: &E,
    ) -> Result<Vec<String>, ExpandError> {
        Ok(self.expand(word, env, true)?.words)
    }

    /// Expands `word`, splitting into fields when `split` is true, and
    /// reports which variables were referenced.
    pub fn expand<E: Env + ?Sized>(
        &self,
        word: &str,
        env: &E,
        split: bool,
    ) -> Result<Expansion, ExpandError> {
        let mut st = State {
            chars: word.chars().collect(),
            pos: 0,
            word,
            escape: self.escape,
            env,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        let mut out = Output::new(split);
        st.process(&mut out, None, false)?;
        let mut words = out.finish();
        if !split && words.is_empty() {
            words.push(String::new());
        }
        Ok(Expansion {
            words,
            matched: st.matched,
            unmatched: st.unmatched,
        })
    }
}

/// Accumulates output words; `split` turns on field splitting.
struct Output {
    split: bool,
    words: Vec<String>,
    cur: String,
    /// The current word exists even if empty (e.g. after `""`).
    started: bool,
}

impl Output {
    fn new(split: bool) -> Self {
        Self {
            split,
            words: Vec::new(),
            cur: String::new(),
            started: false,
        }
    }

    /// Text that must never split (quoted or escaped).
    fn quoted(&mut self, s: &str) {
        self.cur.push_str(s);
        self.started = true;
    }

    fn quoted_char(&mut self, c: char) {
        self.cur.push(c);
        self.started = true;
    }

    /// Text subject to field splitting (literal or from a variable).
    fn unquoted(&mut self, s: &str) {
        for c in s.chars() {
            if self.split && c.is_whitespace() {
                self.break_word();
            } else {
                self.quoted_char(c);
            }
        }
    }

    fn break_word(&mut self) {
        if self.started {
            self.words.push(std::mem::take(&mut self.cur));
            self.started = false;
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.break_word();
        if !self.split && !self.words.is_empty() {
            return vec![self.words.concat()];
        }
        self.words
    }
}

/// Cursor over one word plus the scope and bookkeeping.
struct State<'a, E: Env + ?Sized> {
    chars: Vec<char>,
    pos: usize,
    word: &'a str,
    escape: char,
    env: &'a E,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

/// Names of special parameters that always expand to nothing.
const SPECIAL: &[char] = &['@', '*', '#', '?', '-', '$', '!'];

impl<E: Env + ?Sized> State<'_, E> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    /// Processes until end of input or an unquoted `stop` char (not
    /// consumed). With `pattern`, literal wildcard characters from quotes or
    /// escapes are written escaped so the matcher treats them literally.
    fn process(
        &mut self,
        out: &mut Output,
        stop: Option<&[char]>,
        pattern: bool,
    ) -> Result<(), ExpandError> {
        while let Some(c) = self.peek() {
            if stop.is_some_and(|s| s.contains(&c)) {
                return Ok(());
            }
            self.pos += 1;
            match c {
                '\'' => self.single_quoted(out, pattern)?,
                '"' => self.double_quoted(out, pattern)?,
                '$' => {
                    let v = self.dollar(false)?;
                    out.unquoted(&v);
                }
                c if c == self.escape => {
                    // A lone trailing escape is dropped.
                    if let Some(n) = self.bump() {
                        push_lit(out, n, pattern);
                    }
                }
                c => out.unquoted(&c.to_string()),
            }
        }
        Ok(())
    }

    fn unterminated(&self, quote: char) -> ExpandError {
        ExpandError::UnterminatedQuote {
            quote,
            word: self.word.to_string(),
        }
    }

    fn single_quoted(&mut self, out: &mut Output, pattern: bool) -> Result<(), ExpandError> {
        out.quoted("");
        loop {
            match self.bump() {
                None => return Err(self.unterminated('\'')),
                Some('\'') => return Ok(()),
                Some(c) => push_lit(out, c, pattern),
            }
        }
    }

    fn double_quoted(&mut self, out: &mut Output, pattern: bool) -> Result<(), ExpandError> {
        out.quoted("");
        loop {
            match self.bump() {
                None => return Err(self.unterminated('"')),
                Some('"') => return Ok(()),
                Some('$') => {
                    let v = self.dollar(true)?;
                    out.quoted(&v);
                }
                Some(c) if c == self.escape => match self.peek() {
                    // Inside double quotes the escape only works before these.
                    Some(n) if n == '$' || n == '"' || n == self.escape => {
                        self.pos += 1;
                        push_lit(out, n, pattern);
                    }
                    _ => push_lit(out, c, pattern),
                },
                Some(c) => push_lit(out, c, pattern),
            }
        }
    }

    /// After a `$`: the expanded value (a lone `$` stays literal).
    fn dollar(&mut self, _in_quotes: bool) -> Result<String, ExpandError> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                self.braced()
            }
            Some(c) if c.is_ascii_digit() => {
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
                Ok(String::new())
            }
            Some(c) if SPECIAL.contains(&c) => {
                self.pos += 1;
                Ok(String::new())
            }
            Some(c) if is_name_start(c) => {
                let name = self.name();
                Ok(self.get(&name).unwrap_or_default())
            }
            _ => Ok("$".to_string()),
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek().filter(|c| is_name_char(*c)) {
            name.push(c);
            self.pos += 1;
        }
        name
    }

    /// Looks a variable up and records it as matched or unmatched.
    fn get(&mut self, name: &str) -> Option<String> {
        let v = self.env.lookup(name).map(str::to_string);
        if v.is_some() {
            self.matched.insert(name.to_string());
        } else {
            self.unmatched.insert(name.to_string());
        }
        v
    }

    fn missing_brace(&self) -> ExpandError {
        ExpandError::MissingBrace {
            word: self.word.to_string(),
        }
    }

    fn bad(&self) -> ExpandError {
        ExpandError::BadSubstitution {
            word: self.word.to_string(),
        }
    }

    /// After `${`: name, then `}` or a modifier.
    fn braced(&mut self) -> Result<String, ExpandError> {
        let name = match self.peek() {
            None => return Err(self.missing_brace()),
            Some(c) if c.is_ascii_digit() => {
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
                String::new()
            }
            Some(c) if is_name_start(c) => self.name(),
            // Special parameters: always unset here.
            Some(c) if SPECIAL.contains(&c) => {
                self.pos += 1;
                String::new()
            }
            Some(_) => return Err(self.bad()),
        };
        let value = if name.is_empty() {
            None
        } else {
            self.get(&name)
        };
        match self.bump() {
            None => Err(self.missing_brace()),
            Some('}') => Ok(value.unwrap_or_default()),
            Some(':') => {
                let m = self.bump().ok_or_else(|| self.missing_brace())?;
                match m {
                    '-' | '+' | '?' => self.modifier(&name, value, m, true),
                    c => Err(ExpandError::UnsupportedModifier {
                        modifier: format!(":{c}"),
                    }),
                }
            }
            Some(m @ ('-' | '+' | '?')) => self.modifier(&name, value, m, false),
            Some(m @ ('#' | '%')) => self.trim(value, m),
            Some('/') => self.replace(value),
            Some(c) => Err(ExpandError::UnsupportedModifier {
                modifier: c.to_string(),
            }),
        }
    }

    /// Expands the word up to (and consuming) the closing `}`.
    fn sub_word(&mut self, stops: &[char], pattern: bool) -> Result<String, ExpandError> {
        let mut out = Output::new(false);
        self.process(&mut out, Some(stops), pattern)?;
        if self.peek().is_none() {
            return Err(self.missing_brace());
        }
        Ok(out.finish().concat())
    }

    fn close(&mut self) -> Result<(), ExpandError> {
        match self.bump() {
            Some('}') => Ok(()),
            _ => Err(self.missing_brace()),
        }
    }

    /// `-`, `+` and `?`, with or without the colon (which also treats an
    /// empty value as unset).
    fn modifier(
        &mut self,
        name: &str,
        value: Option<String>,
        m: char,
        colon: bool,
    ) -> Result<String, ExpandError> {
        let word = self.sub_word(&['}'], false)?;
        self.close()?;
        let set = match &value {
            Some(v) => !(colon && v.is_empty()),
            None => false,
        };
        match m {
            '-' if set => Ok(value.unwrap_or_default()),
            '-' => Ok(word),
            '+' if set => Ok(word),
            '+' => Ok(String::new()),
            _ if set => Ok(value.unwrap_or_default()),
            _ => Err(ExpandError::Required {
                name: name.to_string(),
                message: if word.is_empty() {
                    if colon {
                        "parameter null or not set"
                    } else {
                        "parameter not set"
                    }
                    .to_string()
                } else {
                    word
                },
            }),
        }
    }

    /// `#`, `##`, `%`, `%%`: remove the shortest or longest matching prefix or suffix.
    fn trim(&mut self, value: Option<String>, m: char) -> Result<String, ExpandError> {
        let longest = self.peek() == Some(m);
        if longest {
            self.pos += 1;
        }
        let pat = parse_pattern(&self.sub_word(&['}'], true)?);
        self.close()?;
        let text: Vec<char> = value.unwrap_or_default().chars().collect();
        let n = text.len();
        let cut = if m == '#' {
            let mut lens: Vec<usize> = (0..=n).collect();
            if longest {
                lens.reverse();
            }
            lens.into_iter()
                .find(|&i| glob_match(&pat, &text[..i]))
                .map(|i| (i, n))
        } else {
            let mut starts: Vec<usize> = (0..=n).rev().collect();
            if longest {
                starts.reverse();
            }
            starts
                .into_iter()
                .find(|&i| glob_match(&pat, &text[i..]))
                .map(|i| (0, i))
        };
        Ok(match cut {
            Some((a, b)) => text[a..b].iter().collect(),
            None => text.iter().collect(),
        })
    }

    /// `/p/r` (first match) and `//p/r` (every match); longest match at
    /// each position, as bash does.
    fn replace(&mut self, value: Option<String>) -> Result<String, ExpandError> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let pat = parse_pattern(&self.sub_word(&['/', '}'], true)?);
        let rep = if self.peek() == Some('/') {
            self.pos += 1;
            self.sub_word(&['}'], false)?
        } else {
            String::new()
        };
        self.close()?;
        let text: Vec<char> = value.unwrap_or_default().chars().collect();
        Ok(replace_matches(&pat, &text, &rep, all))
    }
}

fn push_lit(out: &mut Output, c: char, pattern: bool) {
    if pattern && matches!(c, '*' | '?' | '\\') {
        out.quoted_char('\\');
    }
    out.quoted_char(c);
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// One element of a glob pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(char),
    AnyOne,
    AnyMany,
}

/// Parses `*`, `?` and `\x` (literal x) into tokens.
fn parse_pattern(p: &str) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut it = p.chars();
    while let Some(c) = it.next() {
        toks.push(match c {
            '*' => Tok::AnyMany,
            '?' => Tok::AnyOne,
            '\\' => Tok::Lit(it.next().unwrap_or('\\')),
            c => Tok::Lit(c),
        });
    }
    toks
}

/// Whole-text glob match, iterative with single-star backtracking (linear-ish).
fn glob_match(pat: &[Tok], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pat.get(p) {
            Some(Tok::AnyMany) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Tok::AnyOne) => {
                p += 1;
                t += 1;
            }
            Some(Tok::Lit(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pat[p.min(pat.len())..].iter().all(|t| *t == Tok::AnyMany)
}

/// Replaces the first (or every) non-empty longest match of `pat` in `text`.
fn replace_matches(pat: &[Tok], text: &[char], rep: &str, all: bool) -> String {
    let mut out = String::new();
    let mut i = 0;
    let mut done = false;
    while i < text.len() {
        let end = if done || pat.is_empty() {
            None
        } else {
            (i + 1..=text.len())
                .rev()
                .find(|&e| glob_match(pat, &text[i..e]))
        };
        match end {
            Some(e) => {
                out.push_str(rep);
                i = e;
                done = !all;
            }
            None => {
                out.push(text[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_basics() {
        let p = parse_pattern("a*c");
        assert!(glob_match(&p, &['a', 'b', 'c']));
        assert!(!glob_match(&p, &['a', 'b']));
        assert!(glob_match(&parse_pattern("\\*"), &['*']));
        assert!(!glob_match(&parse_pattern("\\*"), &['x']));
    }
}
