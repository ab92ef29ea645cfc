//! The session family's Lua twin: the same commands, replies, key layout and write sequence as
//! the module (`src/session.rs`), so equal histories leave byte-identical keys.
//!
//! Differences, documented in README: Lua cannot draw from a CSPRNG, so `session_create` and
//! `session_rotate` take the new id (22 base64url characters, which the caller draws) as an
//! extra argument after the key (`TwinCommand::leading`); derived keys are checked with
//! `redis.acl_check_cmd`.

use super::{
    ABSOLUTE_BELOW_IDLE, ABSOLUTE_FIELD, BAD_INDEX, COUNT, CREATE, DESTROY, DESTROYALL, GET,
    IDLE_FIELD, INDEX_FIELD, LIST, MAX_MS, NOT_SESSION, RESERVED, RESERVED_PREFIX, ROTATE, SET,
    TOO_LONG,
};
use crate::command::CmdError;
use crate::lua::{lua_error, lua_str, twin, Family, TwinCommand};

/// The twin's error for an id argument that is not one.
pub const BAD_ID: &str = "ERR id must be 22 characters of base64url";
/// The twin's error when the caller's id is already a key.
pub const ID_TAKEN: &str = "ERR session id already in use";

const SOURCE: &str = r#"
local function sess_is_id(id)
  return #id == 22 and string.find(id, '^[A-Za-z0-9_%-]+$') ~= nil
end

local function sess_expect_index(index)
  local t = key_type(index)
  if t ~= 'none' and t ~= 'zset' then return err(WRONGTYPE) end
end

-- The session at key as of now: nil when absent (or expired by now, as the module sees it);
-- an error unless a session whose index may be used.
local function sess_load(key, now)
  local t = key_type(key)
  if t == 'none' then return nil end
  local at = redis.call('PEXPIRETIME', key)
  if at >= 0 and at <= now then return nil end
  if t ~= 'hash' then return nil, err(WRONGTYPE) end
  local flat = redis.call('HGETALL', key)
  local s = {flat = flat}
  for i = 1, #flat, 2 do
    local f = flat[i]
    if f == IDLE_FIELD then s.idle = state_int(flat[i + 1])
    elseif f == ABSOLUTE_FIELD then s.abs = state_int(flat[i + 1])
    elseif f == INDEX_FIELD then s.index = flat[i + 1] end
  end
  if s.idle == nil or s.abs == nil or s.index == nil then return nil, err(NOT_SESSION) end
  if not key_allowed(s.index) then return nil, err(NOPERM) end
  local e = sess_expect_index(s.index)
  if e then return nil, e end
  return s
end

local function sess_touch(key, index, idle, abs, now)
  local at = int(math.min(now + idle, abs))
  redis.call('PEXPIREAT', key, at)
  index_prune(index, now)
  redis.call('ZADD', index, at, key)
  index_fix(index)
end

local function session_create_run(index, id, idle, absolute, fields)
  if not sess_is_id(id) then return err(BAD_ID) end
  if idle > MAX_MS or absolute > MAX_MS then return err(TOO_LONG) end
  if absolute < idle then return err(ABSOLUTE_BELOW_IDLE) end
  if reserved_fields(fields) then return err(RESERVED) end
  local key = derived_key(index, id)
  if key == nil then return err(BAD_INDEX) end
  if not key_allowed(key) then return err(NOPERM) end
  local e = sess_expect_index(index)
  if e then return e end
  if key_type(key) ~= 'none' then return err(ID_TAKEN) end
  local now = now_ms()
  local abs = now + absolute
  redis.call('HSET', key, IDLE_FIELD, int(idle), ABSOLUTE_FIELD, int(abs), INDEX_FIELD, index,
    unpack(fields))
  sess_touch(key, index, idle, abs, now)
  return key
end

