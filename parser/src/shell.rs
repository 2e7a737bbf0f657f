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

/// The most one expanded word may hold, in bytes. Far more than a real
/// Dockerfile needs (Linux refuses any single environment string over
/// 128 KiB to `execve`, so a RUN could not even receive a larger value),
/// and small enough that a word doubled through a chain of ARGs stops here
/// instead of exhausting memory.
pub const MAX_WORD_BYTES: usize = 1 << 20;

/// The most pattern-matching work one word's `${VAR#…}`, `${VAR%…}` and
/// `${VAR/…}` may do, in automaton steps: well under a second, and orders
/// of magnitude above what real values need (a step per character and
/// live pattern position), so a hostile pattern over a large value fails
/// instead of running for hours.
pub const MAX_MATCH_STEPS: u64 = 100_000_000;

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
    /// The result would be larger than [`MAX_WORD_BYTES`].
    #[error(
        "the expanded word is larger than {} MiB, the limit for one word",
        MAX_WORD_BYTES >> 20
    )]
    TooLarge,
    /// Pattern matching would take more than [`MAX_MATCH_STEPS`].
    #[error(
        "matching the patterns of this word takes more than {} steps, the limit",
        MAX_MATCH_STEPS
    )]
    TooComplex,
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
            budget: MAX_MATCH_STEPS,
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

/// Accumulates output words; `split` turns on field splitting. All words
/// together hold at most [`MAX_WORD_BYTES`].
struct Output {
    split: bool,
    words: Vec<String>,
    cur: String,
    /// The current word exists even if empty (e.g. after `""`).
    started: bool,
    /// Bytes held in `words` and `cur`.
    len: usize,
}

impl Output {
    fn new(split: bool) -> Self {
        Self {
            split,
            words: Vec::new(),
            cur: String::new(),
            started: false,
            len: 0,
        }
    }

    /// Accounts for `n` more bytes, refusing before they are stored.
    fn grow(&mut self, n: usize) -> Result<(), ExpandError> {
        self.len = self
            .len
            .checked_add(n)
            .filter(|&l| l <= MAX_WORD_BYTES)
            .ok_or(ExpandError::TooLarge)?;
        Ok(())
    }

    /// Text that must never split (quoted or escaped).
    fn quoted(&mut self, s: &str) -> Result<(), ExpandError> {
        self.grow(s.len())?;
        self.cur.push_str(s);
        self.started = true;
        Ok(())
    }

    fn quoted_char(&mut self, c: char) -> Result<(), ExpandError> {
        self.grow(c.len_utf8())?;
        self.cur.push(c);
        self.started = true;
        Ok(())
    }

