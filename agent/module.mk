agent_SRCS := agent/target.c agent/fs.c
agent_PKGS :=
agent_DEPS := common
