/* csipd's log: one line per event on stderr, with a UTC timestamp. */
#define _DEFAULT_SOURCE /* clock_gettime, gmtime_r */
#include "csipd.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

int csipd_log_level = LOG_INFO;

void csipd_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn ", "info ", "debug"};
    if (level > csipd_log_level)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[1200];
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    /* wire data may hold control characters: never let them reach the terminal */
    for (size_t i = (size_t)n; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            line[i] = '?';
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}
