vfs_SRCS := vfs/route.c vfs/plan.c vfs/fuse.c
vfs_PKGS := fuse3 json-c libpcre2-8 yaml-0.1
vfs_DEPS := config proto common
