agent_SRCS := agent/main.c agent/target.c
agent_PKGS :=
agent_DEPS := common
