//! The Lua scripts, each one round trip and atomic on the server. Versions are compared as
//! the decimal text they are stored as, never as Lua numbers (which lose precision past 2^53
//! and turn 20 digits into `1e+20`).
//!
//! Every read answers what is at a key as a triple, `{code, found, pttl}`: code 0 nothing,
//! 1 a string (`found` is its bytes), 2 a value of another type (`found` names it), 3 a
//! string longer than the limit (`found` is its length; it is not read).

use redis::Script;

/// The read every script that reads an entry shares.
const INSPECT: &str = r"
local function inspect(k, max)
  local kind = redis.call('TYPE', k)['ok']
  if kind == 'none' then return {0, '', -2} end
  if kind ~= 'string' then return {2, kind, redis.call('PTTL', k)} end
  local n = redis.call('STRLEN', k)
  if n > max then return {3, n, redis.call('PTTL', k)} end
  return {1, redis.call('GET', k), redis.call('PTTL', k)}
end
";

/// KEYS: lock, entry. ARGV: token, lease (ms), largest value. A lock of another type or with
/// no expiry was set by no holder (each sets a lease): it is replaced. Taken: `{1, code, found,
/// pttl, replaced}` with the entry read as `inspect` reads it (`replaced` names the type of a
/// value replaced, or is empty); held by another: `{0, its remaining lease in ms}`.
const ACQUIRE: &str = r"
local replaced = ''
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and (kind ~= 'string' or redis.call('PTTL', KEYS[1]) < 0) then
  redis.call('DEL', KEYS[1])
  replaced = kind
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local found = inspect(KEYS[2], tonumber(ARGV[3]))
  return {1, found[1], found[2], found[3], replaced}
end
return {0, redis.call('PTTL', KEYS[1])}
";

/// KEYS: any keys. ARGV: largest value. `inspect`'s triples, one after another.
const READ: &str = r"
local out = {}
for _, k in ipairs(KEYS) do
  for _, v in ipairs(inspect(k, tonumber(ARGV[1]))) do
    table.insert(out, v)
  end
end
return out
";

/// KEYS: entry, lock. ARGV: the version read (empty: none), the value, its lifetime (ms), the
/// lock's token (empty: keep the lock). Writes when the stored version is the one read or
/// nothing is stored, then releases the lock if the token is given and still holds it: `{1}`.
/// Refused: `{0, the stored version prefix, or empty}`, or `{2, type}` for a value of another
/// type. Only the first 21 bytes of a stored value are read: its version and the colon.
pub(crate) const SAVE: &str = r"
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' then
  if kind ~= 'string' then return {2, kind} end
  local stored = string.match(redis.call('GETRANGE', KEYS[1], 0, 20), '^(%d+):')
  if stored ~= ARGV[1] then return {0, stored or ''} end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if ARGV[4] ~= '' and redis.call('TYPE', KEYS[2])['ok'] == 'string'
   and redis.call('GET', KEYS[2]) == ARGV[4] then
  redis.call('DEL', KEYS[2])
end
return {1}
";

/// KEYS: lock. ARGV: token, lease (ms). Extends the lease while the lock is still ours: 1.
const EXTEND: &str = r"
if redis.call('TYPE', KEYS[1])['ok'] == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// KEYS: lock. ARGV: token. Releases the lock only if it is still ours (compare and delete).
const RELEASE: &str = r"
if redis.call('TYPE', KEYS[1])['ok'] == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The scripts, each sent by its digest (`EVALSHA`) and loaded once per server.
pub(crate) struct Scripts {
    pub(crate) acquire: Script,
    pub(crate) read: Script,
    pub(crate) save: Script,
    pub(crate) extend: Script,
    pub(crate) release: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            acquire: Script::new(&format!("{INSPECT}{ACQUIRE}")),
            read: Script::new(&format!("{INSPECT}{READ}")),
            save: Script::new(SAVE),
            extend: Script::new(EXTEND),
            release: Script::new(RELEASE),
        }
    }
}
