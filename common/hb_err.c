#include "hb_err.h"

const char *hb_strerror(int err)
{
    switch (err) {
    case HB_OK:
        return "ok";
    case HB_ENOMEM:
        return "out of memory";
    case HB_EPROTO:
        return "malformed input";
    case HB_ELIMIT:
        return "limit exceeded";
    case HB_EAGAIN:
        return "try again";
    case HB_EINVAL:
        return "invalid argument";
    case HB_ENOTFOUND:
        return "not found";
    case HB_EIO:
        return "i/o error";
    default:
        return "unknown error";
    }
}
