//! The queue family's Lua twin (filled below).
