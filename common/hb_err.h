#ifndef HERALD_COMMON_HB_ERR_H
#define HERALD_COMMON_HB_ERR_H

/* Error codes shared by every module: 0 is success, a negative HB_E* is an error. */
#define HB_OK 0
#define HB_ENOMEM (-1)   /* allocation failed */
#define HB_EPROTO (-2)   /* malformed input */
#define HB_ELIMIT (-3)   /* a configured limit was exceeded */
#define HB_EAGAIN (-4)   /* incomplete: call again with more input / queue full, retry later */
#define HB_EINVAL (-5)   /* invalid argument from the caller */
#define HB_ENOTFOUND (-6) /* no such entry */
#define HB_EIO (-7)      /* I/O or remote failure */

/** hb_strerror() - a constant, human-readable name for an HB_E* code; never NULL. Any thread. */
const char *hb_strerror(int err);

#endif
