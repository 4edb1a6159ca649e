//! The bearer token of a TCP control endpoint: from `--control-token-file` (refused when other
//! users can read or write it) or `HOTLUA_CONTROL_TOKEN`.

use std::os::unix::fs::PermissionsExt;

/// A token file other users can read or write is refused, as ssh refuses such a key: the token
/// is all that stands between another local user and reloading the program's code, and a
/// warning would scroll by in a daemon's log while the endpoint stays open. Group access is
/// allowed: sharing the token with the operators' group (or Kubernetes' `fsGroup`) is a choice.
pub fn read_token(file: Option<&std::path::Path>) -> Result<Option<String>, String> {
    let token = match file {
        Some(file) => Some(read_token_file(file)?),
        None => std::env::var("HOTLUA_CONTROL_TOKEN").ok(),
    };
    match token {
        Some(token) if token.is_empty() => Err("the control token is empty".into()),
        token => Ok(token),
    }
}

/// The first line of `file`, if only its owner and group may read or write it.
fn read_token_file(file: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| format!("cannot read token file {}: {e}", file.display());
    // The mode of the file opened, not of the path: a file swapped in between is not read.
    let mut opened = std::fs::File::open(file).map_err(cannot)?;
    let mode = opened.metadata().map_err(cannot)?.permissions().mode() & 0o777;
    if let Some(open_to) = open_to_others(mode) {
        return Err(format!(
            "token file {} is {open_to} by other users (mode {mode:03o}); run `chmod o-rwx {}` \
             or pass the token in HOTLUA_CONTROL_TOKEN",
            file.display(),
            file.display()
        ));
    }
    let mut text = String::new();
    opened.read_to_string(&mut text).map_err(cannot)?;
    Ok(text.lines().next().unwrap_or("").trim().to_owned())
}

/// What permission bits `mode` give users outside the owner and group: `readable`,
/// `writable` (checked first: it lets them choose the token), or nothing.
fn open_to_others(mode: u32) -> Option<&'static str> {
    if mode & 0o002 != 0 {
        Some("writable")
    } else if mode & 0o004 != 0 {
        Some("readable")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_open_to_other_users_are_told_apart() {
        assert_eq!(open_to_others(0o600), None);
        assert_eq!(open_to_others(0o640), None);
        assert_eq!(open_to_others(0o661), None);
        assert_eq!(open_to_others(0o604), Some("readable"));
        assert_eq!(open_to_others(0o606), Some("writable"));
    }
}
