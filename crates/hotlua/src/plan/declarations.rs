//! Which module-level local names a file declares more than once.
//!
//! A new cell that no paired function carries joins the old module's only local of its name
//! ([`super::Planner::join_cells`]). That is right only when the name means one variable: a
//! file that says `local ok, a = pcall(require, "a")` and later `local ok, b = pcall(...)`
//! has two variables called `ok`, and the Lua API cannot tell which one a cell is. Such names
//! are found here, from the source text, and never joined by name.
//!
//! A small scanner, not a parser: it skips comments, strings and long brackets, follows
//! `function … end` nesting, and reads the names after `local` (and `local function`) outside
//! any function body.

use std::collections::{HashMap, HashSet};

/// The names `text` declares as locals more than once outside any function body.
pub(super) fn repeated_top_level_locals(text: &[u8]) -> HashSet<String> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut tokens = Tokens { text, at: 0 };
    // Blocks open inside function bodies (the function's own `end` included); 0 at top level,
    // where blocks do not matter: every `local` there is the chunk's.
    let mut depth_in_functions = 0usize;
    // After `while` or `for`, the loop's `do` opens no second block.
    let mut loop_header = false;
    while let Some(token) = tokens.next() {
        let in_function = depth_in_functions > 0;
        match token {
            Token::Name("function") => depth_in_functions += 1,
            Token::Name("if" | "repeat") if in_function => depth_in_functions += 1,
            Token::Name("while" | "for") => {
                depth_in_functions += usize::from(in_function);
                loop_header = true;
            }
            Token::Name("do") if loop_header => loop_header = false,
            Token::Name("do") if in_function => depth_in_functions += 1,
            Token::Name("end" | "until") if in_function => depth_in_functions -= 1,
            Token::Name("local") if !in_function => {
                let mut names = Vec::new();
                match tokens.next() {
                    Some(Token::Name("function")) => {
                        depth_in_functions += 1;
                        if let Some(Token::Name(name)) = tokens.next() {
                            names.push(name);
                        }
                    }
                    Some(Token::Name(name)) => {
                        names.push(name);
                        // `a <const>, b, c = …`
                        loop {
                            let mark = tokens.at;
                            match tokens.next() {
                                Some(Token::Other(b'<')) => {
                                    tokens.next();
                                    tokens.next();
                                }
                                Some(Token::Other(b',')) => match tokens.next() {
                                    Some(Token::Name(name)) => names.push(name),
                                    _ => break,
                                },
                                _ => {
                                    tokens.at = mark;
                                    break;
                                }
                            }
                        }
                    }
                    _ => {}
                }
                for name in names {
                    *counts.entry(name.to_owned()).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    counts
        .into_iter()
        .filter(|(_, count)| *count > 1)
        .map(|(name, _)| name)
        .collect()
}

#[derive(Debug, PartialEq)]
enum Token<'a> {
    Name(&'a str),
    /// Any other single byte of punctuation.
    Other(u8),
    /// A string, number or long bracket.
    Literal,
}

struct Tokens<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Tokens<'a> {
    fn next(&mut self) -> Option<Token<'a>> {
        loop {
            let &byte = self.text.get(self.at)?;
            match byte {
                b if b.is_ascii_whitespace() => self.at += 1,
                b'-' if self.text.get(self.at + 1) == Some(&b'-') => {
                    self.at += 2;
                    if self.long_bracket().is_none() {
                        while self.text.get(self.at).is_some_and(|&b| b != b'\n') {
                            self.at += 1;
                        }
                    }
                }
                b'[' if matches!(self.text.get(self.at + 1), Some(b'[' | b'=')) => {
                    if self.long_bracket().is_some() {
                        return Some(Token::Literal);
                    }
                    self.at += 1;
                    return Some(Token::Other(b'['));
                }
                b'"' | b'\'' => {
                    self.at += 1;
                    while let Some(&b) = self.text.get(self.at) {
                        self.at += 1;
                        match b {
                            b'\\' => self.at += 1,
                            b'\n' => break,
                            b if b == byte => break,
                            _ => {}
                        }
                    }
                    return Some(Token::Literal);
                }
                b if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 => {
                    let start = self.at;
                    while self
                        .text
                        .get(self.at)
                        .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80)
                    {
                        self.at += 1;
                    }
                    let name = std::str::from_utf8(&self.text[start..self.at]).unwrap_or("");
                    return Some(Token::Name(name));
                }
                b if b.is_ascii_digit() => {
                    while self
                        .text
                        .get(self.at)
                        .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
                    {
                        self.at += 1;
                    }
                    return Some(Token::Literal);
                }
                other => {
                    self.at += 1;
                    return Some(Token::Other(other));
                }
            }
        }
    }

    /// Skips a long bracket (`[[ … ]]`, `[==[ … ]==]`) starting at the cursor, if one does.
    fn long_bracket(&mut self) -> Option<()> {
        let rest = &self.text[self.at..];
        let level = rest.iter().skip(1).take_while(|&&b| b == b'=').count();
        if rest.first() != Some(&b'[') || rest.get(level + 1) != Some(&b'[') {
            return None;
        }
        let close: Vec<u8> = [b"]".as_slice(), &vec![b'='; level], b"]"].concat();
        let body = self.at + level + 2;
        self.at = match self.text[body..]
            .windows(close.len())
            .position(|w| w == close)
        {
            Some(offset) => body + offset + close.len(),
            None => self.text.len(),
        };
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::repeated_top_level_locals;

    fn repeated(text: &str) -> Vec<String> {
        let mut names: Vec<String> = repeated_top_level_locals(text.as_bytes())
            .into_iter()
            .collect();
        names.sort();
        names
    }

    #[test]
    fn finds_names_declared_twice_at_top_level_only() {
        let text = "local ok, a = pcall(require, 'a')\nlocal ok, b <const> = 1, 2\n\
                    local function f() local x = 1 local x = 2 end\n\
                    do local y = 1 end\nlocal y = '[[' -- local a\n--[[ local a ]]\n\
                    if c then local z = [==[ local z ]==] end\nfor i = 1, 2 do local w end\n\
                    local w = function() local q local q end\nlocal f";
        assert_eq!(repeated(text), vec!["f", "ok", "w", "y"]);
    }
}
