//! `.dockerignore`: which files of the build context are never sent to the
//! build, with Docker's exact rules (moby's pattern matcher, as BuildKit
//! uses it):
//! - a line starting with `#` is a comment; lines are trimmed; empty ones
//!   are skipped; a UTF-8 byte-order mark on the first line is ignored;
//! - a pattern is cleaned like Go's `filepath.Clean` and a leading `/` is
//!   dropped, so `/a`, `./a` and `a/` are all `a`;
//! - `!pattern` re-includes what earlier patterns excluded; the last
//!   pattern that matches decides;
//! - a pattern matches a path when it matches the path itself or any of its
//!   parent directories, so an excluded directory excludes its contents.
//!
//! The Dockerfile and `.dockerignore` themselves are not special here: the
//! build reads them directly, whatever this file says (as BuildKit does).

use crate::pattern::{BadPattern, Glob};

/// An invalid `.dockerignore` line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(".dockerignore line {line}: {cause}")]
pub struct IgnoreError {
    pub line: usize,
    pub cause: String,
}

#[derive(Debug, Clone)]
struct Rule {
    glob: Glob,
    exception: bool,
    line: usize,
}

/// The parsed patterns of one `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    rules: Vec<Rule>,
}

/// Go's `path.Clean` for `/`-separated paths.
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            ".." if rooted => {}
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

impl DockerIgnore {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<DockerIgnore, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut rules = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            if raw.starts_with('#') {
                continue;
            }
            let mut pattern = raw.trim();
            if pattern.is_empty() {
                continue;
            }
            let exception = pattern.starts_with('!');
            if exception {
                pattern = pattern[1..].trim();
                if pattern.is_empty() {
                    return Err(IgnoreError {
                        line,
                        cause: "illegal exclusion pattern: \"!\"".to_string(),
                    });
                }
            }
            let cleaned = clean(pattern);
            let cleaned = match cleaned.strip_prefix('/') {
                Some(rest) if !rest.is_empty() => rest.to_string(),
                _ => cleaned,
            };
            let glob = Glob::new(&cleaned).map_err(|e: BadPattern| IgnoreError {
                line,
                cause: e.to_string(),
            })?;
            rules.push(Rule {
                glob,
                exception,
                line,
            });
        }
        Ok(DockerIgnore { rules })
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded.
    pub fn matches(&self, path: &str) -> bool {
        self.excluded_by(path).is_some()
    }

    /// The pattern (and its line) that excludes `path`, for error messages
    /// such as "COPY x: excluded by .dockerignore line 3 (`*.log`)".
    pub fn excluded_by(&self, path: &str) -> Option<(usize, &str)> {
        let path = clean(path);
        let path = path.trim_start_matches('/');
        let mut decided: Option<&Rule> = None;
        for rule in &self.rules {
            // A rule can only change the outcome if it points the other way.
            let excluded = decided.is_some_and(|r| !r.exception);
            if rule.exception != excluded {
                continue;
            }
            if matches_self_or_parent(&rule.glob, path) {
                decided = Some(rule);
            }
        }
        decided
            .filter(|r| !r.exception)
            .map(|r| (r.line, r.glob.as_str()))
    }

    /// Whether a walker may skip the directory `dir` without looking inside:
    /// it is excluded and no exception pattern could re-include a child.
    pub fn skips_dir(&self, dir: &str) -> bool {
        self.matches(dir) && !self.rules.iter().any(|r| r.exception)
    }
}

fn matches_self_or_parent(glob: &Glob, path: &str) -> bool {
    glob.matches(path)
        || path
            .match_indices('/')
            .any(|(i, _)| glob.matches(&path[..i]))
}
