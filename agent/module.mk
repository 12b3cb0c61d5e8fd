agent_SRCS := agent/target.c agent/fs.c agent/pool.c
agent_PKGS :=
agent_DEPS := common
agent_LIBS := -pthread
