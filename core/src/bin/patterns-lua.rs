//! Writes the Lua twin: `dist/patterns.lua` (a Functions library) and `dist/scripts/<function>.lua`
//! (one EVAL script per command). Usage: `patterns-lua [OUT_DIR]` (default `dist`).

use std::path::PathBuf;
use std::{env, fs, io};

fn main() -> io::Result<()> {
    let out = PathBuf::from(env::args().nth(1).unwrap_or_else(|| "dist".into()));
    let scripts = out.join("scripts");
    fs::create_dir_all(&scripts)?;
    fs::write(out.join("patterns.lua"), patterns_core::lua::library())?;
    for (name, source) in patterns_core::lua::scripts() {
        fs::write(scripts.join(format!("{name}.lua")), source)?;
    }
    println!("wrote {}", out.display());
    Ok(())
}
