launcher_SRCS := launcher/link.c launcher/cmd_debug.c launcher/cmd_config.c launcher/env.c
launcher_PKGS :=
launcher_DEPS := config proto common
