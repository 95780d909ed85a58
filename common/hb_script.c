#include "hb_script.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hb_err.h"
#include "hb_mem.h"

/* %1$s prefix, %2$ld history max, %3$ld ttl ms, %4$ld max payload bytes, %5$s cluster mode,
 * %6$ld ms the history's expiry may run down before it is refreshed, %7$s the library name
 * (prefix of every function name), %8$d the library version, %9$s the settings text */
static const char lib_fmt[] =
    "#!lua name=%7$s\n"
    "local F = '%7$s'\n"
    "local VERSION, SETTINGS = %8$d, '%9$s'\n"
    "local P = '%1$s'\n"
    "local MAXLEN = %2$ld\n"
    "local TTL_MS = %3$ld\n"
    "local MAXLEN_S, TTL_S = '%2$ld', '%3$ld' -- as arguments: no number formatting per call\n"
    "local TTL_SLACK = %6$ld -- ms: TTL/100, at most a minute\n"
    "local MAXBYTES = %4$ld\n"
    "local LEASE = P .. 'ingest:lease'\n"
    "local CLUSTER = %5$s\n"
    "local LIVE_PUBLISH = CLUSTER and 'SPUBLISH' or 'PUBLISH'\n"
    "\n"
    "local function check_topic(t)\n"
    "  if type(t) ~= 'string' or #t < 1 or #t > 128 or not t:match('^[A-Za-z0-9._~@/%%-]+$') then\n"
    "    return redis.error_reply('ERR herald: topic must be 1-128 bytes of [A-Za-z0-9._~@/-]')\n"
    "  end\n"
    "end\n"
    "\n"
    "-- KEYS: either the topic name, or (cluster mode, so that a slot migration sees every key\n"
    "-- the call touches) <P>{<topic>}:log and <P>{<topic>}:epoch\n"
    "local function topic_of(keys)\n"
    "  if #keys == 1 then return keys[1] end\n"
    "  local k = keys[1]\n"
    "  if #keys >= 2 and #k > #P + 5 and k:sub(1, #P + 1) == P .. '{'\n"
    "     and k:sub(-5) == '}:log' then\n"
    "    local t = k:sub(#P + 2, -6)\n"
    "    if keys[2] == P .. '{' .. t .. '}:epoch' then return t end\n"
    "  end\n"
    "  return nil\n"
    "end\n"
    "\n"
    "local function b36(n)\n"
    "  local d, s = '0123456789abcdefghijklmnopqrstuvwxyz', ''\n"
    "  repeat local r = n %% 36; s = d:sub(r + 1, r + 1) .. s; n = math.floor(n / 36) until n == "
    "0\n"
    "  return s\n"
    "end\n"
    "\n"
    "local function now_us()\n"
    "  local t = redis.call('TIME')\n"
    "  return tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "end\n"
    "\n"
    "-- An epoch key's value as Herald makes it (b36 of the time): anything else was SET around\n"
    "-- Herald and would go into every cursor, so it counts as no epoch (a new one is made).\n"
    "local function good_ep(ep)\n"
    "  return ep and #ep <= 16 and ep:match('^[0-9a-z]+$') ~= nil\n"
    "end\n"
    "\n"
    "-- A topic's keys and epoch (the epoch is created with the stream). `seen` (a call storing\n"
    "-- many messages) keeps them for the rest of the call. The history's expiry is refreshed\n"
    "-- (with a MINID trim) when it has run down by more than TTL_SLACK, and for a new stream.\n"
    "local names, nnames = {}, 0 -- topic -> its checked key names, kept between calls\n"
    "local function topic_state(topic, seen)\n"
    "  local s = seen and seen[topic]\n"
    "  if s then return s end\n"
    "  local nm = names[topic]\n"
    "  if not nm then\n"
    "    local err = check_topic(topic)\n"
    "    if err then return nil, err end\n"
    "    local k = P .. '{' .. topic .. '}:'\n"
    "    nm = {k .. 'log', k .. 'epoch', k .. 'live'}\n"
    "    if nnames >= 10000 then names, nnames = {}, 0 end\n"
    "    names[topic], nnames = nm, nnames + 1\n"
    "  end\n"
    "  s = {log = nm[1], epk = nm[2], live = nm[3]}\n"
    "  -- pcall: an epoch key of another type (written around Herald) is no epoch either\n"
    "  local ep, pttl = redis.pcall('GET', s.epk), redis.call('PTTL', s.log)\n"
    "  if type(ep) ~= 'string' then ep = nil end\n"
    "  if not good_ep(ep) or pttl == -2 then\n"
    "    ep = b36(now_us())\n"
    "    redis.call('SET', s.epk, ep)\n"
    "  end\n"
    "  s.ep = ep\n"
    "  s.refresh = TTL_MS > 0 and (pttl < 0 or pttl < TTL_MS - TTL_SLACK)\n"
    "  if seen then seen[topic] = s end\n"
    "  return s\n"
    "end\n"
    "\n"
    "local function expire(s)\n"
    "  local ms = math.floor(now_us() / 1000) - TTL_MS\n"
    "  if ms > 0 then redis.call('XTRIM', s.log, 'MINID', '~', string.format('%%d', ms)) end\n"
    "  redis.call('PEXPIRE', s.log, TTL_S)\n"
    "  redis.call('PEXPIRE', s.epk, TTL_S)\n"
    "end\n"
    "\n"
    "local function store(topic, payload, ev, flags, seen)\n"
    "  local s, err = topic_state(topic, seen)\n"
    "  if not s then return err end\n"
    "  if type(payload) ~= 'string' or #payload > MAXBYTES then\n"
    "    return redis.error_reply('ERR herald: payload larger than ' .. MAXBYTES .. ' bytes')\n"
    "  end\n"
    "  if ev ~= '' and (#ev > 64 or not ev:match('^[A-Za-z0-9._:%%-]+$')) then\n"
    "    return redis.error_reply('ERR herald: event name must be 1-64 bytes of [A-Za-z0-9._:-]')\n"
    "  end\n"
    "  if ev:sub(1, 7) == 'herald.' then\n"
    "    return redis.error_reply('ERR herald: event names starting with herald. are reserved for "
    "the edge')\n"
    "  end\n"
    "  -- pcall: a log key of another type (written around Herald) refuses this message only;\n"
    "  -- an error raised here would abort a call storing many, after those before it\n"
    "  local id\n"
    "  if s.bad then return s.bad end\n"
    "  if ev ~= '' then\n"
    "    id = redis.pcall('XADD', s.log, 'MAXLEN', '~', MAXLEN_S, '*', 'd', payload, 'e', ev)\n"
    "  else\n"
    "    id = redis.pcall('XADD', s.log, 'MAXLEN', '~', MAXLEN_S, '*', 'd', payload)\n"
    "  end\n"
    "  if type(id) ~= 'string' then\n"
    "    s.bad = redis.error_reply('ERR herald: ' .. s.log .. ' is not a stream (written around "
    "Herald)')\n"
    "    return s.bad\n"
    "  end\n"
    "  if s.refresh and not seen then expire(s) end\n"
    "  local msg = 'H1|' .. id .. '|' .. s.ep .. '|' .. ev .. '|' .. flags .. '|' .. payload\n"
    "  redis.call(LIVE_PUBLISH, s.live, msg)\n"
    "  -- in a cluster, ingest standbys (classic PSUBSCRIBE) must also see what the leader stored\n"
    "  if CLUSTER and flags == 'r' then redis.call('PUBLISH', s.live, msg) end\n"
    "  return id\n"
    "end\n"
    "\n"
    "redis.register_function(F .. '_publish', function(keys, args)\n"
    "  local topic = topic_of(keys)\n"
    "  if not topic or #args < 1 then\n"
    "    return redis.error_reply('ERR herald: usage FCALL ' .. F .. '_publish 1 <topic> <payload> "
    "[event]')\n"
    "  end\n"
    "  return store(topic, args[1], args[2] or '', '')\n"
    "end)\n"
    "\n"
    "-- single Redis: KEYS topic, ARGV payload token (the lease holder's token)\n"
    "-- cluster: KEYS log epoch fence, ARGV payload term; fence is <P>fence:{<tag>} in the\n"
    "-- topic's slot and holds the highest leader term seen for the slot: an older term is\n"
    "-- refused, a newer one raises it\n"
    "redis.register_function(F .. '_ingest', function(keys, args)\n"
    "  local topic = topic_of(keys)\n"
    "  if not topic or #keys == 2 then return redis.error_reply('ERR herald: bad keys') end\n"
    "  if #keys == 1 then\n"
    "    if redis.call('GET', LEASE) ~= args[2] then\n"
    "      return redis.error_reply('HERALD_FENCED ingest lease not held')\n"
    "    end\n"
    "  else\n"
    "    local term, fk = tonumber(args[2]), keys[3]\n"
    "    if not term then return redis.error_reply('ERR herald: bad term') end\n"
    "    local seen = tonumber(redis.call('GET', fk) or '0') or 0\n"
    "    if term < seen then\n"
    "      return redis.error_reply('HERALD_FENCED ' .. seen .. ' a newer ingest leader "
    "wrote here')\n"
    "    end\n"
    "    if term > seen then redis.call('SET', fk, term) end\n"
    "  end\n"
    "  return store(topic, args[1], '', 'r')\n"
    "end)\n"
    "\n"
    "-- single Redis, the raw messages of one read at once: KEYS topic..., ARGV payload... token\n"
    "-- -> one reply per message (its entry ID or an error), or HERALD_FENCED for all of them\n"
    "redis.register_function(F .. '_ingest_many', function(keys, args)\n"
    "  local n = #keys\n"
    "  if n < 1 or #args ~= n + 1 then\n"
    "    return redis.error_reply('ERR herald: usage FCALL ' .. F .. '_ingest_many <n> <topic>... "
    "<payload>... <token>')\n"
    "  end\n"
    "  if redis.call('GET', LEASE) ~= args[n + 1] then\n"
    "    return redis.error_reply('HERALD_FENCED ingest lease not held')\n"
    "  end\n"
    "  local seen, out = {}, {}\n"
    "  for i = 1, n do out[i] = store(keys[i], args[i], '', 'r', seen) end\n"
    "  for _, s in pairs(seen) do if s.refresh and not s.bad then expire(s) end end\n"
    "  return out\n"
    "end)\n"
    "\n"
    "-- cluster: a new leader raises the fence of every slot a primary serves, before its barrier\n"
    "-- ARGV term fence-key... (keys of this node's slots; a stale slot map fails as non local)\n"
    "-- -> 0 when every fence was below the term, else the highest fence not below it (a term\n"
    "-- counter that went back in a failover, or a term drawn twice): that leader must not store\n"
    "redis.register_function{function_name = F .. '_fence', flags = {'allow-cross-slot-keys'},\n"
    "  callback = function(keys, args)\n"
    "  local term = tonumber(args[1])\n"
    "  if not term then return redis.error_reply('ERR herald: bad term') end\n"
    "  local high = 0\n"
    "  for i = 2, #args do\n"
    "    local seen = tonumber(redis.call('GET', args[i]) or '0') or 0\n"
    "    if term > seen then redis.call('SET', args[i], term)\n"
    "    elseif seen > high then high = seen end\n"
    "  end\n"
    "  return high\n"
    "end}\n"
    "\n"
    "-- cluster: KEYS lease term-counter, ARGV token ms [floor] -> the new leader term (above\n"
    "-- floor, a term a fence was found to hold), or nil when held\n"
    "redis.register_function(F .. '_lease_acquire', function(keys, args)\n"
    "  if not redis.call('SET', keys[1], args[1], 'NX', 'PX', tonumber(args[2])) then\n"
    "    return nil\n"
    "  end\n"
    "  local t, floor = redis.call('INCR', keys[2]), tonumber(args[3] or '0') or 0\n"
    "  if t <= floor then\n"
    "    t = floor + 1\n"
    "    redis.call('SET', keys[2], t)\n"
    "  end\n"
    "  return t\n"
    "end)\n"
    "\n"
    "local function id_gt(a, b)\n"
    "  local am, as = a:match('^(%%d+)-(%%d+)$')\n"
    "  local bm, bs = b:match('^(%%d+)-(%%d+)$')\n"
    "  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)\n"
    "  return am > bm or (am == bm and as > bs)\n"
    "end\n"
    "\n"
    "-- A history page as an edge may take it: an entry with a payload over MAXBYTES, or fields\n"
    "-- (names and values) over what a stored event holds (written around Herald), is sent as\n"
    "-- {x, <their size>}: the edge passes over it. The page ends\n"
    "-- before the entry that would take its bytes past budget (0: no bound; one entry at least):\n"
    "-- a reply is bounded before Redis sends it. A cut page's last ID is before the stream's.\n"
    "local function bound(entries, budget)\n"
    "  local bytes = 0\n"
    "  for i = 1, #entries do\n"
    "    local f, n, over = entries[i][2], 0, false\n"
    "    for j = 2, #f, 2 do\n"
    "      n = n + #f[j - 1] + #f[j]\n"
    "      if f[j - 1] == 'd' and #f[j] > MAXBYTES then over = true end\n"
    "    end\n"
    "    if over or n > MAXBYTES + 128 then\n"
    "      entries[i][2], n = {'x', tostring(n)}, 0\n"
    "    end\n"
    "    if budget > 0 and i > 1 and bytes + n > budget then\n"
    "      for k = #entries, i, -1 do entries[k] = nil end\n"
    "      break\n"
    "    end\n"
    "    bytes = bytes + n\n"
    "  end\n"
    "  return entries\n"
    "end\n"
    "\n"
    "redis.register_function{function_name = F .. '_history', flags = {'no-writes'},\n"
    "  callback = function(keys, args)\n"
    "  local topic = topic_of(keys)\n"
    "  if not topic then return redis.error_reply('ERR herald: bad keys') end\n"
    "  local err = check_topic(topic)\n"
    "  if err then return err end\n"
    "  local since, cep, count = args[1], args[2] or '', tonumber(args[3] or '500')\n"
    "  local budget = tonumber(args[4] or '0') or 0\n"
    "  local tail_only = since == '$'\n"
    "  if not tail_only and not since:match('^%%d+-%%d+$') then return redis.error_reply('ERR "
    "herald: bad id') end\n"
    "  local log = P .. '{' .. topic .. '}:log'\n"
    "  local ep = redis.call('GET', P .. '{' .. topic .. '}:epoch')\n"
    "  if not good_ep(ep) then ep = nil end\n"
    "  local exists = redis.call('EXISTS', log) == 1\n"
    "  local gap, start, last = '', '(' .. since, ''\n"
    "  if not tail_only and cep ~= '' and (not exists or not ep or ep ~= cep) then\n"
    "    gap, start = 'reset', '-'\n"
    "  end\n"
    "  if exists then\n"
    "    local info, f = redis.call('XINFO', 'STREAM', log), {}\n"
    "    for i = 1, #info, 2 do f[info[i]] = info[i + 1] end\n"
    "    last = f['last-generated-id'] or ''\n"
    "    if gap == '' and not tail_only then\n"
    "      -- trimming removes the oldest entries: history no longer covers the cursor when an\n"
    "      -- entry was ever removed and the oldest one kept is newer than the cursor\n"
    "      local len, added = tonumber(f['length']), tonumber(f['entries-added'])\n"
    "      local first = f['recorded-first-entry-id'] or '0-0'\n"
    "      if len == 0 then first = last end\n"
    "      if (added > len and id_gt(first, since) and not (len == 0 and not id_gt(last, since)))\n"
    "         or id_gt(f['max-deleted-entry-id'] or '0-0', since) then gap = 'trimmed' end\n"
    "    end\n"
    "  end\n"
    "  local entries = {}\n"
    "  -- nothing comes after the largest ID (and XRANGE refuses to start after it)\n"
    "  if exists and not tail_only and start ~= '(18446744073709551615-18446744073709551615' then\n"
    "    entries = bound(redis.call('XRANGE', log, start, '+', 'COUNT', count), budget)\n"
    "  end\n"
    "  return {ep or '', gap, entries, last}\n"
    "end}\n"
    "\n"
    "redis.register_function(F .. '_lease_renew', function(keys, args)\n"
    "  local lease = keys[1] or LEASE\n"
    "  if redis.call('GET', lease) == args[1] then\n"
    "    redis.call('PEXPIRE', lease, tonumber(args[2]))\n"
    "    return 1\n"
    "  end\n"
    "  return 0\n"
    "end)\n"
    "\n"
    "redis.register_function(F .. '_lease_release', function(keys, args)\n"
    "  local lease = keys[1] or LEASE\n"
    "  if redis.call('GET', lease) == args[1] then\n"
    "    redis.call('DEL', lease)\n"
    "    return 1\n"
    "  end\n"
    "  return 0\n"
    "end)\n"
    "\n"
    "-- -> {version, settings}: what an edge compares with its own before using the library\n"
    "redis.register_function{function_name = F .. '_info', flags = {'no-writes'},\n"
    "  callback = function() return {VERSION, SETTINGS} end}\n"
    "\n"
    "-- the canary: ARGV channel payload, published the way events are (SPUBLISH in a cluster;\n"
    "-- PUBLISH may replicate, so not no-writes)\n"
    "redis.register_function(F .. '_canary', function(keys, args)\n"
    "  return redis.call(LIVE_PUBLISH, args[1], args[2])\n"
    "end)\n";

