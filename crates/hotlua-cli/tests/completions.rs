//! `hotlua completions bash|zsh|fish`: the shell completion scripts.

mod common;

use common::system::{missing, BASH};
use common::{TempDir, HOTLUA};

#[test]
fn completions_for_each_shell() {
    let dir = TempDir::new("completions");
    for (shell, marker) in [
        ("bash", "complete -F _hotlua"),
        ("zsh", "#compdef hotlua"),
        ("fish", "complete -c hotlua"),
    ] {
        let out = dir.hotlua(&["completions", shell]);
        assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""), "{shell}");
        assert!(out.stdout.contains(marker), "{shell}:\n{}", out.stdout);
        // The subcommands and run's options are completed.
        for word in ["run", "completions", "watch", "json"] {
            assert!(out.stdout.contains(word), "{shell}: no {word}");
        }
    }
}

#[test]
fn bash_loads_the_bash_script() {
    if missing(&[BASH]) {
        return;
    }
    let dir = TempDir::new("completionsbash");
    let out = dir
        .command("bash")
        .args([
            "-c",
            &format!("source <('{HOTLUA}' completions bash) && complete -p hotlua"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("_hotlua"));
}

#[test]
fn completions_needs_a_known_shell() {
    let dir = TempDir::new("completionsbad");
    let out = dir.hotlua(&["completions"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    let out = dir.hotlua(&["completions", "tcsh"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("tcsh"), "{}", out.stderr);
}

#[test]
fn a_script_named_completions_is_still_a_script() {
    let dir = TempDir::new("completionsscript");
    dir.write("completions", "print('script ran', ...)");
    let out = dir.hotlua(&["./completions", "bash"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "script ran\tbash\n")
    );
}

#[test]
fn help_names_completions() {
    let dir = TempDir::new("completionshelp");
    let out = dir.hotlua(&["--help"]);
    assert!(
        out.stdout.contains("hotlua completions bash|zsh|fish"),
        "{}",
        out.stdout
    );
}
