/* Reconnection backoff (hb_backoff.h). */
#include "hb_backoff.h"

long hb_backoff_next(hb_backoff_t *b, long rnd)
{
    long step;
    if (!b->step_ms)
        step = b->min_ms;
    else if (b->step_ms > b->max_ms / 2) /* doubling would pass the cap (or overflow) */
        step = b->max_ms;
    else
        step = b->step_ms * 2;
    b->step_ms = step;
    if (rnd < 0)
        rnd = -(rnd + 1);
    return step / 2 + rnd % (step / 2 + 1);
}