int hb_script_name(const char *prefix, char *out, size_t cap)
{
    size_t n = 0;
    if (!strcmp(prefix, HB_SCRIPT_DEFAULT_PREFIX)) {
        if (cap < sizeof("herald"))
            return HB_EINVAL;
        memcpy(out, "herald", sizeof("herald"));
        return HB_OK;
    }
    if (cap < sizeof("herald_"))
        return HB_EINVAL;
    memcpy(out, "herald_", 7);
    n = 7;
    for (const char *p = prefix; *p; p++) {
        unsigned char c = (unsigned char)*p;
        int alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        char esc = c == ':' ? 'c' : c == '.' ? 'd' : c == '-' ? 'h' : 0;
        if (!alnum && !esc)
            return HB_EINVAL;
        if (n + (alnum ? 1 : 2) + 1 > cap)
            return HB_EINVAL;
        if (alnum) {
            out[n++] = (char)c;
        } else {
            out[n++] = '_';
            out[n++] = esc;
        }
    }
    out[n] = '\0';
    return HB_OK;
}

int hb_script_fn(const char *lib, const char *fn, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s_%s", lib, fn);
    return n < 0 || (size_t)n >= cap ? HB_EINVAL : HB_OK;
}

#define SETTINGS_FMT "prefix=%s history_max=%ld history_ttl=%ld max_message_bytes=%ld cluster=%d"

