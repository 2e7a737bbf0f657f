//! Property: expansion never panics on arbitrary input.

use proptest::prelude::*;
use strata_parser::shell::Lexer;

fn env() -> Vec<(String, String)> {
    vec![
        ("A".into(), "a b  c".into()),
        ("EMPTY".into(), String::new()),
        ("K".into(), "한국어 *?".into()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn never_panics(s in "[${}\\\\\"'`:?#%/*+=\\-AKa EMPTY한\\n.0-9]{0,40}", any_s in ".{0,20}") {
        let env = env();
        for esc in ['\\', '`'] {
            let l = Lexer::new(esc);
            for w in [&s, &any_s] {
                let _ = l.process_word(w, env.as_slice());
                let _ = l.process_words(w, env.as_slice());
            }
        }
    }
}