    /// Text subject to field splitting (literal or from a variable).
    fn unquoted(&mut self, s: &str) -> Result<(), ExpandError> {
        if !self.split {
            // An empty value does not start a word; quoted text ("") does.
            return if s.is_empty() { Ok(()) } else { self.quoted(s) };
        }
        for c in s.chars() {
            if c.is_whitespace() {
                self.break_word();
            } else {
                self.quoted_char(c)?;
            }
        }
        Ok(())
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
    /// Pattern-matching steps left (see [`MAX_MATCH_STEPS`]).
    budget: u64,
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
                    out.unquoted(&v)?;
                }
                c if c == self.escape => {
                    // A lone trailing escape is dropped.
                    if let Some(n) = self.bump() {
                        push_lit(out, n, pattern)?;
                    }
                }
                c => out.unquoted(c.encode_utf8(&mut [0; 4]))?,
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
        out.quoted("")?;
        loop {
            match self.bump() {
                None => return Err(self.unterminated('\'')),
                Some('\'') => return Ok(()),
                Some(c) => push_lit(out, c, pattern)?,
            }
        }
    }

    fn double_quoted(&mut self, out: &mut Output, pattern: bool) -> Result<(), ExpandError> {
        out.quoted("")?;
        loop {
            match self.bump() {
                None => return Err(self.unterminated('"')),
                Some('"') => return Ok(()),
                Some('$') => {
                    let v = self.dollar(true)?;
                    out.quoted(&v)?;
                }
                Some(c) if c == self.escape => match self.peek() {
                    // Inside double quotes the escape only works before these.
                    Some(n) if n == '$' || n == '"' || n == self.escape => {
                        self.pos += 1;
                        push_lit(out, n, pattern)?;
                    }
                    _ => push_lit(out, c, pattern)?,
                },
                Some(c) => push_lit(out, c, pattern)?,
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
            let (short, long) = match_lengths(&pat, &text, &mut self.budget)?;
            if longest { long } else { short }.map(|k| (k, n))
        } else {
            // A suffix match is a prefix match of both reversed.
            let pat: Vec<Tok> = pat.iter().rev().copied().collect();
            let rev: Vec<char> = text.iter().rev().copied().collect();
            let (short, long) = match_lengths(&pat, &rev, &mut self.budget)?;
            if longest { long } else { short }.map(|k| (0, n - k))
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
        replace_matches(&pat, &text, &rep, all, &mut self.budget)
    }
}

fn push_lit(out: &mut Output, c: char, pattern: bool) -> Result<(), ExpandError> {
    if pattern && matches!(c, '*' | '?' | '\\') {
        out.quoted_char('\\')?;
    }
    out.quoted_char(c)
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

/// The shortest and longest `k` for which `pat` matches all of `text[..k]`.
/// The pattern runs as an automaton over the text, each step visiting the
/// live pattern positions once (no backtracking), and stops when none is
/// left; every visit is charged to `budget`.
fn match_lengths(
    pat: &[Tok],
    text: &[char],
    budget: &mut u64,
) -> Result<(Option<usize>, Option<usize>), ExpandError> {
    let end = pat.len();
    // `live[p]`: position `p` is in `cur`.
    let mut live = vec![false; end + 1];
    let mut cur = Vec::new();
    enter(pat, 0, &mut cur, &mut live);
    let (mut shortest, mut longest) = (None, None);
    for at in 0..=text.len() {
        if live[end] {
            shortest.get_or_insert(at);
            longest = Some(at);
        }
        let Some(&c) = text.get(at) else { break };
        if cur.is_empty() {
            break;
        }
        *budget = budget
            .checked_sub(cur.len() as u64)
            .ok_or(ExpandError::TooComplex)?;
        for &p in &cur {
            live[p] = false;
        }
        let mut next = Vec::with_capacity(cur.len());
        for &p in &cur {
            match pat.get(p) {
                Some(Tok::Lit(l)) if *l == c => enter(pat, p + 1, &mut next, &mut live),
                Some(Tok::AnyOne) => enter(pat, p + 1, &mut next, &mut live),
                Some(Tok::AnyMany) => enter(pat, p, &mut next, &mut live),
                _ => {}
            }
        }
        cur = next;
    }
    Ok((shortest, longest))
}

/// Adds pattern position `p` to `list`, and the positions after any `*`s
/// from there (a `*` may match nothing).
fn enter(pat: &[Tok], mut p: usize, list: &mut Vec<usize>, live: &mut [bool]) {
    loop {
        if live[p] {
            return;
        }
        live[p] = true;
        list.push(p);
        if pat.get(p) != Some(&Tok::AnyMany) {
            return;
        }
        p += 1;
    }
}

/// Replaces the first (or every) non-empty longest match of `pat` in `text`;
/// the result is bounded like any word (`${A//?/$A}` squares `A`'s length).
fn replace_matches(
    pat: &[Tok],
    text: &[char],
    rep: &str,
    all: bool,
    budget: &mut u64,
) -> Result<String, ExpandError> {
    let mut out = Output::new(false);
    let mut i = 0;
    let mut done = false;
    while i < text.len() {
        let end = if done || pat.is_empty() {
            None
        } else {
            let (_, longest) = match_lengths(pat, &text[i..], budget)?;
            longest.filter(|&k| k > 0).map(|k| i + k)
        };
        match end {
            Some(e) => {
                out.quoted(rep)?;
                i = e;
                done = !all;
            }
            None => {
                out.quoted_char(text[i])?;
                i += 1;
            }
        }
    }
    Ok(out.finish().concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `pat` matches all of `text`.
    fn full(pat: &str, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let mut budget = MAX_MATCH_STEPS;
        matches!(
            match_lengths(&parse_pattern(pat), &text, &mut budget),
            Ok((_, Some(k))) if k == text.len()
        )
    }

    #[test]
    fn glob_basics() {
        assert!(full("a*c", "abc"));
        assert!(!full("a*c", "ab"));
        assert!(full("\\*", "*"));
        assert!(!full("\\*", "x"));
        assert!(full("*a?*", "xxay"));
        assert!(full("", ""));
        assert!(!full("", "x"));
    }

    #[test]
    fn trims_and_replacements_keep_their_meaning() {
        let lexer = Lexer::default();
        let env = [("P", "/usr/local/bin:/usr/bin:/bin"), ("F", "a.tar.gz")];
        for (word, want) in [
            ("${F#*.}", "tar.gz"),
            ("${F##*.}", "gz"),
            ("${F%.*}", "a.tar"),
            ("${F%%.*}", "a"),
            ("${F#x}", "a.tar.gz"),
            ("${F%%}", "a.tar.gz"),
            ("${P//:/ }", "/usr/local/bin /usr/bin /bin"),
            ("${P/:*/}", "/usr/local/bin"),
            ("${F/a/A}", "A.tar.gz"),
            ("${F//a/A}", "A.tAr.gz"),
            ("${F//?/.}", "........"),
        ] {
            assert_eq!(
                lexer.process_word(word, env.as_slice()).as_deref(),
                Ok(want),
                "{word}"
            );
        }
    }

    /// Patterns that make a backtracking matcher quadratic or worse over a
    /// large value stop at the step limit instead.
    #[test]
    fn hostile_patterns_stop_at_the_step_limit() {
        let lexer = Lexer::default();
        let big = "a".repeat(MAX_WORD_BYTES);
        let env = [("BIG", big.as_str())];
        let start = std::time::Instant::now();
        assert_eq!(
            lexer.process_word("${BIG//*b/x}", env.as_slice()),
            Err(ExpandError::TooComplex)
        );
        // Linear ones finish.
        assert_eq!(
            lexer
                .process_word("${BIG%%*b}", env.as_slice())
                .map(|w| w.len()),
            Ok(MAX_WORD_BYTES)
        );
        assert_eq!(
            lexer.process_word("${BIG##*a}", env.as_slice()),
            Ok(String::new())
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(60));
    }

    /// `ARG A1=${A0}${A0}` and so on: each step doubles, and the step
    /// past the limit fails instead of allocating.
    #[test]
    fn doubling_stops_at_the_word_limit() {
        let lexer = Lexer::default();
        let mut env: Vec<(String, String)> = vec![("A0".into(), "xxxxxxxx".into())];
        let mut failed_at = None;
        for i in 1..=30 {
            let word = format!("${{A{}}}${{A{}}}", i - 1, i - 1);
            match lexer.process_word(&word, env.as_slice()) {
                Ok(v) => env.push((format!("A{i}"), v)),
                Err(e) => {
                    assert_eq!(e, ExpandError::TooLarge);
                    failed_at = Some(i);
                    break;
                }
            }
        }
        // 8 bytes doubled 17 times is exactly 1 MiB, still allowed.
        assert_eq!(failed_at, Some(18));
        assert_eq!(env.last().map(|(_, v)| v.len()), Some(MAX_WORD_BYTES));
    }

    #[test]
    fn every_construct_is_bounded() {
        let lexer = Lexer::default();
        let big = "a b".repeat(MAX_WORD_BYTES / 3);
        let env = [("BIG", big.as_str()), ("TWO", "ab")];
        for word in [
            "$BIG$TWO$TWO",
            "\"$BIG$TWO$TWO\"",
            "${BIG}-${BIG}",
            "${UNSET:-$BIG$BIG}",
            "${TWO:+$BIG$BIG}",
            "${TWO//?/$BIG}",
        ] {
            assert_eq!(
                lexer.process_word(word, env.as_slice()),
                Err(ExpandError::TooLarge),
                "{word}"
            );
        }
        // Field splitting counts the words together.
        assert_eq!(
            lexer.process_words("$BIG $BIG", env.as_slice()),
            Err(ExpandError::TooLarge)
        );
        assert_eq!(
            lexer.process_word("$BIG", env.as_slice()).map(|w| w.len()),
            Ok(big.len())
        );
    }
}
