common_SRCS := common/mem.c common/err.c common/log.c common/buf.c common/loop.c common/map.c \
	common/tls.c
common_PKGS := libssl libcrypto
common_DEPS :=
