//! The Lua twin of the rate-limiting family.
