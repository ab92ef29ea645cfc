//! Writes the Lua twin: `dist/patterns.lua` (a Functions library) and `dist/scripts/<function>.lua`
//! (one EVAL script per command). Usage: `patterns-lua [OUT_DIR]` (default `dist`);
//! `patterns-lua --readme` prints README's command tables instead (rate limiting, sessions,
//! leaderboards, caching, locks, queues).

use std::path::PathBuf;
use std::{env, fs, io};

use patterns_core::command::markdown_table;

fn main() -> io::Result<()> {
    let arg = env::args().nth(1);
    if arg.as_deref() == Some("--readme") {
        print!("{}", markdown_table(&patterns_core::ratelimit::COMMANDS));
        println!();
        print!("{}", markdown_table(&patterns_core::session::COMMANDS));
        println!();
        print!("{}", markdown_table(&patterns_core::leaderboard::COMMANDS));
        println!();
        print!("{}", markdown_table(&patterns_core::cache::COMMANDS));
        println!();
        print!("{}", markdown_table(&patterns_core::lock::COMMANDS));
        println!();
        print!("{}", markdown_table(&patterns_core::queue::COMMANDS));
        return Ok(());
    }
    let out = PathBuf::from(arg.unwrap_or_else(|| "dist".into()));
    let scripts = out.join("scripts");
    fs::create_dir_all(&scripts)?;
    fs::write(out.join("patterns.lua"), patterns_core::lua::library())?;
    for (name, source) in patterns_core::lua::scripts() {
        fs::write(scripts.join(format!("{name}.lua")), source)?;
    }
    println!("wrote {}", out.display());
    Ok(())
}
