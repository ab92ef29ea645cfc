//! ACL checks of keys a command derives (Redis checks only the keys it declares).

use std::ffi::c_int;
use std::ptr::NonNull;

use patterns_core::command::CmdError;
use redis_module::raw::{self, RedisModuleUser};

use super::ctx::Ctx;
use super::string::{OwnedString, Str};

/// Fails with NOPERM unless the current user may read and write the key `name` (a key the
/// command derives, so Redis did not check it). Without a current user (AOF loading,
/// replication, a module's own context) there is nothing to check.
pub fn check_key_access(ctx: Ctx, name: &[u8]) -> Result<(), CmdError> {
    check_key_permissions(ctx, [name], READ_WRITE)
}

/// Like [`check_key_access`], for many keys: the user is looked up once.
pub fn check_keys_access<'k>(
    ctx: Ctx,
    names: impl IntoIterator<Item = &'k [u8]>,
) -> Result<(), CmdError> {
    check_key_permissions(ctx, names, READ_WRITE)
}

const READ_WRITE: u32 = raw::REDISMODULE_CMD_KEY_ACCESS
    | raw::REDISMODULE_CMD_KEY_INSERT
    | raw::REDISMODULE_CMD_KEY_DELETE
    | raw::REDISMODULE_CMD_KEY_UPDATE;

fn check_key_permissions<'k>(
    ctx: Ctx,
    names: impl IntoIterator<Item = &'k [u8]>,
    flags: u32,
) -> Result<(), CmdError> {
    user_may(ctx, |user| {
        names.into_iter().all(|name| {
            let key = OwnedString::new(ctx, name);
            key_permitted(user, key.as_str(), flags)
        })
    })
}

/// The current user, looked up once for checks of derived keys made at different steps of a
/// command (freed on drop); none (nothing to check) for a command without one.
pub struct CurrentUser(Option<NonNull<RedisModuleUser>>);

impl CurrentUser {
    pub fn of(ctx: Ctx) -> Self {
        // SAFETY: the context is live; the server hands over a new string (or null).
        let user_name = unsafe { raw::RedisModule_GetCurrentUserName.unwrap()(ctx.as_ptr()) };
        // SAFETY: `user_name` is null or ours to free.
        let Some(user_name) = (unsafe { OwnedString::adopt(user_name) }) else {
            return Self(None);
        };
        // SAFETY: the name is live for the call; the server hands over a user (or null).
        let user = unsafe {
            raw::RedisModule_GetModuleUserFromUserName.unwrap()(user_name.as_str().as_ptr())
        };
        Self(NonNull::new(user))
    }

    /// Fails with NOPERM unless the user may read the key `name` (a key the command derives).
    pub fn check_read(&self, name: Str) -> Result<(), CmdError> {
        self.check(|user| key_permitted(user, name, raw::REDISMODULE_CMD_KEY_ACCESS))
    }

    /// Like [`check_key_access`], for a derived key whose name the caller holds as a server
    /// string (to open the key after the check: no second copy of the name made).
    pub fn check_read_write(&self, name: Str) -> Result<(), CmdError> {
        self.check(|user| key_permitted(user, name, READ_WRITE))
    }

    fn check(
        &self,
        allowed: impl FnOnce(NonNull<RedisModuleUser>) -> bool,
    ) -> Result<(), CmdError> {
        match self.0 {
            Some(user) if !allowed(user) => Err(CmdError::NoPerm),
            _ => Ok(()),
        }
    }
}

impl Drop for CurrentUser {
    fn drop(&mut self) {
        if let Some(user) = self.0 {
            // SAFETY: the user was handed over by the lookup and is freed once, here.
            unsafe { raw::RedisModule_FreeModuleUser.unwrap()(user.as_ptr()) };
        }
    }
}

/// Fails with NOPERM unless `allowed` holds for the current user (looked up once); without a
/// current user there is nothing to check.
fn user_may(
    ctx: Ctx,
    allowed: impl FnOnce(NonNull<RedisModuleUser>) -> bool,
) -> Result<(), CmdError> {
    CurrentUser::of(ctx).check(allowed)
}

/// Whether `user` (live for the call) may access the key `key` as `flags` say.
fn key_permitted(user: NonNull<RedisModuleUser>, key: Str, flags: u32) -> bool {
    // SAFETY: the user and the key's name are live for the call.
    let status = unsafe {
        raw::RedisModule_ACLCheckKeyPermissions.unwrap()(
            user.as_ptr(),
            key.as_ptr(),
            flags as c_int,
        )
    };
    status == raw::REDISMODULE_OK as c_int
}
