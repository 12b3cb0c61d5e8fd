agent_SRCS := agent/target.c
agent_PKGS :=
agent_DEPS := common
