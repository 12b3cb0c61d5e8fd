launcher_SRCS :=
launcher_PKGS :=
launcher_DEPS := common
