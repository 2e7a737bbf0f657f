//! Build checks run on the Dockerfile before anything is built, as
//! BuildKit's are; each finding is a [`BuildWarning`] for the progress
//! stream. Only `SecretsUsedInArgOrEnv` so far.

use strata_parser::{Dockerfile, Instruction, InstructionKind};

use crate::progress::BuildWarning;

/// Words that make an ARG or ENV name look like a secret when one is the
/// whole name or a `_`-separated part of it, in any case (BuildKit's list).
const SECRET_WORDS: &[&str] = &[
    "apikey",
    "auth",
    "credential",
    "credentials",
    "key",
    "password",
    "pword",
    "passwd",
    "secret",
    "token",
];

/// A `_`-separated part that clears a name (`PUBLIC_KEY` holds no secret).
const PUBLIC_WORDS: &[&str] = &["public"];

/// Whether `name` looks like it holds a secret: `DB_PASSWORD`, `api_key`,
/// `GITHUB_TOKEN` do; `KEYBOARD`, `MONKEY`, `PUBLIC_KEY` do not.
pub(crate) fn looks_secret(name: &str) -> bool {
    let has = |words: &[&str]| {
        name.split('_')
            .any(|part| words.iter().any(|w| part.eq_ignore_ascii_case(w)))
    };
    has(SECRET_WORDS) && !has(PUBLIC_WORDS)
}

/// `SecretsUsedInArgOrEnv`: every ARG and ENV whose name looks like a
/// secret, in the file `file`.
pub fn secrets_in_arg_or_env(df: &Dockerfile, file: &str) -> Vec<BuildWarning> {
    let instructions = df
        .global_args
        .iter()
        .chain(df.stages.iter().flat_map(|s| s.instructions.iter()));
    instructions
        .flat_map(|i| secret_names(i).map(move |(kind, name)| (i, kind, name)))
        .map(|(i, kind, name)| BuildWarning {
            rule: "SecretsUsedInArgOrEnv".into(),
            message: format!(
                "Do not use ARG or ENV instructions for sensitive data ({kind} {name:?}); \
                 pass it with --secret and read it in RUN --mount=type=secret"
            ),
            file: file.to_string(),
            line: i.span.line,
        })
        .collect()
}

/// The names an ARG or ENV instruction declares that look like secrets.
fn secret_names(i: &Instruction) -> impl Iterator<Item = (&'static str, &str)> {
    let names: Vec<(&'static str, &str)> = match &i.kind {
        InstructionKind::Arg(decls) => decls.iter().map(|d| ("ARG", d.name.as_str())).collect(),
        InstructionKind::Env(pairs) => pairs.iter().map(|(n, _)| ("ENV", n.as_str())).collect(),
        _ => Vec::new(),
    };
    names.into_iter().filter(|(_, n)| looks_secret(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_whole_words_as_buildkit_does() {
        for secret in [
            "DB_PASSWORD",
            "api_key",
            "GITHUB_TOKEN",
            "secret_MESSAGE",
            "AUTH",
            "AWS_SECRET_ACCESS_KEY",
            "passwd",
            "NPM_CREDENTIALS",
            "APIKEY",
        ] {
            assert!(looks_secret(secret), "{secret} was not flagged");
        }
        for plain in [
            "VERSION",
            "KEYBOARD",
            "MONKEY",
            "PASSWORDS_FILE_COUNT",
            "PUBLIC_KEY",
            "TOKENIZER",
            "AUTHOR",
        ] {
            assert!(!looks_secret(plain), "{plain} was flagged");
        }
    }

    #[test]
    fn warns_for_each_secret_name_with_its_line() -> Result<(), strata_parser::ParseError> {
        let src = "ARG GITHUB_TOKEN\nFROM scratch\nARG VERSION=1\nENV DB_PASSWORD=x PUBLIC_KEY=y\n";
        let df = strata_parser::parse(src)?;
        let found = secrets_in_arg_or_env(&df, "Dockerfile");
        let got: Vec<(u32, bool)> = found
            .iter()
            .map(|w| (w.line, w.message.contains("--secret")))
            .collect();
        assert_eq!(got, [(1, true), (4, true)]);
        assert!(
            found[0].message.contains(r#"(ARG "GITHUB_TOKEN")"#),
            "{found:?}"
        );
        assert!(
            found[1].message.contains(r#"(ENV "DB_PASSWORD")"#),
            "{found:?}"
        );
        assert!(found.iter().all(|w| w.rule == "SecretsUsedInArgOrEnv"));
        Ok(())
    }
}
