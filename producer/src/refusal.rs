//! A refusal of the user's request (exit 2, one line, nothing done), and the
//! confirmation a person types.

/// A refusal of the user's request: exit code 2 and one line, nothing done.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Asks a person at the terminal to type `yes`. Without a terminal the
/// request is refused (exit 2) with `refusal`, which says which flag to pass.
pub fn confirm(question: &str, refusal: String) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(Refused(refusal).into());
    }
    print!("{question} type yes: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}
