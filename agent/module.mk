agent_SRCS := agent/target.c agent/fs.c agent/pool.c agent/files.c agent/session.c agent/stream.c \
	agent/dns.c agent/tls.c
agent_PKGS := libcares libssl libcrypto
agent_DEPS := proto common
agent_LIBS := -pthread
agent_SRCS += agent/http.c agent/incoming.c agent/redirect.c
# agent/http.c matches HTTP filters with config's PCRE2 patterns.
agent_DEPS := config $(filter-out config,$(agent_DEPS))
