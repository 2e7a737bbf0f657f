//! Build arguments and the ARG/ENV scope of a stage, with Docker's rules:
//!
//! - ARGs declared before the first FROM are *global*: usable in FROM lines,
//!   and inside a stage only once re-declared there (`ARG NAME` picks up the
//!   global value).
//! - `--build-arg` overrides any declared ARG's default; an undeclared one is
//!   not visible, except the predefined proxy ARGs.
//! - The platform ARGs (TARGETPLATFORM, BUILDARCH, ...) are global ARGs that
//!   every build defines.
//! - ENV wins over an ARG of the same name; both reach RUN's environment, only
//!   ENV reaches the image config.
//!
//! Word expansion itself lives in the parser's shell module; this module only
//! holds values, already expanded by the front end, and lowers ARG and ENV.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use strata_parser::ArgDecl;
use strata_parser::shell::Env;

use super::stages::StageState;
use super::{LowerError, Lowerer};
use strata_registry::{Platform, platform};

/// ARGs usable in every stage without declaration, when given with `--build-arg`.
const PROXY_ARGS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// The most the variables of one scope (a stage's ARGs and ENV, or the
/// global ARGs) may hold together, in bytes: ten words at the shell
/// module's per-word limit, and five times what Linux lets `execve` pass
/// as a RUN's whole environment (a quarter of the default 8 MiB stack), so
/// no working Dockerfile comes near it, while a file repeating
/// `ARG Bn=${BIG}` cannot grow memory without bound.
pub const MAX_SCOPE_BYTES: usize = 10 << 20;

/// A scope would outgrow [`MAX_SCOPE_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the ARG and ENV values in scope would total more than {} MiB, the limit",
    MAX_SCOPE_BYTES >> 20
)]
pub struct ScopeTooLarge;

/// Refuses a scope whose `pairs` plus one more `name=value` would be too large.
fn fits<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
    name: &str,
    value: &str,
) -> Result<(), ScopeTooLarge> {
    let held: usize = pairs.map(|(k, v)| k.len() + v.len()).sum();
    if held + name.len() + value.len() > MAX_SCOPE_BYTES {
        return Err(ScopeTooLarge);
    }
    Ok(())
}

/// The platform ARGs BuildKit predefines, for a build on `build` targeting `target`.
pub fn platform_args(build: &Platform, target: &Platform) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (prefix, p) in [("BUILD", build), ("TARGET", target)] {
        out.push((
            format!("{prefix}PLATFORM"),
            platform::display(p).to_string(),
        ));
        out.push((format!("{prefix}OS"), p.os().to_string()));
        out.push((format!("{prefix}ARCH"), p.architecture().to_string()));
        out.push((
            format!("{prefix}VARIANT"),
            p.variant().clone().unwrap_or_default(),
        ));
    }
    out
}

/// The `--build-arg` values of a build, remembering which ones were used so
/// the cli can warn about the others as docker does.
#[derive(Debug, Default)]
pub struct BuildArgs {
    given: BTreeMap<String, String>,
    consumed: Mutex<BTreeSet<String>>,
}

/// A `--build-arg` that is not `NAME=value` or `NAME`.
#[derive(Debug, thiserror::Error)]
#[error("invalid build argument {0:?}: expected NAME=value")]
pub struct BuildArgError(pub String);