char *hb_script_settings(const char *prefix, long history_max, long history_ttl_s,
                         long max_message_bytes, int cluster)
{
    int n = snprintf(NULL, 0, SETTINGS_FMT, prefix, history_max, history_ttl_s, max_message_bytes,
                     cluster ? 1 : 0);
    char *out = hb_xmalloc((size_t)n + 1);
    snprintf(out, (size_t)n + 1, SETTINGS_FMT, prefix, history_max, history_ttl_s,
             max_message_bytes, cluster ? 1 : 0);
    return out;
}

char *hb_script_library(const char *prefix, long history_max, long history_ttl_s,
                        long max_message_bytes, int cluster)
{
    const char *cl = cluster ? "true" : "false";
    long slack = history_ttl_s * 10L < 60000L ? history_ttl_s * 10L : 60000L;
    char name[HB_SCRIPT_NAME_MAX];
    char *set = hb_script_settings(prefix, history_max, history_ttl_s, max_message_bytes, cluster);
    if (hb_script_name(prefix, name, sizeof(name)))
        abort(); /* cannot happen: the prefix was validated (1-63 of [A-Za-z0-9._:-]) */
    int n = snprintf(NULL, 0, lib_fmt, prefix, history_max, history_ttl_s * 1000L,
                     max_message_bytes, cl, slack, name, HB_SCRIPT_VERSION, set);
    char *out = hb_xmalloc((size_t)n + 1);
    snprintf(out, (size_t)n + 1, lib_fmt, prefix, history_max, history_ttl_s * 1000L,
             max_message_bytes, cl, slack, name, HB_SCRIPT_VERSION, set);
    free(set);
    return out;
}
