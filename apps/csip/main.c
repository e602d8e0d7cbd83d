/*
 * csip — command-line tool over libcsip. main() only dispatches: each command
 * lives in its own cmd_<name>.c.
 */
#include "cli.h"
#include "csip/csip.h"

#include <stdio.h>
#include <string.h>

typedef struct cli_command {
    const char *name;
    cli_command_fn run;
    const char *synopsis;
    const char *summary;
} cli_command;

static int cmd_help(int argc, char **argv);

static const cli_command commands[] = {
    {"parse", cmd_parse, "[--role uas|proxy|registrar] [--stream] [--pretty] [FILE|-]",
     "parse a SIP message (or a stream of them) and print it as JSON"},
    {"status", cmd_status, "[CODE]", "describe a response status code, or list the registry"},
#ifdef CSIP_TOOL_NET
    {"options", cmd_options, "URI [--transport udp|tcp|tls] [--timeout S] [-v]",
     "send OPTIONS to URI and print the messages and the final response"},
    {"register", cmd_register,
     "AOR [--user U] [--password P] [--expires N] [--registrar URI] [--once] [-v]",
     "register AOR, refresh it, and unregister on Ctrl-C (--once: register and exit)"},
    {"call", cmd_call, "TARGET [--from AOR] [--password P] [--proxy URI] [--duration S] [-v]",
     "call TARGET (INVITE with SDP), hang up after S seconds or on Ctrl-C"},
    {"answer", cmd_answer,
     "AOR [--password P] [--ring S] [--duration S] [--reject CODE] [--calls N] [-v]",
     "register AOR and answer (or reject) its calls until Ctrl-C"},
    {"message", cmd_message, "TARGET TEXT [--from AOR] [--password P] [--proxy URI] [-v]",
     "send TEXT in a MESSAGE (RFC 3428)"},
#endif
    {"help", cmd_help, "", "show this help"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: csip COMMAND [ARGS]\n"
               "       csip --version\n"
               "\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (commands[i].synopsis[0] != '\0') {
            fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].synopsis);
        } else {
            fprintf(f, "  %s\n", commands[i].name);
        }
        fprintf(f, "           %s\n", commands[i].summary);
    }
    fprintf(f, "\n"
               "exit status: 0 success, 1 message rejected (parse) or request failed, 2 usage or\n"
               "I/O error; call: 3 stopped before an answer, 4 ended abnormally\n"
               "Run 'csip COMMAND --help' for the options of a command.\n");
}

static int cmd_help(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    usage(stdout);
    return CLI_EXIT_OK;
}

static const cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, name) == 0) {
            return &commands[i];
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int rc;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        rc = CLI_EXIT_OK;
    } else if (strcmp(argv[1], "--version") == 0) {
        printf("csip %s (libcsip %s)\n", CSIP_VERSION_STRING, csip_version());
        rc = CLI_EXIT_OK;
    } else {
        const cli_command *cmd = find_command(argv[1]);
        if (cmd == NULL) {
            fprintf(stderr, "csip: unknown command '%s'\n\n", argv[1]);
            usage(stderr);
            return CLI_EXIT_USAGE;
        }
        rc = cmd->run(argc - 1, argv + 1);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "csip: error writing to standard output\n");
        return CLI_EXIT_USAGE;
    }
    return rc;
}
