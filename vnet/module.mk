vnet_SRCS := vnet/packet.c vnet/nat.c
vnet_PKGS :=
vnet_DEPS := common
