launcher_SRCS := launcher/main.c
launcher_PKGS :=
launcher_DEPS := common
