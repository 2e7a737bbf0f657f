//! Any bytes, read as a Dockerfile: parsing, dumping and rendering an error
//! must never panic, and every span must lie inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(tree) = strata_parser::parse_nodes(src) {
        let _ = strata_parser::dump(&tree);
        for node in &tree.nodes {
            assert!(node.span.end <= src.len());
        }
    }
    match strata_parser::parse(src) {
        Ok(df) => {
            let _ = serde_json::to_string(&df);
        }
        Err(err) => {
            assert!(err.span.end <= src.len());
            let _ = strata_parser::render(&err, "Dockerfile", src);
        }
    }
});