local function session_get_run(key)
  local now = now_ms()
  local s, e = sess_load(key, now)
  if e then return e end
  if s == nil then return false end
  sess_touch(key, s.index, s.idle, s.abs, now)
  local out = {}
  for i = 1, #s.flat, 2 do
    if string.sub(s.flat[i], 1, 2) ~= RESERVED_PREFIX then
      out[#out + 1] = s.flat[i]
      out[#out + 1] = s.flat[i + 1]
    end
  end
  return out
end

local function session_set_run(key, fields)
  if reserved_fields(fields) then return err(RESERVED) end
  local now = now_ms()
  local s, e = sess_load(key, now)
  if e then return e end
  if s == nil then return false end
  local added = redis.call('HSET', key, unpack(fields))
  sess_touch(key, s.index, s.idle, s.abs, now)
  return added
end

local function session_rotate_run(key, id)
  if not sess_is_id(id) then return err(BAD_ID) end
  local now = now_ms()
  local s, e = sess_load(key, now)
  if e then return e end
  if s == nil then return false end
  local new = derived_key(s.index, id)
  if new == nil then return err(BAD_INDEX) end
  if not key_allowed(new) then return err(NOPERM) end
  if key_type(new) ~= 'none' then return err(ID_TAKEN) end
  local at = redis.call('PEXPIRETIME', key)
  redis.call('RENAME', key, new)
  index_prune(s.index, now)
  redis.call('ZREM', s.index, key)
  redis.call('ZADD', s.index, int(at), new)
  index_fix(s.index)
  return new
end

local function session_destroy_run(key)
  local now = now_ms()
  local s, e = sess_load(key, now)
  if e then return e end
  if s == nil then return 0 end
  redis.call('DEL', key)
  index_prune(s.index, now)
  redis.call('ZREM', s.index, key)
  index_fix(s.index)
  return 1
end

local function sess_live(index)
  local e = sess_expect_index(index)
  if e then return nil, e end
  index_prune(index, now_ms())
  index_fix(index)
  return redis.call('ZRANGE', index, 0, -1)
end

local function session_destroyall_run(index)
  local e = sess_expect_index(index)
  if e then return e end
  for _, m in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    if not key_allowed(m) then return err(NOPERM) end
  end
  local members, e2 = sess_live(index)
  if e2 then return e2 end
  local destroyed = 0
  for _, m in ipairs(members) do destroyed = destroyed + redis.call('DEL', m) end
  redis.call('DEL', index)
  return destroyed
end

local function session_list_run(index)
  local members, e = sess_live(index)
  if e then return e end
  return members
end

local function session_count_run(index)
  local e = sess_expect_index(index)
  if e then return e end
  return redis.call('ZCOUNT', index, '(' .. int(now_ms()), '+inf')
end
"#;

pub fn family() -> Family {
    Family {
        constants: vec![
            ("MAX_MS", MAX_MS.to_string()),
            ("RESERVED_PREFIX", lua_str(RESERVED_PREFIX)),
            ("IDLE_FIELD", lua_str(IDLE_FIELD)),
            ("ABSOLUTE_FIELD", lua_str(ABSOLUTE_FIELD)),
            ("INDEX_FIELD", lua_str(INDEX_FIELD)),
            ("TOO_LONG", lua_error(&CmdError::OutOfRange(TOO_LONG))),
            (
                "ABSOLUTE_BELOW_IDLE",
                lua_error(&CmdError::OutOfRange(ABSOLUTE_BELOW_IDLE)),
            ),
            ("RESERVED", lua_error(&CmdError::BadState(RESERVED))),
            ("BAD_INDEX", lua_error(&CmdError::BadState(BAD_INDEX))),
            ("NOT_SESSION", lua_error(&CmdError::BadState(NOT_SESSION))),
            ("BAD_ID", lua_str(BAD_ID)),
            ("ID_TAKEN", lua_str(ID_TAKEN)),
        ],
        source: SOURCE,
        commands: vec![
            TwinCommand {
                leading: &["id"],
                ..twin(&CREATE, "session_create_run(key, x[1], p[1], p[2], r)")
            },
            twin(&GET, "session_get_run(key)"),
            twin(&SET, "session_set_run(key, r)"),
            TwinCommand {
                leading: &["id"],
                ..twin(&ROTATE, "session_rotate_run(key, x[1])")
            },
            twin(&DESTROY, "session_destroy_run(key)"),
            twin(&DESTROYALL, "session_destroyall_run(key)"),
            twin(&LIST, "session_list_run(key)"),
            twin(&COUNT, "session_count_run(key)"),
        ],
    }
}
