common_SRCS := common/mem.c common/err.c common/log.c common/buf.c common/loop.c common/map.c
common_PKGS :=
common_DEPS :=
