//! README's examples run exactly as printed: the redis-cli session in "Quick start" against a
//! fresh server with the module, and the shell lines that load and call the Lua twin.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The `$ redis-cli ...` commands of README with the output printed under each.
fn session(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let (mut in_block, mut in_session) = (false, false);
    for line in text.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            in_session = false;
            continue;
        }
        if !in_block {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ redis-cli ") {
            out.push((cmd.to_string(), Vec::new()));
            in_session = true;
        } else if let (true, Some((_, expected))) = (in_session, out.last_mut()) {
            expected.push(line.to_string());
        }
    }
    out
}

fn cli(server: &Server, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["--no-raw", "-p", &server.port().to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8(out.stdout).unwrap()
}

/// A printed line matches exactly, or up to its value when it ends in a `# comment`.
fn matches(printed: &str, actual: &str) -> bool {
    match printed.split_once('#') {
        None => printed == actual,
        Some((shown, _)) => {
            let shown = shown.trim_end();
            let prefix = shown.rsplit_once(' ').map_or("", |(p, _)| p);
            actual.starts_with(prefix) && actual[prefix.len()..].trim().parse::<i64>().is_ok()
        }
    }
}

#[test]
fn quick_start_session_runs_as_printed() {
    let steps = session(&readme());
    assert!(steps.len() >= 6, "README's session was not found");
    for flavor in flavors() {
        let server = Server::start(flavor);
        for (cmd, printed) in &steps {
            let args: Vec<&str> = cmd.split_whitespace().collect();
            let actual = cli(&server, &args);
            let actual: Vec<&str> = actual.lines().collect();
            assert_eq!(actual.len(), printed.len(), "{cmd}: got {actual:?}");
            for (p, a) in printed.iter().zip(&actual) {
                assert!(
                    matches(p, a),
                    "{cmd}: README prints {p:?}, the server says {a:?}"
                );
            }
        }
    }
}

#[test]
fn lua_twin_shell_lines_run() {
    let text = readme();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("redis-cli ")
                && (l.contains("FCALL") || l.contains("EVAL") || l.contains("FUNCTION"))
        })
        .collect();
    assert_eq!(lines.len(), 3, "README's twin examples changed: {lines:?}");
    for flavor in flavors() {
        let server = Server::start_without_module(flavor, &[]);
        for line in &lines {
            let line = line.replacen("redis-cli", &format!("redis-cli -p {}", server.port()), 1);
            let out = Command::new("bash")
                .arg("-c")
                .arg(&line)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && !stdout.contains("ERR"),
                "{line}: {stdout}"
            );
        }
    }
}
