//! Lexical path rules shared by the front end (WORKDIR) and the file ops (COPY).

/// Lexically cleans an absolute path: `//`, `.` and `..` resolved, no trailing `/`.
pub fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}
