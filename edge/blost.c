/*
 * Events lost by Redis: the check a resubscribed topic runs before its refill (brefill.c),
 * for a promoted replica or a restart from an older dump that lacks events this edge already
 * delivered. A Lua script, sent by SHA1 (by text after NOSCRIPT, and always in cluster mode).
 * Below the refill: its reply callback is brefill.c's (passed in), which reads the reply here
 * (blost__reply) and then moves the refill on. Broker thread only.
 */
#include "broker_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "hb_log.h"
#include "rc.h"

#define MOD "broker"

/*
 * Run once per resubscription of a topic, before its backfill. A promoted replica may lack the
 * last events the old master acknowledged (replication is asynchronous; a restart from an old
 * dump does the same). The edge knows it when the last ID it delivered is not in the stream
 * although nothing up to it was ever deleted there: either the stream is behind that ID, or
 * newer events were stored since (a publisher was faster than this check). The script,
 * atomically:
 *   - raises the stream's last ID to the delivered one when it is behind, so new events get
 *     larger IDs and no client holding a lost event's ID skips them, and records the delivered
 *     ID as max-deleted-entry-id, so herald_history answers "trimmed" to older cursors;
 *   - keeps the lost range (from, to] in <prefix>{<topic>}:lost (widened by each edge that
 *     finds it, expiring with the stream);
 *   - answers {1, from, to} when this edge delivered an event of that range (whether this edge
 *     or another one found it): its subscribers hold events that history no longer has.
 * IDs only ever move forward, so edges that disagree on what they delivered end at the largest.
 */
static const char lost_lua[] =
    "local log, lost, id = KEYS[1], KEYS[3], ARGV[1]\n"
    "if redis.call('EXISTS', log) == 0 or redis.call('GET', KEYS[2]) ~= ARGV[2] then\n"
    "  return {0, '', ''}\n"
    "end\n"
    "local function gt(a, b)\n"
    "  local am, as = a:match('^(%d+)-(%d+)$')\n"
    "  local bm, bs = b:match('^(%d+)-(%d+)$')\n"
    "  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)\n"
    "  return am > bm or (am == bm and as > bs)\n"
    "end\n"
    "local info, x = redis.call('XINFO', 'STREAM', log), {}\n"
    "for i = 1, #info, 2 do x[info[i]] = info[i + 1] end\n"
    "local last, maxdel = x['last-generated-id'] or '0-0', x['max-deleted-entry-id'] or '0-0'\n"
    "local from\n"
    "if gt(id, last) then\n"
    "  from = last\n"
    "  redis.call('XSETID', log, id, 'MAXDELETEDID', id)\n"
    "elseif gt(id, maxdel) and #redis.call('XRANGE', log, id, id) == 0 then\n"
    "  local prev = redis.call('XREVRANGE', log, '(' .. id, '-', 'COUNT', 1)\n"
    "  from = prev[1] and prev[1][1] or '0-0'\n"
    "  redis.call('XSETID', log, last, 'MAXDELETEDID', id)\n"
    "end\n"
    "if from then\n"
    "  local f, t = redis.call('HGET', lost, 'from'), redis.call('HGET', lost, 'to')\n"
    "  if not f or gt(f, from) then redis.call('HSET', lost, 'from', from) end\n"
    "  if not t or gt(id, t) then redis.call('HSET', lost, 'to', id) end\n"
    "  local ttl = redis.call('PTTL', log)\n"
    "  if ttl > 0 then redis.call('PEXPIRE', lost, ttl) end\n"
    "end\n"
    "local f, t = redis.call('HGET', lost, 'from'), redis.call('HGET', lost, 'to')\n"
    "if f and t and gt(id, f) and not gt(id, t) then return {1, f, t} end\n"
    "return {0, last, last}\n";

int blost__reply(hb_broker_t *b, btopic_t *t, redisReply *r, redisCallbackFn *cb)
{
    if (r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOSCRIPT", 8) &&
        blost__check(b, t, 1, cb) == 0)
        return 1; /* not in this server's script cache (new master, restart): send the text */
    t->lost_checked = 1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        r->element[0]->type == REDIS_REPLY_INTEGER && r->element[0]->integer == 1 &&
        r->element[1]->type == REDIS_REPLY_STRING && r->element[2]->type == REDIS_REPLY_STRING) {
        char since[HB_ID_STR_MAX];
        hb_id_format(&t->last, since);
        hb_log_warn(MOD, "events lost by Redis (failover or older data): telling subscribers",
                    "{s:s%,s:s,s:s%,s:s%}", "topic", t->name, t->len, "delivered", since,
                    "lost_after", r->element[1]->str, r->element[1]->len, "lost_to",
                    r->element[2]->str, r->element[2]->len);
        btopic__emit_gap(b, t, HB_GAP_TRIMMED);
    } else if (r->type == REDIS_REPLY_ERROR) {
        hb_log_ratelimited("lost-check", 2000, HB_LOG_WARN, MOD, "checking for lost events failed",
                           "{s:s%,s:s}", "topic", t->name, t->len, "err", r->str);
    }
    return 0;
}

/* The script's SHA1 for EVALSHA, computed once (broker thread). */
static const char *lost_sha(void)
{
    static char hex[2 * EVP_MAX_MD_SIZE + 1];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!hex[0] && EVP_Digest(lost_lua, sizeof(lost_lua) - 1, md, &n, EVP_sha1(), NULL) == 1)
        for (unsigned int i = 0; i < n; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return hex;
}

/* Sends the check, by SHA1 (EVALSHA) unless by_text; 0, or HB_EIO (the backfill then goes on
 * without it). */
int blost__check(hb_broker_t *b, btopic_t *t, int by_text, redisCallbackFn *cb)
{
    char key[HB_TOPIC_MAX + 80], epk[HB_TOPIC_MAX + 80], lk[HB_TOPIC_MAX + 80];
    char since[HB_ID_STR_MAX];
    const char *sha = lost_sha();
    posreq_t *name;
    int kn, en, ln, rc;
    hb_id_format(&t->last, since);
    kn = snprintf(key, sizeof(key), "%s{%.*s}:log", b->edge->cfg.prefix, (int)t->len, t->name);
    en = snprintf(epk, sizeof(epk), "%s{%.*s}:epoch", b->edge->cfg.prefix, (int)t->len, t->name);
    ln = snprintf(lk, sizeof(lk), "%s{%.*s}:lost", b->edge->cfg.prefix, (int)t->len, t->name);
    name = brefill__posreq_new(t);
    t->backfill_inflight = 1;
    const char *av[] = {key, epk, lk, since, t->epoch};
    size_t al[] = {(size_t)kn, (size_t)en, (size_t)ln, strlen(since), strlen(t->epoch)};
    rc = hb_rc_eval(b, lost_lua, sha, by_text, 3, 5, av, al, cb, name);
    if (rc != REDIS_OK) {
        free(name); /* no callback after an error */
        t->backfill_inflight = 0;
        t->lost_checked = 1;
        return HB_EIO;
    }
    return 0;
}
