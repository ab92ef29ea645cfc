//! Lua twin generator.
