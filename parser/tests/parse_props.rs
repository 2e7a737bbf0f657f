//! Parsing never panics: random text built from Dockerfile-shaped pieces
//! goes through `parse`, `dump` and `render`, and every span stays inside
//! the input.
use proptest::prelude::*;

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("FROM ".to_string()),
        Just("RUN ".to_string()),
        Just("COPY ".to_string()),
        Just("ADD ".to_string()),
        Just("ONBUILD ".to_string()),
        Just("HEALTHCHECK ".to_string()),
        Just("ENV ".to_string()),
        Just("ARG ".to_string()),
        Just("--mount=type=cache,target=/x ".to_string()),
        Just("--chmod=".to_string()),
        Just("--from=".to_string()),
        Just("<<EOF\n".to_string()),
        Just("<<-'E'\n".to_string()),
        Just("EOF\n".to_string()),
        Just("[\"a\", ".to_string()),
        Just("]".to_string()),
        Just("\\\n".to_string()),
        Just("`\n".to_string()),
        Just("# escape=`\n".to_string()),
        Just("# syntax=x\n".to_string()),
        Just("\r\n".to_string()),
        Just("\u{feff}".to_string()),
        Just("=".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("$".to_string()),
        Just("\n".to_string()),
        Just("\t".to_string()),
        "[a-z0-9 /.:]{0,6}",
        any::<char>().prop_map(String::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn parse_never_panics(pieces in proptest::collection::vec(piece(), 0..40)) {
        let src: String = pieces.concat();
        if let Ok(tree) = strata_parser::parse_nodes(&src) {
            let _ = strata_parser::dump(&tree);
        }
        match strata_parser::parse(&src) {
            Ok(df) => {
                for stage in &df.stages {
                    prop_assert!(stage.span.end <= src.len());
                }
            }
            Err(err) => {
                prop_assert!(err.span.start <= err.span.end && err.span.end <= src.len());
                let _ = strata_parser::render(&err, "Dockerfile", &src);
            }
        }
    }
}
