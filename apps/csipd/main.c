/*
 * csipd — the csip registrar (and, to come, proxy). See docs/csipd.md.
 *
 *   csipd [options]                run in the foreground until SIGINT/SIGTERM
 *   csipd [options] user ...       manage accounts in the database
 */
#include "csipd.h"

#include <malloc.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    static csipd_config cfg;
    int rest = 0;
    csipd_config_load(&cfg, argc, argv, &rest);
    csipd_log_level = cfg.log_level;
    if (rest < argc) {
        if (strcmp(argv[rest], "user") == 0)
            return csipd_user_cmd(&cfg, argc - rest, argv + rest);
        fprintf(stderr, "csipd: unknown command '%s'\n", argv[rest]);
        csipd_usage(stderr);
        return 2;
    }
    /* Every transaction allocates and frees a few kilobytes: keep the freed
     * heap instead of giving it back to the kernel and faulting it in again. */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, 16 << 20);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    sqlite3_config(SQLITE_CONFIG_SINGLETHREAD);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    return csipd_serve(&cfg);
}
