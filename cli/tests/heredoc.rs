//! Heredocs end to end on the busybox base, one case per form the
//! Dockerfile reference's "Here-Documents" section shows (and the shell
//! rules it points to), checked in the image unpacked by umoci.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::common::{Env, R, step_cached};

const DOCKERFILE: &str = "FROM busybox
ARG FOO=bar
ENV GREETING=hi
RUN <<EOT
  mkdir -p /foo/bar
  echo \"lone heredoc, run by $0\" > /foo/bar/lone
EOT
RUN <<EOT
#!/bin/awk -f
BEGIN { print \"awk ran\" > \"/awk.txt\" }
EOT
RUN <<EOT sh
  set -e
  echo \"fed to sh\" > /fed.txt
EOT
RUN <<FILE1 cat > /file1 && <<FILE2 cat > /file2
I am
first
FILE1
I am
second
FILE2
RUN cat <<EOF > /unquoted
$GREETING $FOO
EOF
RUN cat <<'EOF' > /quoted
$GREETING $FOO
EOF
RUN cat <<-EOF > /chomped
\t\tindented
\tEOF
COPY <<EOF greeting.txt
hello world
EOF
COPY <<-EOT /app/foo
\thello ${FOO}
EOT
COPY <<-\"EOT\" /app/script.sh
\techo hello ${FOO}
EOT
RUN FOO=abc sh /app/script.sh > /app/script.out
COPY --chmod=755 --chown=app:staff <<EOF /app/run.sh
#!/bin/sh
echo run
EOF
COPY <<FILE1 a.txt <<FILE2 /multi/
content 1
FILE1
content 2
FILE2
ADD <<EOF /etc/motd
welcome
EOF
";

fn read(p: &Path) -> Result<String, std::io::Error> {
    fs::read_to_string(p)
}

#[test]
fn every_documented_heredoc_form_builds() -> R {
    let env = Env::new()?;
    let ctx = env.context("heredocs", DOCKERFILE)?;
    env.build(&ctx, &["-t", "heredocs"])?;
    let root = env.unpack("heredocs:latest")?.join("rootfs");
    // "If the command only contains a here-document, its contents is
    // evaluated with the default shell."
    let lone = read(&root.join("foo/bar/lone"))?;
    assert!(lone.starts_with("lone heredoc, run by /bin/sh"), "{lone}");
    // "Alternatively, shebang header can be used to define an interpreter."
    assert_eq!(read(&root.join("awk.txt"))?, "awk ran\n");
    // "Running a multi-line script" (`RUN <<EOT bash`; busybox has sh).
    assert_eq!(read(&root.join("fed.txt"))?, "fed to sh\n");
    // "More complex examples may use multiple here-documents."
    assert_eq!(read(&root.join("file1"))?, "I am\nfirst\n");
    assert_eq!(read(&root.join("file2"))?, "I am\nsecond\n");
    // Heredocs feeding commands follow the shell's rules: an unquoted
    // delimiter expands, a quoted one does not; `<<-` strips leading tabs.
    assert_eq!(read(&root.join("unquoted"))?, "hi bar\n");
    assert_eq!(read(&root.join("quoted"))?, "$GREETING $FOO\n");
    assert_eq!(read(&root.join("chomped"))?, "indented\n");
    // "Creating inline files": relative to WORKDIR (/), 0644, root-owned.
    let greeting = root.join("greeting.txt");
    assert_eq!(read(&greeting)?, "hello world\n");
    let meta = fs::metadata(&greeting)?;
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid()),
        (0o644, 0, 0)
    );
    // "the variable is expanded when the COPY instruction gets executed"
    assert_eq!(read(&root.join("app/foo"))?, "hello bar\n");
    // "If instead you were to quote any part of the here-document word EOT,
    // the variable would not be expanded at build-time."
    assert_eq!(read(&root.join("app/script.sh"))?, "echo hello ${FOO}\n");
    assert_eq!(read(&root.join("app/script.out"))?, "hello abc\n");
    // --chmod and --chown apply to a heredoc file.
    let run = fs::metadata(root.join("app/run.sh"))?;
    assert_eq!(
        (run.mode() & 0o7777, run.uid(), run.gid()),
        (0o755, 1000, 50)
    );
    // Several heredocs, and one beside a context file, into a directory.
    assert_eq!(read(&root.join("multi/FILE1"))?, "content 1\n");
    assert_eq!(read(&root.join("multi/FILE2"))?, "content 2\n");
    assert_eq!(read(&root.join("multi/a.txt"))?, "heredocs");
    // ADD takes heredocs too (the parser's `add-heredoc` case).
    assert_eq!(read(&root.join("etc/motd"))?, "welcome\n");
    Ok(())
}

/// The body is part of a COPY heredoc's key: the same body is a cache hit,
/// a changed one reruns the step.
#[test]
fn a_copy_heredoc_body_keys_its_step() -> R {
    let env = Env::new()?;
    let df = |body: &str| format!("FROM busybox\nCOPY <<EOF /conf\n{body}\nEOF\nRUN cat /conf\n");
    let ctx = env.context("ctx", &df("one"))?;
    env.build(&ctx, &["-t", "h:1"])?;
    let again = env.build(&ctx, &["-t", "h:1"])?;
    assert!(step_cached(&again, "COPY <<EOF /conf")?, "{again}");
    fs::write(ctx.join("Dockerfile"), df("two"))?;
    let changed = env.build(&ctx, &["-t", "h:2"])?;
    assert!(!step_cached(&changed, "COPY <<EOF /conf")?, "{changed}");
    assert_eq!(read(&env.unpack("h:2")?.join("rootfs/conf"))?, "two\n");
    Ok(())
}
