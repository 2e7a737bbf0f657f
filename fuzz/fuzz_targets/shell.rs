//! Fuzz both expansion modes with both escape characters: must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_parser::shell::Lexer;

fuzz_target!(|data: &str| {
    let env: &[(&str, &str)] = &[("A", "a b  c"), ("EMPTY", ""), ("K", "한국어 *?")];
    for esc in ['\\', '`'] {
        let lexer = Lexer::new(esc);
        let _ = lexer.process_word(data, env);
        let _ = lexer.process_words(data, env);
    }
});
