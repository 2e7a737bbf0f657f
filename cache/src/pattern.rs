//! One `.dockerignore` pattern, matched the way Docker's pattern matcher
//! does it: Go `filepath.Match` syntax (`*`, `?`, `[...]` with `^` negation
//! and ranges, `\` escapes) plus `**`, which crosses directories.

use std::fmt;

/// A malformed pattern, as Go's `filepath.ErrBadPattern`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad pattern {pattern:?}: {why}")]
pub struct BadPattern {
    pub pattern: String,
    pub why: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `?`: one character other than `/`.
    Any,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**` at the end: anything at all, `/` included.
    StarStarEnd,
    /// `**` elsewhere (a following `/` is eaten): zero or more whole
    /// directories, i.e. `(.*/)?`.
    StarStarDirs,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled glob.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    tokens: Vec<Token>,
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.text)
    }
}

impl Glob {
    /// Compiles `pattern`; a trailing `\`, an unclosed or empty `[...]` or
    /// a bad range is an error, as in Go.
    pub fn new(pattern: &str) -> Result<Glob, BadPattern> {
        let bad = |why| BadPattern {
            pattern: pattern.to_string(),
            why,
        };
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    if chars.peek() == Some(&'/') {
                        chars.next();
                    }
                    tokens.push(if chars.peek().is_none() {
                        Token::StarStarEnd
                    } else {
                        Token::StarStarDirs
                    });
                }
                '*' => tokens.push(Token::Star),
                '?' => tokens.push(Token::Any),
                '\\' => match chars.next() {
                    Some(escaped) => tokens.push(Token::Char(escaped)),
                    None => return Err(bad("it ends with an escape character")),
                },
                '[' => {
                    let negated = chars.peek() == Some(&'^');
                    if negated {
                        chars.next();
                    }
                    let mut ranges = Vec::new();
                    loop {
                        let lo = match chars.next() {
                            None => return Err(bad("a '[' is not closed")),
                            Some(']') if !ranges.is_empty() => break,
                            Some(']') | Some('-') => return Err(bad("empty or malformed class")),
                            Some('\\') => chars
                                .next()
                                .ok_or_else(|| bad("it ends with an escape character"))?,
                            Some(c) => c,
                        };
                        let hi = if chars.peek() == Some(&'-') {
                            chars.next();
                            match chars.next() {
                                Some('\\') => chars
                                    .next()
                                    .ok_or_else(|| bad("it ends with an escape character"))?,
                                Some(']') | None => return Err(bad("a range has no end")),
                                Some(c) => c,
                            }
                        } else {
                            lo
                        };
                        if hi < lo {
                            return Err(bad("a range runs backwards"));
                        }
                        ranges.push((lo, hi));
                    }
                    tokens.push(Token::Class { negated, ranges });
                }
                c => tokens.push(Token::Char(c)),
            }
        }
        Ok(Glob {
            text: pattern.to_string(),
            tokens,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the whole of `path` (relative, `/`-separated) matches.
    pub fn matches(&self, path: &str) -> bool {
        let path: Vec<char> = path.chars().collect();
        match_at(&self.tokens, &path)
    }
}

fn class_has(negated: bool, ranges: &[(char, char)], c: char) -> bool {
    ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != negated
}

/// Whether `tokens` match all of `path`. A backtracking search memoized on
/// (token, position): each pair is decided once, so the work is bounded by
/// tokens × positions × positions however many `*` and `**` a pattern has
/// (plain backtracking is exponential in them).
fn match_at(tokens: &[Token], path: &[char]) -> bool {
    Matcher {
        tokens,
        path,
        memo: vec![None; (tokens.len() + 1) * (path.len() + 1)],
    }
    .at(0, 0)
}

struct Matcher<'a> {
    tokens: &'a [Token],
    path: &'a [char],
    /// The outcome of `at(t, p)`, at `t * (path.len() + 1) + p`.
    memo: Vec<Option<bool>>,
}

impl Matcher<'_> {
    /// Whether `tokens[t..]` match all of `path[p..]`.
    fn at(&mut self, t: usize, p: usize) -> bool {
        let slot = t * (self.path.len() + 1) + p;
        if let Some(known) = self.memo[slot] {
            return known;
        }
        let found = self.step(t, p);
        self.memo[slot] = Some(found);
        found
    }

    fn step(&mut self, t: usize, p: usize) -> bool {
        let path = self.path;
        let Some(first) = self.tokens.get(t) else {
            return p == path.len();
        };
        let next = path.get(p).copied();
        match first {
            Token::Char(c) => next == Some(*c) && self.at(t + 1, p + 1),
            Token::Any => next.is_some_and(|c| c != '/') && self.at(t + 1, p + 1),
            Token::Class { negated, ranges } => {
                // Like Go's classes, and unlike `?`, a class may match `/`.
                next.is_some_and(|c| class_has(*negated, ranges, c)) && self.at(t + 1, p + 1)
            }
            Token::Star => {
                // Try every run of non-separator characters, shortest first.
                let run = path[p..].iter().take_while(|&&c| c != '/').count();
                (0..=run).any(|n| self.at(t + 1, p + n))
            }
            Token::StarStarEnd => true,
            Token::StarStarDirs => {
                // Zero directories, or everything up to and including any `/`.
                self.at(t + 1, p)
                    || (p..path.len())
                        .filter(|&i| path[i] == '/')
                        .any(|i| self.at(t + 1, i + 1))
            }
        }
    }
}
