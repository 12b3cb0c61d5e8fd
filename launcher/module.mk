launcher_SRCS := launcher/link.c launcher/cmd_debug.c launcher/cmd_config.c launcher/env.c \
	launcher/session.c launcher/sandbox.c launcher/cmd_exec.c launcher/tls.c launcher/net.c
launcher_PKGS := libssl libcrypto
launcher_DEPS := vfs vnet dns config proto common
launcher_SRCS += launcher/cmd_explain.c launcher/cmd_doctor.c launcher/trace.c
launcher_SRCS += launcher/k8s_config.c
launcher_SRCS += launcher/k8s_api.c launcher/k8s_target.c launcher/k8s_ws.c launcher/k8s_agent.c
launcher_SRCS += launcher/cmd_ls.c
launcher_PKGS += libcurl json-c
launcher_SRCS += launcher/nsock.c launcher/listen.c launcher/incoming.c
launcher_SRCS += launcher/seccomp.c launcher/unixsock.c
