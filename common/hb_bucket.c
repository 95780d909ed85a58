#include "hb_bucket.h"

void hb_bucket_init(hb_bucket_t *b, double rate, double burst, double now)
{
    b->rate = rate > 0 ? rate : 0;
    b->burst = burst >= 1 ? burst : 1;
    b->tokens = b->burst;
    b->at = now;
}

int hb_bucket_take(hb_bucket_t *b, unsigned n, double now)
{
    if (b->rate == 0 || n == 0)
        return 1;
    if (now > b->at) {
        double add = (now - b->at) * b->rate; /* both finite: no overflow to worry about */
        b->tokens = add >= b->burst - b->tokens ? b->burst : b->tokens + add;
        b->at = now;
    }
    if (b->tokens < (double)n)
        return 0;
    b->tokens -= (double)n;
    return 1;
}
