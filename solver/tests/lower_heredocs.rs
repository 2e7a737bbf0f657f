//! Heredocs lowered to graphs, one form of the Dockerfile reference's
//! "Here-Documents" section per test (the files they make and the commands
//! they run are checked end to end in the cli's `heredoc` tests).

use strata_solver::dockerfile::{BuildArgs, LowerOptions, Lowered, lower};
use strata_solver::graph::{CopyOp, ExecOp, Op};

type R = Result<(), Box<dyn std::error::Error>>;

fn lower_src(src: &str) -> Result<Lowered, Box<dyn std::error::Error>> {
    let df = strata_parser::parse(src).map_err(|e| format!("{e:?}"))?;
    let opts = LowerOptions {
        build_args: BuildArgs::parse(["FROM_CLI=cli"])?,
        ..LowerOptions::default()
    };
    Ok(lower(&df, src, &opts)?)
}

fn last_exec(l: &Lowered) -> Result<ExecOp, Box<dyn std::error::Error>> {
    match &l.graph.vertex(l.target).ok_or("no target")?.op {
        Op::Exec(e) => Ok(e.clone()),
        other => Err(format!("expected a RUN, got {other:?}").into()),
    }
}

fn last_copy(l: &Lowered) -> Result<CopyOp, Box<dyn std::error::Error>> {
    match &l.graph.vertex(l.target).ok_or("no target")?.op {
        Op::Copy(c) => Ok(c.clone()),
        other => Err(format!("expected a COPY, got {other:?}").into()),
    }
}

fn sh(cmd: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), cmd.into()]
}

/// "If the command only contains a here-document, its contents is
/// evaluated with the default shell" (and the SHELL instruction's shell).
#[test]
fn a_lone_heredoc_is_run_by_the_shell() -> R {
    let l = lower_src("FROM scratch\nRUN <<EOT\n  mkdir -p foo/bar\nEOT\n")?;
    assert_eq!(last_exec(&l)?.argv, sh("  mkdir -p foo/bar\n"));
    let l = lower_src("FROM scratch\nSHELL [\"/bin/bash\", \"-c\"]\nRUN <<EOT\necho $0\nEOT\n")?;
    assert_eq!(last_exec(&l)?.argv, vec!["/bin/bash", "-c", "echo $0\n"]);
    Ok(())
}

/// "Alternatively, shebang header can be used to define an interpreter."
#[test]
fn a_shebang_names_the_interpreter() -> R {
    let l =
        lower_src("FROM scratch\nRUN <<EOT\n#!/usr/bin/env python\nprint(\"hello world\")\nEOT\n")?;
    let argv = last_exec(&l)?.argv;
    assert_eq!(&argv[..2], ["/bin/sh", "-c"]);
    assert!(
        argv[2].starts_with("exec '/usr/bin/env' 'python' /dev/fd/3 3<<'STRATA_SCRIPT_0'\n#!/usr/bin/env python\nprint(\"hello world\")\n"),
        "{}",
        argv[2]
    );
    Ok(())
}

/// "Running a multi-line script" (`RUN <<EOT bash`) and "More complex
/// examples may use multiple here-documents": the line and the bodies go to
/// the shell, each body ended by its delimiter.
#[test]
fn heredocs_feeding_commands_go_to_the_shell_whole() -> R {
    let l = lower_src("FROM scratch\nRUN <<EOT bash\n  set -ex\n  apt-get update\nEOT\n")?;
    assert_eq!(
        last_exec(&l)?.argv,
        sh("<<EOT bash\n  set -ex\n  apt-get update\nEOT")
    );
    let src = "FROM scratch\nRUN <<FILE1 cat > file1 && <<FILE2 cat > file2\nI am\nfirst\nFILE1\nI am\nsecond\nFILE2\n";
    assert_eq!(
        last_exec(&lower_src(src)?)?.argv,
        sh("<<FILE1 cat > file1 && <<FILE2 cat > file2\nI am\nfirst\nFILE1\nI am\nsecond\nFILE2")
    );
    // `<<-` bodies reach the shell with their tabs stripped.
    let l = lower_src("FROM scratch\nRUN cat <<-EOF > /f\n\t\tx\n\tEOF\n")?;
    assert_eq!(last_exec(&l)?.argv, sh("cat <<-EOF > /f\nx\nEOF"));
    Ok(())
}

/// "With COPY instructions, you can replace the source parameter with a
/// here-doc indicator": a file named by the delimiter, its body "expanded
/// when the COPY instruction gets executed" with ARG and ENV; "if instead
/// you were to quote any part of the here-document word EOT, the variable
/// would not be expanded". The content is part of the step's key.
#[test]
fn copy_heredocs_become_inline_files() -> R {
    let src = "FROM scratch\nARG FOO=bar\nENV E=env\nCOPY <<-EOT /app/foo\n\thello ${FOO} $E ${FROM_CLI}\nEOT\n";
    let c = last_copy(&lower_src(src)?)?;
    assert_eq!(c.inline.len(), 1);
    assert_eq!(c.inline[0].name, "EOT");
    assert_eq!(c.inline[0].content, b"hello bar env \n");
    assert!(c.selections.is_empty());
    let quoted =
        "FROM scratch\nARG FOO=bar\nCOPY <<-\"EOT\" /app/script.sh\n\techo hello ${FOO}\nEOT\n";
    let c = last_copy(&lower_src(quoted)?)?;
    assert_eq!(c.inline[0].content, b"echo hello ${FOO}\n");
    // Several, mixed with a context file, into a directory.
    let src =
        "FROM scratch\nCOPY <<FILE1 a.txt <<FILE2 /dest/\ncontent 1\nFILE1\ncontent 2\nFILE2\n";
    let c = last_copy(&lower_src(src)?)?;
    let names: Vec<&str> = c.inline.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["FILE1", "FILE2"]);
    assert_eq!(c.selections.len(), 1);
    assert_eq!(c.selections[0].path, "a.txt");
    let key = |src: &str| -> Result<_, Box<dyn std::error::Error>> {
        let l = lower_src(src)?;
        Ok(l.graph.vertex(l.target).and_then(|v| v.key))
    };
    assert_ne!(
        key("FROM scratch\nCOPY <<EOF /f\none\nEOF\n")?,
        key("FROM scratch\nCOPY <<EOF /f\ntwo\nEOF\n")?
    );
    // Several sources need a directory destination.
    assert!(lower_src("FROM scratch\nCOPY <<A <<B /file\na\nA\nb\nB\n").is_err());
    Ok(())
}
