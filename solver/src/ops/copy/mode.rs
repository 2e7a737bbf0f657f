//! `--chmod` in symbolic notation (Dockerfile 1.14: `+x`, `u=rwX,go=rX`,
//! `g=u`), applied to each copied entry's own mode as chmod(1) does.
//!
//! A clause is `[ugoa]*` followed by one or more `[+-=]` actions, each with
//! permissions `[rwxXst]*` or one of `u`, `g`, `o` (copy those bits).
//! Clauses are separated by commas and applied in order. Without `ugoa` the
//! clause is for everyone (`a`); the umask is not consulted: a build has
//! none of its own. `X` is `x` for a directory or an entry some `x` bit of
//! which is set.

use std::fmt;

/// A parsed symbolic mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbolic {
    clauses: Vec<Clause>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    /// The permission bits the clause may touch (`u` = 0o4700, …).
    who: u32,
    actions: Vec<(char, Perm)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Perm {
    /// Letters among `rwxXst`.
    Bits(String),
    /// `u`, `g` or `o`: the bits that class has now.
    Copy(char),
}

/// A symbolic mode that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid symbolic mode {mode:?}: {why}")]
pub struct BadMode {
    /// The mode as written.
    pub mode: String,
    /// What is wrong with it.
    pub why: &'static str,
}

const USER: u32 = 0o4700;
const GROUP: u32 = 0o2070;
const OTHER: u32 = 0o1007;

impl Symbolic {
    /// Parses `u+x,go-w` and the like.
    pub fn parse(mode: &str) -> Result<Symbolic, BadMode> {
        let bad = |why| BadMode {
            mode: mode.to_string(),
            why,
        };
        let mut clauses = Vec::new();
        for part in mode.split(',') {
            let mut chars = part.chars().peekable();
            let mut who = 0;
            while let Some(&c) = chars.peek() {
                who |= match c {
                    'u' => USER,
                    'g' => GROUP,
                    'o' => OTHER,
                    'a' => USER | GROUP | OTHER,
                    _ => break,
                };
                chars.next();
            }
            if who == 0 {
                who = USER | GROUP | OTHER;
            }
            let mut actions = Vec::new();
            while let Some(op) = chars.next() {
                if !matches!(op, '+' | '-' | '=') {
                    return Err(bad("expected +, - or = after the classes"));
                }
                let mut perm = String::new();
                while let Some(&c) = chars.peek() {
                    if matches!(c, '+' | '-' | '=') {
                        break;
                    }
                    perm.push(c);
                    chars.next();
                }
                let perm = match perm.as_str() {
                    "u" | "g" | "o" => Perm::Copy(perm.chars().next().unwrap_or('u')),
                    p if p.chars().all(|c| "rwxXst".contains(c)) => Perm::Bits(perm),
                    _ => return Err(bad("permissions are letters of rwxXst, or one of u, g, o")),
                };
                actions.push((op, perm));
            }
            if actions.is_empty() {
                return Err(bad("a clause needs an action (+, - or =)"));
            }
            clauses.push(Clause { who, actions });
        }
        Ok(Symbolic { clauses })
    }

    /// The mode (permission bits, `0o7777`) an entry whose mode is `mode`
    /// gets; `is_dir` decides `X`.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let mut m = mode & 0o7777;
        for clause in &self.clauses {
            for (op, perm) in &clause.actions {
                let bits = match perm {
                    Perm::Bits(letters) => letters_bits(letters, m, is_dir),
                    Perm::Copy(class) => copied(*class, m),
                } & clause.who;
                match op {
                    '+' => m |= bits,
                    '-' => m &= !bits,
                    // `=` clears the class's rwx (and its s/t) first.
                    _ => m = (m & !clause.who) | bits,
                }
            }
        }
        m
    }
}

impl fmt::Display for Symbolic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.clauses.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            for (mask, letter) in [(USER, 'u'), (GROUP, 'g'), (OTHER, 'o')] {
                if c.who & mask == mask {
                    write!(f, "{letter}")?;
                }
            }
            for (op, perm) in &c.actions {
                match perm {
                    Perm::Bits(b) => write!(f, "{op}{b}")?,
                    Perm::Copy(class) => write!(f, "{op}{class}")?,
                }
            }
        }
        Ok(())
    }
}

/// The bits `rwxXst` stand for, in every class (the clause masks them).
fn letters_bits(letters: &str, mode: u32, is_dir: bool) -> u32 {
    letters.chars().fold(0, |acc, c| {
        acc | match c {
            'r' => 0o444,
            'w' => 0o222,
            'x' => 0o111,
            'X' if is_dir || mode & 0o111 != 0 => 0o111,
            's' => 0o6000,
            't' => 0o1000,
            _ => 0,
        }
    })
}

/// The rwx bits of `class` in `mode`, repeated for every class.
fn copied(class: char, mode: u32) -> u32 {
    let rwx = match class {
        'u' => (mode >> 6) & 0o7,
        'g' => (mode >> 3) & 0o7,
        _ => mode & 0o7,
    };
    rwx << 6 | rwx << 3 | rwx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(mode: &str, on: u32, dir: bool) -> u32 {
        Symbolic::parse(mode).map_or(u32::MAX, |m| m.apply(on, dir))
    }

    #[test]
    fn symbolic_modes_follow_chmod() {
        assert_eq!(apply("u+x,go-w", 0o666, false), 0o744);
        assert_eq!(apply("+x", 0o644, false), 0o755);
        assert_eq!(apply("u=rwX,go=rX", 0o600, false), 0o644);
        assert_eq!(apply("u=rwX,go=rX", 0o700, false), 0o755);
        assert_eq!(apply("u=rwX,go=rX", 0o600, true), 0o755);
        assert_eq!(apply("g=u", 0o640, false), 0o660);
        assert_eq!(apply("a-rwx,u+r", 0o777, false), 0o400);
        assert_eq!(apply("u+s,g+s,+t", 0o755, true), 0o7755);
        assert_eq!(apply("o=", 0o1777, true), 0o770);
        assert_eq!(apply("u+x-w", 0o644, false), 0o544);
    }

    #[test]
    fn bad_symbolic_modes_are_refused() {
        for m in ["", "u", "x+", "u+z", "u+rg", "q=r", "u+x,"] {
            assert!(Symbolic::parse(m).is_err(), "{m}");
        }
        assert_eq!(
            Symbolic::parse("go-w,a+X").map(|m| m.to_string()),
            Ok("go-w,ugo+X".to_string())
        );
    }
}