impl BuildArgs {
    /// From `NAME=value` strings. A bare `NAME` takes its value from this
    /// process's environment, and is skipped when unset (docker's behaviour).
    pub fn parse<I, S>(items: I) -> Result<Self, BuildArgError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut given = BTreeMap::new();
        for item in items {
            let item = item.as_ref();
            match item.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    given.insert(k.to_string(), v.to_string());
                }
                None if !item.is_empty() => {
                    if let Ok(v) = std::env::var(item) {
                        given.insert(item.to_string(), v);
                    }
                }
                _ => return Err(BuildArgError(item.to_string())),
            }
        }
        Ok(BuildArgs {
            given,
            consumed: Mutex::default(),
        })
    }

    /// The value given for `name`, marking it used.
    pub fn get(&self, name: &str) -> Option<&str> {
        let v = self.given.get(name)?;
        if let Ok(mut c) = self.consumed.lock() {
            c.insert(name.to_string());
        }
        Some(v)
    }

    /// Given build args that no ARG declared (proxy ARGs excepted), sorted.
    pub fn unconsumed(&self) -> Vec<String> {
        let consumed = self.consumed.lock().map(|c| c.clone()).unwrap_or_default();
        self.given
            .keys()
            .filter(|k| !consumed.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
            .cloned()
            .collect()
    }

    /// Proxy ARGs given on the command line, visible to RUN without declaration.
    fn proxies(&self) -> Vec<(String, String)> {
        PROXY_ARGS
            .iter()
            .filter_map(|k| self.given.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect()
    }
}

/// The ARGs in force before the first FROM.
#[derive(Debug, Clone, Default)]
pub struct GlobalArgs {
    values: BTreeMap<String, Option<String>>,
}

impl GlobalArgs {
    /// Starts with the predefined platform ARGs.
    pub fn new(predefined: Vec<(String, String)>) -> Self {
        GlobalArgs {
            values: predefined.into_iter().map(|(k, v)| (k, Some(v))).collect(),
        }
    }

    /// `ARG name[=default]` before the first FROM; `default` already expanded
    /// with [`GlobalArgs::lookup`].
    pub fn declare(
        &mut self,
        args: &BuildArgs,
        name: &str,
        default: Option<String>,
    ) -> Result<(), ScopeTooLarge> {
        let value = args.get(name).map(str::to_string).or(default);
        let others = self
            .values
            .iter()
            .filter(|(k, _)| *k != name)
            .map(|(k, v)| (k.as_str(), v.as_deref().unwrap_or("")));
        fits(others, name, value.as_deref().unwrap_or(""))?;
        self.values.insert(name.to_string(), value);
        Ok(())
    }

    /// The value of a global ARG, for expanding FROM lines and global defaults.
    pub fn lookup(&self, name: &str) -> Option<&str> {
        self.values.get(name).and_then(|v| v.as_deref())
    }
}

/// The variables of one stage at one point: its ARGs and ENV.
#[derive(Debug, Clone, Default)]
pub struct StageScope {
    /// Declared ARGs with a value, in declaration order.
    args: Vec<(String, String)>,
    /// ENV (the base image's, then the stage's), in order of first definition.
    env: Vec<(String, String)>,
    proxies: Vec<(String, String)>,
}

impl StageScope {
    /// A stage starting from a base image whose config has `base_env`
    /// (`KEY=value` strings).
    pub fn new(args: &BuildArgs, base_env: &[String]) -> Self {
        let env = base_env
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .collect();
        StageScope {
            args: Vec::new(),
            env,
            proxies: args.proxies(),
        }
    }

    /// `ARG name[=default]` inside the stage; `default` already expanded with
    /// [`StageScope::lookup`].
    pub fn declare_arg(
        &mut self,
        args: &BuildArgs,
        globals: &GlobalArgs,
        name: &str,
        default: Option<String>,
    ) -> Result<(), ScopeTooLarge> {
        let value = args
            .get(name)
            .map(str::to_string)
            .or(default)
            .or_else(|| globals.lookup(name).map(str::to_string));
        let others = self.args.iter().filter(|(k, _)| k != name);
        fits(
            others
                .chain(&self.env)
                .map(|(k, v)| (k.as_str(), v.as_str())),
            name,
            value.as_deref().unwrap_or(""),
        )?;
        self.args.retain(|(k, _)| k != name);
        if let Some(v) = value {
            self.args.push((name.to_string(), v));
        }
        Ok(())
    }

    /// `ENV key=value`, value already expanded.
    pub fn set_env(&mut self, key: &str, value: String) -> Result<(), ScopeTooLarge> {
        let others = self.env.iter().filter(|(k, _)| k != key);
        fits(
            others
                .chain(&self.args)
                .map(|(k, v)| (k.as_str(), v.as_str())),
            key,
            &value,
        )?;
        match self.env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.env.push((key.to_string(), value)),
        }
        Ok(())
    }

    /// The value of a variable for word expansion: ENV first, then ARG.
    pub fn lookup(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .or_else(|| self.args.iter().find(|(k, _)| k == name))
            .map(|(_, v)| v.as_str())
    }

    /// The image config's `Env`: ENV only.
    pub fn image_env(&self) -> Vec<String> {
        self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// The environment of a RUN: proxies, then ARGs not shadowed by ENV, then ENV.
    pub fn run_env(&self) -> Vec<String> {
        let shadowed = |k: &str| self.env.iter().any(|(e, _)| e == k);
        let mut out: Vec<String> = Vec::new();
        for (k, v) in self.proxies.iter().chain(self.args.iter()) {
            if !shadowed(k)
                && !out
                    .iter()
                    .any(|s| s.split_once('=').map(|p| p.0) == Some(k))
            {
                out.push(format!("{k}={v}"));
            }
        }
        out.extend(self.image_env());
        out
    }
}

impl Env for GlobalArgs {
    fn lookup(&self, name: &str) -> Option<&str> {
        GlobalArgs::lookup(self, name)
    }
}

impl Env for StageScope {
    fn lookup(&self, name: &str) -> Option<&str> {
        StageScope::lookup(self, name)
    }
}

impl Lowerer<'_> {
    /// The ARGs before the first FROM.
    pub(super) fn global_args(
        &mut self,
        ins: &[strata_parser::Instruction],
    ) -> Result<(), LowerError> {
        for ins in ins {
            if let strata_parser::InstructionKind::Arg(decls) = &ins.kind {
                self.at = ins.span;
                for d in decls {
                    let default = match &d.default {
                        Some(w) => Some(self.expand(&self.globals, w, ins.span.line)?),
                        None => None,
                    };
                    self.globals
                        .declare(&self.opts.build_args, &d.name, default)
                        .map_err(|source| self.too_large(source))?;
                }
            }
        }
        Ok(())
    }

    /// `ARG` inside a stage.
    pub(super) fn arg(
        &mut self,
        st: &mut StageState,
        decls: &[ArgDecl],
        text: &str,
        line: u32,
    ) -> Result<(), LowerError> {
        // Every `$VAR` of the line sees the values from before it (BuildKit
        // expands the whole instruction first): `ARG A=2 B=$A` gives B the
        // old A. One pair needs no copy.
        let before = (decls.len() > 1).then(|| st.scope.clone());
        for d in decls {
            let scope = before.as_ref().unwrap_or(&st.scope);
            let default = match &d.default {
                Some(w) => Some(self.expand(scope, w, line)?),
                None => None,
            };
            st.scope
                .declare_arg(&self.opts.build_args, &self.globals, &d.name, default)
                .map_err(|source| self.too_large(source))?;
        }
        let declared = text.get(3..).map(str::trim).unwrap_or_default();
        st.config.history(format!("ARG {declared}"), true);
        Ok(())
    }

    /// `ENV` inside a stage: the scope and the image config both change.
    pub(super) fn env(
        &mut self,
        st: &mut StageState,
        pairs: &[(String, String)],
        text: String,
        line: u32,
    ) -> Result<(), LowerError> {
        // As for ARG: `ENV A=2 B=$A` gives B the value A had before the line.
        let before = (pairs.len() > 1).then(|| st.scope.clone());
        for (k, v) in pairs {
            let scope = before.as_ref().unwrap_or(&st.scope);
            let k = self.expand(scope, k, line)?;
            let v = self.expand(scope, v, line)?;
            st.scope
                .set_env(&k, v.clone())
                .map_err(|source| self.too_large(source))?;
            st.config.env(&k, &v);
        }
        st.config.history(text, true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(items: &[&str]) -> BuildArgs {
        BuildArgs::parse(items.iter().copied()).unwrap_or_default()
    }

    #[test]
    fn platform_args_are_predefined() {
        let args = platform_args(&platform::host(), &platform::host());
        assert!(args.iter().any(|(k, _)| k == "TARGETARCH"));
        assert!(args.iter().any(|(k, _)| k == "BUILDPLATFORM"));
    }

    #[test]
    fn global_args_need_redeclaration_in_a_stage() {
        let a = args(&["VERSION=2"]);
        let mut g = GlobalArgs::new(vec![("TARGETOS".into(), "linux".into())]);
        assert_eq!(g.declare(&a, "VERSION", Some("1".into())), Ok(()));
        assert_eq!(g.declare(&a, "BASE", Some("alpine".into())), Ok(()));
        assert_eq!(g.lookup("VERSION"), Some("2"));
        assert_eq!(g.lookup("BASE"), Some("alpine"));

        let mut s = StageScope::new(&a, &[]);
        assert_eq!(s.lookup("BASE"), None, "not visible before ARG BASE");
        for name in ["BASE", "TARGETOS", "UNSET"] {
            assert_eq!(s.declare_arg(&a, &g, name, None), Ok(()));
        }
        assert_eq!(s.lookup("BASE"), Some("alpine"));
        assert_eq!(s.lookup("TARGETOS"), Some("linux"));
        assert_eq!(s.run_env(), vec!["BASE=alpine", "TARGETOS=linux"]);
        assert!(a.unconsumed().is_empty());
    }

    #[test]
    fn build_arg_overrides_default_and_env_wins_over_arg() {
        let a = args(&["X=cli", "UNUSED=1", "HTTP_PROXY=http://p"]);
        let g = GlobalArgs::default();
        let mut s = StageScope::new(&a, &["PATH=/bin".into()]);
        assert_eq!(s.declare_arg(&a, &g, "X", Some("default".into())), Ok(()));
        assert_eq!(s.lookup("X"), Some("cli"));
        assert_eq!(s.set_env("X", "env".into()), Ok(()));
        assert_eq!(s.lookup("X"), Some("env"));
        assert_eq!(s.image_env(), vec!["PATH=/bin", "X=env"]);
        assert_eq!(
            s.run_env(),
            vec!["HTTP_PROXY=http://p", "PATH=/bin", "X=env"]
        );
        assert_eq!(a.unconsumed(), vec!["UNUSED".to_string()]);
    }

    #[test]
    fn bad_build_arg_is_rejected() {
        assert!(BuildArgs::parse(["=x"]).is_err());
    }

    /// Many words each under the word limit still cannot grow a scope past
    /// its own; redefining a name replaces its share instead of adding.
    #[test]
    fn scopes_are_bounded() {
        let a = args(&[]);
        let g = GlobalArgs::default();
        let mut s = StageScope::new(&a, &[]);
        let mib = "x".repeat(1 << 20);
        for i in 0..8 {
            let r = s.declare_arg(&a, &g, &format!("B{i}"), Some(mib.clone()));
            assert_eq!(r, Ok(()));
        }
        assert_eq!(s.set_env("E0", mib.clone()), Ok(()));
        assert_eq!(s.set_env("E0", mib.clone()), Ok(()), "a replacement");
        assert_eq!(s.declare_arg(&a, &g, "B7", Some(mib.clone())), Ok(()));
        assert_eq!(s.set_env("E1", mib.clone()), Err(ScopeTooLarge));
        assert_eq!(s.lookup("E1"), None, "nothing stored");

        let mut globals = GlobalArgs::default();
        for i in 0..9 {
            let r = globals.declare(&a, &format!("G{i}"), Some(mib.clone()));
            assert_eq!(r, Ok(()));
        }
        let r = globals.declare(&a, "G9", Some(mib.clone()));
        assert_eq!(r, Err(ScopeTooLarge));
        assert_eq!(globals.declare(&a, "G8", Some("small".into())), Ok(()));
        assert_eq!(globals.declare(&a, "G9", Some(mib.clone())), Ok(()));
    }
}
