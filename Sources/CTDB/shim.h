/* tdb.h uses mode_t, O_* and bool without including their headers. */
#include <sys/types.h>
#include <fcntl.h>
#include <stdbool.h>
#include <tdb.h>
