//! `lua.c`'s read-eval-print loop (`doREPL`), reading lines from standard input.
//!
//! Each line is first tried as `return <line>;` so expressions print their values; a line
//! that is an incomplete statement continues on the next one (prompt `>>`). Prompts are
//! `_PROMPT` and `_PROMPT2` when set, else `> ` and `>> `. When standard input is not a
//! terminal each line read is echoed after its prompt, as the system's `lua5.4` (whose
//! readline echoes it) does, so a transcript reads like the session.

use std::io::{BufRead, IsTerminal};

use mlua::{Function, Lua, MultiValue, Result, Value};

use crate::call::{self, docall, load_string, Outcome};

/// Runs the REPL until end of input. `before_line` is called before each chunk runs.
pub fn run(lua: &Lua, before_line: Option<&Function>) -> Result<()> {
    let stdin = std::io::stdin();
    let mut input = Input {
        echo: !stdin.is_terminal(),
        lines: stdin.lock(),
    };
    while let Some(chunk) = input.read_chunk(lua)? {
        let outcome = match chunk {
            Ok(chunk) => {
                if let Some(before_line) = before_line {
                    if let Err(err) = before_line.call::<()>(()) {
                        call::report(None, err.to_string().as_bytes());
                    }
                }
                docall(lua, chunk, MultiValue::new())?
            }
            Err(message) => Err(message),
        };
        match outcome {
            Ok(results) => print_results(lua, results)?,
            Err(message) => call::report(None, &message),
        }
    }
    call::write_stdout(b"\n");
    Ok(())
}

struct Input<R> {
    lines: R,
    echo: bool,
}

impl<R: BufRead> Input<R> {
    /// lua.c's `loadline`: one statement or expression, read over as many lines as it needs;
    /// `None` at end of input.
    fn read_chunk(&mut self, lua: &Lua) -> Result<Option<Outcome<Function>>> {
        let Some(mut code) = self.read_line(lua, true)? else {
            return Ok(None);
        };
        if let Some(expression) = code.strip_prefix(b"=") {
            // Lua 5.2's `=expr`.
            code = [b"return ", expression].concat();
        }
        if let Ok(chunk) = load_string(lua, &[b"return ", &code[..], b";"].concat(), c"=stdin")? {
            return Ok(Some(Ok(chunk)));
        }
        loop {
            match load_string(lua, &code, c"=stdin")? {
                Err(message) if message.ends_with(b"<eof>") => match self.read_line(lua, false)? {
                    Some(more) => {
                        code.push(b'\n');
                        code.extend_from_slice(&more);
                    }
                    None => return Ok(Some(Err(message))),
                },
                loaded => return Ok(Some(loaded)),
            }
        }
    }

    /// Prints the prompt and reads one line without its newline; `None` at end of input.
    fn read_line(&mut self, lua: &Lua, first: bool) -> Result<Option<Vec<u8>>> {
        call::write_stdout(&prompt(lua, first)?);
        let mut line = Vec::new();
        if self.lines.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if self.echo {
            call::write_stdout(&[&line[..], b"\n"].concat());
        }
        Ok(Some(line))
    }
}

/// lua.c's `get_prompt`: `tostring(_PROMPT)` (`_PROMPT2` for continuation lines) when set.
fn prompt(lua: &Lua, first: bool) -> Result<Vec<u8>> {
    let (global, default) = if first {
        ("_PROMPT", "> ")
    } else {
        ("_PROMPT2", ">> ")
    };
    Ok(match lua.globals().get::<Value>(global)? {
        Value::Nil => default.as_bytes().to_vec(),
        Value::String(prompt) => prompt.as_bytes().to_vec(),
        other => other.to_string()?.into_bytes(),
    })
}

/// lua.c's `l_print`: the results, if any, through the global `print`.
fn print_results(lua: &Lua, results: MultiValue) -> Result<()> {
    if results.is_empty() {
        return Ok(());
    }
    let printed = match lua.globals().get::<Value>("print")? {
        Value::Function(print) => print.call::<()>(results).map_err(|err| match err {
            mlua::Error::RuntimeError(message) => message,
            other => other.to_string(),
        }),
        other => Err(format!("attempt to call a {} value", other.type_name())),
    };
    if let Err(message) = printed {
        call::report(
            None,
            format!("error calling 'print' ({message})").as_bytes(),
        );
    }
    Ok(())
}
