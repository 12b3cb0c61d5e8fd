/* `podenv config`: check a configuration or print its JSON Schema.
 *
 *	podenv config check [-f FILE] [FLAGS]   validate, print the resolved
 *	                                        configuration as canonical JSON
 *	podenv config schema                    print the JSON Schema
 *
 * FLAGS are the configuration flags `podenv exec` takes (cfg_source_flag_parse
 * in config/config.h). Config errors print one line
 * "podenv: config: <path>: <message>" on stderr and exit 2.
 */
#ifndef PODENV_LAUNCHER_CLI_CONFIG_H
#define PODENV_LAUNCHER_CLI_CONFIG_H

/* argv[0] is "config". Returns the exit status: 0 valid, 2 usage or
 * configuration error, 1 output failure. */
int cli_config_main(int argc, char **argv);

#endif
