#include "hb_page.h"

size_t hb_page_budget(size_t queue_bytes)
{
    size_t q = queue_bytes / 4;
    if (q > HB_PAGE_BYTES_MAX)
        return HB_PAGE_BYTES_MAX;
    return q ? q : 1;
}

int hb_page_room(size_t qbytes, size_t qlen, size_t budget, size_t queue_bytes, size_t queue_max)
{
    /* qbytes + budget <= queue_bytes / 2, written so that it cannot wrap */
    size_t half = queue_bytes / 2;
    return budget <= half && qbytes <= half - budget && qlen <= queue_max / 2;
}

uint32_t hb_page_count(size_t bytes, size_t n, size_t budget, uint32_t batch, uint32_t prev)
{
    size_t each, cnt;
    if (batch == 0)
        batch = 1;
    if (!n || !bytes) {
        cnt = prev;
    } else {
        each = bytes / n ? bytes / n : 1;
        cnt = budget / each;
    }
    if (cnt < 1)
        cnt = 1;
    if (cnt > batch)
        cnt = batch;
    return (uint32_t)cnt;
}
