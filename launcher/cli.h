/* The podenv command line: one entry point per subcommand, each taking the
 * subcommand's argv (argv[0] is the subcommand name) and returning the
 * process exit status (0 success, 1 runtime failure, 2 usage or config
 * error; exec returns the child's status). */
#ifndef PODENV_LAUNCHER_CLI_H
#define PODENV_LAUNCHER_CLI_H

#define PODENV_VERSION "0.1.0"

/* podenv config check|schema: see cmd_config.c. */
int cli_config_main(int argc, char **argv);

/* podenv exec / shell (argv[0] says which), and podenv mount. */
int cli_exec_main(int argc, char **argv);
int cli_mount_main(int argc, char **argv);

/* podenv debug agent OP...: protocol operations against an agent. */
int cli_debug_main(int argc, char **argv);

/* podenv explain ARG...: where files, names and connections go, and why. */
int cli_explain_main(int argc, char **argv);

/* podenv ls [-n NS]: the Kubernetes targets of a namespace. */
int cli_ls_main(int argc, char **argv);

/* podenv doctor [-t TARGET]: checks what this machine needs. */
int cli_doctor_main(int argc, char **argv);

/* The podenv-agent to run: $PODENV_AGENT, else next to podenv, else PATH. */
const char *cli_agent_path(void);

#endif
