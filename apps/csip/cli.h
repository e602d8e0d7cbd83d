/*
 * The csip tool: commands and exit codes shared by main.c and cmd_*.c.
 */
#ifndef CSIP_APP_CLI_H
#define CSIP_APP_CLI_H

/* Exit codes. */
enum {
    CLI_EXIT_OK = 0,     /* success (and, for parse, every message accepted) */
    CLI_EXIT_REJECT = 1, /* parse: a message was rejected (JSON error object printed) */
    CLI_EXIT_USAGE = 2,  /* bad arguments, unreadable input, or the tool itself failed */
};

/*
 * A command: argv[0] is the command name, argv[1..argc-1] its arguments.
 * Returns the exit code.
 */
typedef int (*cli_command_fn)(int argc, char **argv);

/* csip parse [--role uas|proxy|registrar] [--stream] [--pretty] [FILE|-] */
int cmd_parse(int argc, char **argv);
/* csip status [CODE] */
int cmd_status(int argc, char **argv);
/* csip options URI [--transport udp|tcp|tls] [--timeout S] [--ca-file F] [--insecure] [-v] */
int cmd_options(int argc, char **argv);
/* csip register AOR [--user U] [--password P] [--expires N] [--registrar URI] [--once] … */
int cmd_register(int argc, char **argv);
/* csip call TARGET [--from AOR] [--password P] [--proxy URI] [--duration S] … */
int cmd_call(int argc, char **argv);
/* csip answer AOR [--password P] [--ring S] [--duration S] [--reject CODE] [--calls N] … */
int cmd_answer(int argc, char **argv);
/* csip message TARGET TEXT [--from AOR] [--password P] [--proxy URI] … */
int cmd_message(int argc, char **argv);

#endif
