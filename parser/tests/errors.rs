//! Errors as a user sees them: each case is rendered with `render` and kept
//! as an insta snapshot, so a change to a message, a span or a hint shows up
//! in review. Every rendering must name `Dockerfile:line:col`.
#![allow(clippy::unwrap_used)]

use strata_parser::{parse, render};

fn rendered(src: &str) -> String {
    let err = parse(src).expect_err("this Dockerfile must be rejected");
    let out = render(&err, "Dockerfile", src);
    let place = format!("Dockerfile:{}:{}", err.span.line, err.span.column);
    assert!(out.contains(&place), "no {place} in:\n{out}");
    out
}

macro_rules! error_case {
    ($name:ident, $src:expr) => {
        #[test]
        fn $name() {
            insta::assert_snapshot!(rendered($src));
        }
    };
}

error_case!(unknown_instruction, "FROM busybox\nRUNN echo hi\n");
error_case!(
    instruction_before_from,
    "ARG V=1\nRUN echo $V\nFROM busybox\n"
);
error_case!(
    unterminated_heredoc,
    "FROM busybox\nRUN <<EOF\necho hello\nEOFX\n"
);
error_case!(
    mount_bad_type,
    "FROM busybox\nRUN --mount=type=volume,target=/x true\n"
);
error_case!(
    mount_unknown_key,
    "FROM busybox\nRUN --mount=type=cache,target=/c,colour=red true\n"
);
error_case!(
    mount_bad_mode,
    "FROM busybox\nRUN --mount=type=cache,target=/c,mode=rwx true\n"
);
error_case!(
    secret_without_id,
    "FROM busybox\nRUN --mount=type=secret true\n"
);
error_case!(unknown_flag, "FROM busybox\nCOPY --foo=bar a /b\n");
error_case!(bad_chmod, "FROM busybox\nCOPY --chmod=rwx a /b\n");
error_case!(env_without_value, "FROM busybox\nENV PATH\n");
error_case!(directive_twice, "# escape=\\\n# escape=`\nFROM busybox\n");
error_case!(bad_escape_value, "# escape=x\nFROM busybox\n");
error_case!(
    healthcheck_bad_duration,
    "FROM busybox\nHEALTHCHECK --interval=5 CMD true\n"
);
error_case!(
    healthcheck_bad_retries,
    "FROM busybox\nHEALTHCHECK --retries=many CMD true\n"
);
error_case!(onbuild_from, "FROM busybox\nONBUILD FROM alpine\n");
error_case!(onbuild_onbuild, "FROM busybox\nONBUILD ONBUILD RUN true\n");
error_case!(empty_file, "");
error_case!(only_comments, "# nothing\n# here\n");
error_case!(shell_not_json, "FROM busybox\nSHELL /bin/bash -c\n");
error_case!(bad_network, "FROM busybox\nRUN --network=bridge true\n");
error_case!(
    copy_flag_on_copy,
    "FROM busybox\nCOPY --checksum=sha256:abc a /b\n"
);
error_case!(copy_without_dest, "FROM busybox\nCOPY onlyone\n");
error_case!(from_extra_words, "FROM busybox as base extra\n");
error_case!(nested_json, "FROM busybox\nCMD [\"echo\", [\"nested\"]]\n");

#[test]
fn line_too_long() {
    let src = format!("FROM busybox\nRUN echo {}\n", "x".repeat(70_000));
    let err = parse(&src).expect_err("an over-long line must be rejected");
    // The line itself is too long for a snapshot: check the place and cause.
    assert_eq!((err.span.line, err.span.column), (2, 1));
    assert!(err.message.contains("65535"), "{}", err.message);
    assert!(render(&err, "Dockerfile", &src).contains("Dockerfile:2:1"));
}
